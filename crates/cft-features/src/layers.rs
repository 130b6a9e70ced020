//! The building blocks, on candle-nn: weights come through a `VarBuilder`, convolutions are
//! `candle_nn::Conv2d` with the following batch norm folded in by `Conv2d::absorb_bn` (in f32,
//! before any cast to f16/bf16), DenseNet's pre-activation batch norms are frozen into a
//! per-channel affine map (torchvision's `FrozenBatchNorm2d`), max pooling has torchvision's
//! padding.

use crate::error::{FeatureError, Result};
use crate::weights::{Checked, WeightSource};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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

/// Builds layers from a weight source through a candle-nn `VarBuilder` (f32 on the CPU, where
/// batch norms are folded), then places them on the model's device and dtype.
pub struct Builder<'a> {
    /// The weights.
    pub src: &'a WeightSource,
    /// The weights as candle-nn reads them.
    pub vb: VarBuilder<'a>,
    /// Device and dtype of the built layers.
    pub at: Placement,
    params: Arc<AtomicUsize>,
    error: Arc<Mutex<Option<FeatureError>>>,
}

impl<'a> Builder<'a> {
    /// A builder for backbone `backbone` (named in errors) from `src`, placing layers `at`.
    pub fn new(src: &'a WeightSource, backbone: &str, at: Placement) -> Self {
        let params = Arc::new(AtomicUsize::new(0));
        let error = Arc::new(Mutex::new(None));
        let backend =
            Checked { src, backbone: backbone.to_string(), params: Arc::clone(&params), error: Arc::clone(&error) };
        let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu);
        Self { src, vb, at, params, error }
    }

    /// Parameters read so far (elements; running statistics excluded), to compare with
    /// torchvision's counts.
    pub fn params(&self) -> usize {
        self.params.load(Ordering::Relaxed)
    }

    /// The weight error behind a failed build (file, tensor, shapes) when there is one, else `e`.
    pub fn explain(&self, e: FeatureError) -> FeatureError {
        self.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().unwrap_or(e)
    }

    /// `t` on the model's device and dtype, detached: candle-nn's batch norm keeps its running
    /// statistics as `Var`s, and a weight folded from them would otherwise make every forward
    /// operation record its inputs for backpropagation (measured: ResNet-50 25% slower).
    fn place(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.to_dtype(self.at.dtype)?.to_device(&self.at.device)?.detach())
    }

    fn placed(&self, c: &Conv2d) -> Result<Conv> {
        let bias = c.bias().map(|b| self.place(b)).transpose()?;
        Ok(Conv::new(Conv2d::new(self.place(c.weight())?, bias, *c.config())))
    }

    fn raw_conv(&self, name: &str, shape: [usize; 4], stride: usize, padding: usize) -> Result<Conv2d> {
        let [out, inp, k, _] = shape;
        let cfg = Conv2dConfig { padding, stride, ..Default::default() };
        Ok(candle_nn::conv2d_no_bias(inp, out, k, cfg, self.vb.pp(name))?)
    }

    /// `conv` (no bias) followed by batch norm `bn`, folded into one convolution with bias.
    pub fn conv_bn(&self, conv: &str, bn: &str, shape: [usize; 4], stride: usize, padding: usize) -> Result<Conv> {
        let c = self.raw_conv(conv, shape, stride, padding)?;
        let norm = candle_nn::batch_norm(shape[0], BN_EPS, self.vb.pp(bn))?;
        self.placed(&c.absorb_bn(&norm)?)
    }

    /// A convolution without bias or norm.
    pub fn conv(&self, name: &str, shape: [usize; 4], stride: usize, padding: usize) -> Result<Conv> {
        self.placed(&self.raw_conv(name, shape, stride, padding)?)
    }

    /// A standalone inference batch norm.
    pub fn bn(&self, prefix: &str, c: usize) -> Result<FrozenBatchNorm> {
        let norm = candle_nn::batch_norm(c, BN_EPS, self.vb.pp(prefix))?;
        let (scale, shift) = FrozenBatchNorm::affine(&norm)?;
        Ok(FrozenBatchNorm { scale: self.place(&scale)?, shift: self.place(&shift)? })
    }

    /// A linear layer `name.{weight,bias}` (`[out, in]`, `[out]`), kept in f32 on the CPU:
    /// it becomes a CFT head, not part of the feature computation.
    pub fn linear(&self, name: &str, out: usize, inp: usize) -> Result<Option<(Tensor, Tensor)>> {
        if !self.src.contains(&format!("{name}.weight")) {
            return Ok(None);
        }
        let vb = self.vb.pp(name);
        Ok(Some((vb.get((out, inp), "weight")?, vb.get(out, "bias")?)))
    }
}

