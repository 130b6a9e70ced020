//! # cft-features: backbone features for CFT, with candle
//!
//! CFT works on cached features `z = B(x)`. This crate turns PyTorch weights and folders of
//! images into the core's feature sets with the numbers PyTorch produces:
//!
//! * [`backbone`]: torchvision ResNet-18…152 and DenseNet-121/169/201 with torchvision's
//!   state-dict names (read from safetensors: `safetensors.torch.save_file(model.state_dict(),
//!   "w.safetensors")`), classifier removed, its trained weights kept as a CFT head; the CIFAR
//!   ResNet-20 as a small real backbone;
//! * [`image`]: Pillow-exact decoding (libjpeg-turbo) and bilinear resizing, `ToTensor`,
//!   ImageNet normalisation;
//! * [`extract()`]: batched extraction with parallel decoding and explicit handling of bad
//!   images.
//!
//! Runs on the CPU, and on NVIDIA GPUs with the `cuda` feature.
//!
//! The image side of the main call, as torchvision's `Resize((S, S))` makes it (Pillow's
//! bilinear filter; `Resize` picks the release whose pass order to follow):
//!
//! ```
//! use cft_features::image::{resize_bilinear_as, to_chw, Normalize, Resize, Rgb8};
//! let grey = Rgb8 { width: 4, height: 6, data: vec![128; 4 * 6 * 3] };
//! let small = resize_bilinear_as(&grey, 2, 2, Resize::Pillow12);
//! assert_eq!(small.data, vec![128; 2 * 2 * 3]);
//! // `ToTensor`: CHW floats in [0, 1]; `Backbone::features` takes a batch of these.
//! assert!(to_chw(&small, Normalize::None).iter().all(|&v| v == 128.0 / 255.0));
//! ```

pub mod backbone;
pub mod cifar;
pub mod cpu_conv;
pub mod densenet;
pub mod error;
pub mod extract;
pub mod image;
pub mod layers;
pub mod resnet;
pub mod weights;

pub use backbone::{Backbone, NAMES};
pub use cft_pipeline::{BackboneName, Device, JpegDecode, Normalize, Resize};
pub use error::{FeatureError, Result};
pub use extract::{extract, list_folder, BadImage, ExtractOptions, Extracted, ImageRef};
pub use layers::Placement;
pub use weights::{KeyNames, WeightSource};

/// The candle device of `device` (opening a CUDA device checks that there is one).
pub fn device(device: Device) -> Result<candle_core::Device> {
    let ordinal = match device {
        Device::Cpu => return Ok(candle_core::Device::Cpu),
        Device::Cuda(n) => n,
    };
    if !cfg!(feature = "cuda") {
        return Err(FeatureError::Invalid(format!(
            "device `{device}`: this build has no CUDA support (rebuild with `--features cuda`, see gpu/README.md)"
        )));
    }
    candle_core::Device::new_cuda(ordinal).map_err(|e| {
        // candle appends a backtrace to the message: keep the first line.
        let first = e.to_string().lines().next().unwrap_or_default().to_string();
        FeatureError::Invalid(format!(
            "cannot open CUDA device {ordinal}: {first} (is there an NVIDIA GPU and driver?)"
        ))
    })
}
