//! torchvision ResNets (`resnet18` … `resnet152`, V1.5: the stride sits on the 3×3
//! convolution) with torchvision's state-dict names, batch norm folded into the convolutions.
//! [`ResNet::features`] returns the 512- or 2048-d pooled features (the `fc` layer removed);
//! the `fc` weights, when the file has them, are kept as the trained classification layer.

use crate::error::Result;
use crate::layers::{global_avg_pool, max_pool_3x3_s2_p1, Builder, Conv};
use candle_core::Module;
use candle_core::Tensor;

/// Residual block kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Two 3×3 convolutions (ResNet-18/34), expansion 1.
    Basic,
    /// 1×1, 3×3, 1×1 (ResNet-50/101/152), expansion 4.
    Bottleneck,
}

impl Block {
    fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

/// The torchvision configurations: block kind and blocks per stage.
pub fn config(name: &str) -> Option<(Block, [usize; 4])> {
    Some(match name {
        "resnet18" => (Block::Basic, [2, 2, 2, 2]),
        "resnet34" => (Block::Basic, [3, 4, 6, 3]),
        "resnet50" => (Block::Bottleneck, [3, 4, 6, 3]),
        "resnet101" => (Block::Bottleneck, [3, 4, 23, 3]),
        "resnet152" => (Block::Bottleneck, [3, 8, 36, 3]),
        _ => return None,
    })
}

struct Unit {
    convs: Vec<Conv>,
    downsample: Option<Conv>,
}

impl Unit {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = x.clone();
        for (i, c) in self.convs.iter().enumerate() {
            y = c.forward(&y)?;
            if i + 1 < self.convs.len() {
                y = y.relu()?;
            }
        }
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        Ok((y + shortcut)?.relu()?)
    }
}

/// A torchvision ResNet without its classifier.
pub struct ResNet {
    stem: Conv,
    units: Vec<Unit>,
    /// Feature dimension (512 or 2048).
    pub dim: usize,
    /// The trained `fc` layer (`[classes, dim]`, `[classes]`), when present.
    pub fc: Option<(Tensor, Tensor)>,
}

impl ResNet {
    /// Builds `name` (`resnet18` … `resnet152`) from `b`; `classes` is the `fc` size to read
    /// when the source has one (taken from the file's `fc.bias` when `None`).
    pub fn new(b: &Builder<'_>, block: Block, layers: [usize; 4], classes: Option<usize>) -> Result<Self> {
        let stem = b.conv_bn("conv1", "bn1", [64, 3, 7, 7], 2, 3)?;
        let mut units = Vec::new();
        let mut inplanes = 64;
        for (stage, (&n, planes)) in layers.iter().zip([64usize, 128, 256, 512]).enumerate() {
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let p = format!("layer{}.{i}", stage + 1);
                let out = planes * block.expansion();
                let convs = match block {
                    Block::Basic => vec![
                        b.conv_bn(&format!("{p}.conv1"), &format!("{p}.bn1"), [planes, inplanes, 3, 3], stride, 1)?,
                        b.conv_bn(&format!("{p}.conv2"), &format!("{p}.bn2"), [planes, planes, 3, 3], 1, 1)?,
                    ],
                    Block::Bottleneck => vec![
                        b.conv_bn(&format!("{p}.conv1"), &format!("{p}.bn1"), [planes, inplanes, 1, 1], 1, 0)?,
                        b.conv_bn(&format!("{p}.conv2"), &format!("{p}.bn2"), [planes, planes, 3, 3], stride, 1)?,
                        b.conv_bn(&format!("{p}.conv3"), &format!("{p}.bn3"), [out, planes, 1, 1], 1, 0)?,
                    ],
                };
                let downsample = if stride != 1 || inplanes != out {
                    Some(b.conv_bn(
                        &format!("{p}.downsample.0"),
                        &format!("{p}.downsample.1"),
                        [out, inplanes, 1, 1],
                        stride,
                        0,
                    )?)
                } else {
                    None
                };
                units.push(Unit { convs, downsample });
                inplanes = out;
            }
        }
        let dim = inplanes;
        let classes = classes.or_else(|| b.src.rows("fc.bias"));
        let fc = match classes {
            Some(k) => b.linear("fc", k, dim)?,
            None => None,
        };
        Ok(Self { stem, units, dim, fc })
    }

    /// Pooled features `[N, dim]` (f32) of images `[N, 3, H, W]`.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = max_pool_3x3_s2_p1(&self.stem.forward(x)?.relu()?)?;
        for u in &self.units {
            x = u.forward(&x)?;
        }
        global_avg_pool(&x)
    }
}