/// A candle-nn `Conv2d`. On the CPU, f32, the two shapes that make up nearly all of ResNet's
/// and DenseNet's layers skip candle's im2col route (which copies every input into a
/// `[n, h·w, k·k·c]` matrix and the product back to NCHW): a 1×1, stride-1 convolution runs as
/// one batched matrix product on the NCHW tensor, `W[o, c] · X[n, c, h·w]`, and a 3×3, stride-1,
/// padding-1 one as nine accumulating GEMMs over the padded input ([`crate::cpu_conv`]).
/// Elsewhere (other shapes, the GPU) it is `Conv2d::forward`.
#[derive(Debug, Clone)]
pub struct Conv {
    conv: Conv2d,
    route: CpuRoute,
}

/// How a convolution runs on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CpuRoute {
    /// 1×1, stride 1, no padding: one batched matrix product.
    Pointwise,
    /// 3×3, stride 1, padding 1: nine accumulating GEMMs over the padded input
    /// ([`crate::cpu_conv`]).
    Same3x3,
    /// candle's `Conv2d::forward`.
    Candle,
}

impl Conv {
    /// Wraps a convolution.
    pub fn new(conv: Conv2d) -> Self {
        let c = conv.config();
        let k = conv.weight().dims();
        let plain = c.stride == 1 && c.dilation == 1 && c.groups == 1;
        let route = match (k[2], k[3], c.padding) {
            (1, 1, 0) if plain => CpuRoute::Pointwise,
            (3, 3, 1) if plain => CpuRoute::Same3x3,
            _ => CpuRoute::Candle,
        };
        Self { conv, route }
    }

    /// The candle-nn convolution.
    pub fn inner(&self) -> &Conv2d {
        &self.conv
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if !x.device().is_cpu() {
            return self.conv.forward(x);
        }
        let o = self.conv.weight().dim(0)?;
        let y = match self.route {
            CpuRoute::Pointwise => {
                let (n, c, h, w) = x.dims4()?;
                self.conv
                    .weight()
                    .reshape((o, c))?
                    .broadcast_matmul(&x.reshape((n, c, h * w))?)?
                    .reshape((n, o, h, w))?
            }
            CpuRoute::Same3x3 => match crate::cpu_conv::conv3x3_same(x, self.conv.weight())? {
                Some(y) => y,
                None => return self.conv.forward(x),
            },
            CpuRoute::Candle => return self.conv.forward(x),
        };
        match self.conv.bias() {
            Some(b) => y.broadcast_add(&b.reshape((1, o, 1, 1))?),
            None => Ok(y),
        }
    }
}

/// An inference batch norm as a per-channel affine map `x · scale + shift`, computed in f32 from
/// a `candle_nn::BatchNorm` (two broadcast operations instead of four per call).
#[derive(Debug, Clone)]
pub struct FrozenBatchNorm {
    scale: Tensor,
    shift: Tensor,
}

impl FrozenBatchNorm {
    /// `(γ/σ, β − μγ/σ)` as `[1, C, 1, 1]` tensors.
    fn affine(bn: &candle_nn::BatchNorm) -> Result<(Tensor, Tensor)> {
        let c = bn.running_mean().dim(0)?;
        let (g, b) = bn.weight_and_bias().ok_or_else(|| FeatureError::Invalid("batch norm without affine".into()))?;
        let scale = g.div(&(bn.running_var() + bn.eps())?.sqrt()?)?;
        let shift = (b - bn.running_mean().mul(&scale)?)?;
        Ok((scale.reshape((1, c, 1, 1))?, shift.reshape((1, c, 1, 1))?))
    }
}

impl Module for FrozenBatchNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
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
