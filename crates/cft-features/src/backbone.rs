//! Backbones by name: `resnet18` … `resnet152`, `densenet121`/`169`/`201`, `resnet20-cifar`.

use crate::cifar::CifarResNet;
use crate::densenet::{self, DenseNet};
use crate::error::{FeatureError, Result};
use crate::layers::{Builder, Placement};
use crate::resnet::{self, ResNet};
use crate::weights::WeightSource;
use candle_core::Tensor;

/// The backbone names this crate builds ([`cft_pipeline::BackboneName`]'s spellings).
pub const NAMES: &[&str] = <cft_pipeline::BackboneName as cft_pipeline::Choice>::NAMES;

enum Net {
    ResNet(ResNet),
    DenseNet(DenseNet),
    Cifar(CifarResNet),
}

/// A loaded backbone: images in, pooled features out.
pub struct Backbone {
    name: String,
    net: Net,
    placement: Placement,
    /// Parameters of the feature extractor (classifier excluded), as torchvision counts them.
    pub parameters: usize,
}

impl Backbone {
    /// Builds backbone `name` from `src` on `placement`.
    pub fn load(name: &str, src: &WeightSource, placement: Placement) -> Result<Self> {
        let b = Builder::new(src, name, placement.clone());
        let build = || -> Result<Net> {
            Ok(if let Some((block, layers)) = resnet::config(name) {
                Net::ResNet(ResNet::new(&b, block, layers, None)?)
            } else if let Some(blocks) = densenet::config(name) {
                Net::DenseNet(DenseNet::new(&b, blocks, None)?)
            } else if name == "resnet20-cifar" {
                Net::Cifar(CifarResNet::new(&b, 3)?)
            } else {
                return Err(FeatureError::Invalid(format!("unknown backbone `{name}` (one of: {})", NAMES.join(", "))));
            })
        };
        let net = build().map_err(|e| b.explain(e))?;
        let mut s = Self { name: name.to_string(), net, placement, parameters: b.params() };
        if let Some((w, bias)) = s.classifier() {
            s.parameters -= w.elem_count() + bias.elem_count();
        }
        Ok(s)
    }

    /// The backbone's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        match &self.net {
            Net::ResNet(n) => n.dim,
            Net::DenseNet(n) => n.dim,
            Net::Cifar(n) => n.dim,
        }
    }

    /// Where it runs.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The trained classification layer (`[classes, dim]` weight, `[classes]` bias, f32 on the
    /// CPU) when the weights file had one: it is the CFT head of the user's model.
    pub fn classifier(&self) -> Option<(&Tensor, &Tensor)> {
        let c = match &self.net {
            Net::ResNet(n) => n.fc.as_ref(),
            Net::DenseNet(n) => n.classifier.as_ref(),
            Net::Cifar(n) => n.linear.as_ref(),
        };
        c.map(|(w, b)| (w, b))
    }

    /// Pooled features `[N, dim]` in f32 on the CPU of an image batch `[N, 3, H, W]` (any
    /// dtype/device; moved to the backbone's).
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        let x = images.to_device(&self.placement.device)?.to_dtype(self.placement.dtype)?;
        let f = match &self.net {
            Net::ResNet(n) => n.features(&x)?,
            Net::DenseNet(n) => n.features(&x)?,
            Net::Cifar(n) => n.features(&x)?,
        };
        Ok(f.to_dtype(candle_core::DType::F32)?.to_device(&candle_core::Device::Cpu)?)
    }
}
