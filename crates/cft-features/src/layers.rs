//! The building blocks: convolution with batch norm folded in (inference), a standalone batch
//! norm (DenseNet's pre-activation), max pooling with torchvision's padding.

use crate::error::Result;
use crate::weights::WeightSource;
use candle_core::{DType, Device, Tensor, D};

/// Batch-norm epsilon of torchvision models.
pub const BN_EPS: f64 = 1e-5;

/// Where and in which precision a model runs.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The device.
    pub device: Device,
    /// The compute dtype (F32, F16 or BF16).
    pub dtype: DType,
}

/// Builds layers from a weight source, naming the backbone in errors.
pub struct Builder<'a> {
    /// The weights.
    pub src: &'a WeightSource,
    /// The backbone's name.
    pub backbone: &'a str,
    /// Device and dtype of the built layers.
    pub at: Placement,
    /// Parameters read (elements), to compare with torchvision's counts.
    pub params: std::cell::Cell<usize>,
}

impl<'a> Builder<'a> {
    /// A tensor in f32 on the CPU.
    pub fn raw(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.params.set(self.params.get() + shape.iter().product::<usize>());
        self.src.get(name, shape, self.backbone)
    }

    fn place(&self, t: Tensor) -> Result<Tensor> {
        Ok(t.to_dtype(self.at.dtype)?.to_device(&self.at.device)?)
    }

    /// Batch-norm `prefix.{weight,bias,running_mean,running_var}` as a per-channel affine map
    /// `(scale, shift)`, each `[c]` f32 on the CPU. Running statistics are not parameters, so
    /// they do not count.
    fn bn_affine(&self, prefix: &str, c: usize) -> Result<(Tensor, Tensor)> {
        let g = self.raw(&format!("{prefix}.weight"), &[c])?;
        let b = self.raw(&format!("{prefix}.bias"), &[c])?;
        let m = self.src.get(&format!("{prefix}.running_mean"), &[c], self.backbone)?;
        let v = self.src.get(&format!("{prefix}.running_var"), &[c], self.backbone)?;
        let scale = g.broadcast_div(&(v + BN_EPS)?.sqrt()?)?;
        let shift = (b - m.mul(&scale)?)?;
        Ok((scale, shift))
    }

    /// `conv` (no bias) followed by batch norm `bn`, folded into one convolution with bias.
    pub fn conv_bn(&self, conv: &str, bn: &str, shape: [usize; 4], stride: usize, padding: usize) -> Result<ConvBn> {
        let w = self.raw(&format!("{conv}.weight"), &shape)?;
        let (scale, shift) = self.bn_affine(bn, shape[0])?;
        let w = w.broadcast_mul(&scale.reshape((shape[0], 1, 1, 1))?)?;
        Ok(ConvBn { weight: self.place(w)?, bias: self.place(shift.reshape((1, shape[0], 1, 1))?)?, stride, padding })
    }

    /// A convolution without bias or norm.
    pub fn conv(&self, name: &str, shape: [usize; 4], stride: usize, padding: usize) -> Result<Conv> {
        Ok(Conv { weight: self.place(self.raw(&format!("{name}.weight"), &shape)?)?, stride, padding })
    }

    /// A standalone batch norm.
    pub fn bn(&self, prefix: &str, c: usize) -> Result<BatchNorm> {
        let (scale, shift) = self.bn_affine(prefix, c)?;
        Ok(BatchNorm {
            scale: self.place(scale.reshape((1, c, 1, 1))?)?,
            shift: self.place(shift.reshape((1, c, 1, 1))?)?,
        })
    }

    /// A linear layer `name.{weight,bias}` (`[out, in]`, `[out]`), kept in f32 on the CPU:
    /// it becomes a CFT head, not part of the feature computation.
    pub fn linear(&self, name: &str, out: usize, inp: usize) -> Result<Option<(Tensor, Tensor)>> {
        if !self.src.contains(&format!("{name}.weight")) {
            return Ok(None);
        }
        Ok(Some((self.raw(&format!("{name}.weight"), &[out, inp])?, self.raw(&format!("{name}.bias"), &[out])?)))
    }
}

/// Convolution with folded batch norm.
#[derive(Debug, Clone)]
pub struct ConvBn {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl ConvBn {
    /// `conv(x) · γ/σ + (β − μγ/σ)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?.broadcast_add(&self.bias)?)
    }
}

/// Convolution without bias.
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv {
    /// `conv(x)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?)
    }
}

/// Inference batch norm as a per-channel affine map.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    scale: Tensor,
    shift: Tensor,
}

impl BatchNorm {
    /// `x · scale + shift`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)?)
    }
}

/// torchvision's `MaxPool2d(3, stride 2, padding 1)` on non-negative input (after a ReLU, zero
/// padding equals −∞ padding).
pub fn max_pool_3x3_s2_p1(x: &Tensor) -> Result<Tensor> {
    let x = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    Ok(x.max_pool2d_with_stride(3, 2)?)
}

/// Global average pooling `[N, C, H, W] → [N, C]`, accumulated in f32.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let x = x.to_dtype(DType::F32)?;
    Ok(x.flatten_from(2)?.mean(D::Minus1)?)
}
