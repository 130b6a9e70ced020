//! torchvision DenseNets (`densenet121`, 169, 201; growth 32, bottleneck 4, 64 initial
//! features) with the state-dict names of `model.state_dict()` (`features.denseblock1.
//! denselayer1.norm1.weight`, …; old `.pth` files with `norm.1`-style keys must be re-saved from
//! a loaded model). Features: `relu(features(x))`, global average pooling, 1024-d for 121.

use crate::error::Result;
use crate::layers::{global_avg_pool, max_pool_3x3_s2_p1, Builder, Conv, FrozenBatchNorm};
use candle_core::Module;
use candle_core::Tensor;

/// Blocks per dense stage of the torchvision configurations.
pub fn config(name: &str) -> Option<[usize; 4]> {
    Some(match name {
        "densenet121" => [6, 12, 24, 16],
        "densenet169" => [6, 12, 32, 32],
        "densenet201" => [6, 12, 48, 32],
        _ => return None,
    })
}

const GROWTH: usize = 32;
const BN_SIZE: usize = 4;

struct DenseLayer {
    norm1: FrozenBatchNorm,
    conv1_norm2: Conv,
    conv2: Conv,
}

struct Transition {
    norm: FrozenBatchNorm,
    conv: Conv,
}

/// A torchvision DenseNet without its classifier.
pub struct DenseNet {
    stem: Conv,
    blocks: Vec<Vec<DenseLayer>>,
    transitions: Vec<Transition>,
    norm5: FrozenBatchNorm,
    /// Feature dimension (1024 for DenseNet-121).
    pub dim: usize,
    /// The trained `classifier` layer, when present.
    pub classifier: Option<(Tensor, Tensor)>,
}

impl DenseNet {
    /// Builds a DenseNet with `blocks` layers per stage from `b`.
    pub fn new(b: &Builder<'_>, blocks: [usize; 4], classes: Option<usize>) -> Result<Self> {
        let stem = b.conv_bn("features.conv0", "features.norm0", [64, 3, 7, 7], 2, 3)?;
        let mut c = 64;
        let mut all = Vec::new();
        let mut transitions = Vec::new();
        for (s, &n) in blocks.iter().enumerate() {
            let mut layers = Vec::new();
            for l in 0..n {
                let p = format!("features.denseblock{}.denselayer{}", s + 1, l + 1);
                let inner = BN_SIZE * GROWTH;
                layers.push(DenseLayer {
                    norm1: b.bn(&format!("{p}.norm1"), c)?,
                    // conv1 is followed by norm2 then ReLU: the norm folds into conv1.
                    conv1_norm2: b.conv_bn(&format!("{p}.conv1"), &format!("{p}.norm2"), [inner, c, 1, 1], 1, 0)?,
                    conv2: b.conv(&format!("{p}.conv2"), [GROWTH, inner, 3, 3], 1, 1)?,
                });
                c += GROWTH;
            }
            all.push(layers);
            if s + 1 < blocks.len() {
                let p = format!("features.transition{}", s + 1);
                transitions.push(Transition {
                    norm: b.bn(&format!("{p}.norm"), c)?,
                    conv: b.conv(&format!("{p}.conv"), [c / 2, c, 1, 1], 1, 0)?,
                });
                c /= 2;
            }
        }
        let norm5 = b.bn("features.norm5", c)?;
        let classes = classes.or_else(|| b.src.rows("classifier.bias"));
        let classifier = match classes {
            Some(k) => b.linear("classifier", k, c)?,
            None => None,
        };
        Ok(Self { stem, blocks: all, transitions, norm5, dim: c, classifier })
    }

    /// Pooled features `[N, dim]` (f32) of images `[N, 3, H, W]`.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = max_pool_3x3_s2_p1(&self.stem.forward(x)?.relu()?)?;
        for (s, layers) in self.blocks.iter().enumerate() {
            let mut parts = vec![x.clone()];
            for l in layers {
                let cat = Tensor::cat(&parts, 1)?;
                let y = l.norm1.forward(&cat)?.relu()?;
                let y = l.conv1_norm2.forward(&y)?.relu()?;
                parts.push(l.conv2.forward(&y)?);
            }
            x = Tensor::cat(&parts, 1)?;
            if let Some(t) = self.transitions.get(s) {
                x = t.conv.forward(&t.norm.forward(&x)?.relu()?)?.avg_pool2d(2)?;
            }
        }
        global_avg_pool(&self.norm5.forward(&x)?.relu()?)
    }
}
