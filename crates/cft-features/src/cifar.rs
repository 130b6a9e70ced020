//! The CIFAR ResNet-20 of akamaster/pytorch_resnet_cifar10 (He et al.'s CIFAR design: 3×3 stem
//! with 16 channels, three stages of three basic blocks with 16/32/64 channels, the
//! parameter-free "option A" shortcut that subsamples and zero-pads channels), with that
//! repository's state-dict names (`linear.weight` for the classifier). A small real pretrained
//! backbone for tests: 64-d features, 10 CIFAR-10 logits.

use crate::error::Result;
use crate::layers::{global_avg_pool, Builder, Conv};
use candle_core::Module;
use candle_core::Tensor;

struct Unit {
    conv1: Conv,
    conv2: Conv,
    /// Option A: `x[:, :, ::2, ::2]` padded with `pad` zero channels each side.
    shortcut_pad: Option<usize>,
}

/// CIFAR ResNet-20 without its `linear` classifier.
pub struct CifarResNet {
    stem: Conv,
    units: Vec<Unit>,
    /// 64.
    pub dim: usize,
    /// The trained `linear` layer.
    pub linear: Option<(Tensor, Tensor)>,
}

fn subsample2(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let x = x.pad_with_zeros(2, 0, h % 2)?.pad_with_zeros(3, 0, w % 2)?;
    let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
    Ok(x.reshape((n, c, h2, 2, w2, 2))?.narrow(3, 0, 1)?.narrow(5, 0, 1)?.reshape((n, c, h2, w2))?)
}

impl CifarResNet {
    /// ResNet-20 (`blocks` = 3 per stage; 5 gives ResNet-32, 7 ResNet-44, …).
    pub fn new(b: &Builder<'_>, blocks: usize) -> Result<Self> {
        let stem = b.conv_bn("conv1", "bn1", [16, 3, 3, 3], 1, 1)?;
        let mut units = Vec::new();
        let mut inp = 16;
        for (s, planes) in [16usize, 32, 64].into_iter().enumerate() {
            for i in 0..blocks {
                let stride = if s > 0 && i == 0 { 2 } else { 1 };
                let p = format!("layer{}.{i}", s + 1);
                units.push(Unit {
                    conv1: b.conv_bn(&format!("{p}.conv1"), &format!("{p}.bn1"), [planes, inp, 3, 3], stride, 1)?,
                    conv2: b.conv_bn(&format!("{p}.conv2"), &format!("{p}.bn2"), [planes, planes, 3, 3], 1, 1)?,
                    shortcut_pad: (stride != 1 || inp != planes).then_some(planes / 4),
                });
                inp = planes;
            }
        }
        // CIFAR-10's 10 classes, or as many as the file's classifier has (a fine-tuned copy).
        let classes = b.src.rows("linear.bias").unwrap_or(10);
        let linear = b.linear("linear", classes, 64)?;
        Ok(Self { stem, units, dim: 64, linear })
    }

    /// Pooled features `[N, 64]` (f32).
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.stem.forward(x)?.relu()?;
        for u in &self.units {
            let y = u.conv2.forward(&u.conv1.forward(&x)?.relu()?)?;
            let s = match u.shortcut_pad {
                Some(p) => subsample2(&x)?.pad_with_zeros(1, p, p)?,
                None => x.clone(),
            };
            x = (y + s)?.relu()?;
        }
        global_avg_pool(&x)
    }
}
