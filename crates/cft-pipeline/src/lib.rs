//! # cft-pipeline: the image pipeline's settings, named once
//!
//! How images become features is chosen by name in a spec's `[backbone]`, on `cft extract` /
//! `cft run`'s command line and from Python: where the work runs ([`Device`]), which network
//! ([`BackboneName`]), whose bilinear resize ([`Resize`]), the normalisation ([`Normalize`]),
//! the JPEG decoder ([`JpegDecode`]) and what an unreadable image does ([`BadImage`]). Each is
//! one enum here, parsed by serde and by `FromStr` from the same spellings, in a crate with no
//! heavy dependency: the experiment layer (which never links candle) and the pipeline
//! (`cft-features`, which re-exports them and gives them their meaning) share the definitions.
//!
//! ```
//! use cft_pipeline::{Device, Resize};
//! assert_eq!("cuda:1".parse::<Device>(), Ok(Device::Cuda(1)));
//! assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
//! assert!("gpu".parse::<Device>().is_err());
//! assert_eq!("pillow12".parse::<Resize>(), Ok(Resize::Pillow12));
//! ```

pub use cft_core::choice::{Choice, UnknownChoice};
use serde::{Deserialize, Serialize};

/// Where work runs: the CPU or CUDA device `N` (`cpu`, `cuda` = `cuda:0`, `cuda:N`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Device {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA device of this ordinal.
    Cuda(usize),
}

impl Device {
    /// Whether this is a CUDA device.
    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }
}

/// A device name that is not `cpu`, `cuda` or `cuda:N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDevice(pub String);

impl std::fmt::Display for BadDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} is not a device: expected cpu, cuda or cuda:N", self.0)
    }
}

impl std::error::Error for BadDevice {}

impl std::str::FromStr for Device {
    type Err = BadDevice;
    fn from_str(s: &str) -> Result<Self, BadDevice> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| BadDevice(s.to_string())),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `cuda` (device 0) keeps the spelling specs have always used.
        match self {
            Device::Cuda(0) => s.serialize_str("cuda"),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

cft_core::choice! {
    /// The backbones `cft-features` builds, by their torchvision names.
    pub enum BackboneName {
        /// ResNet-18.
        Resnet18 = "resnet18",
        /// ResNet-34.
        Resnet34 = "resnet34",
        /// ResNet-50.
        Resnet50 = "resnet50",
        /// ResNet-101 (the paper's COCO and OpenImages network).
        Resnet101 = "resnet101",
        /// ResNet-152.
        Resnet152 = "resnet152",
        /// DenseNet-121 (the paper's CheXpert network).
        Densenet121 = "densenet121",
        /// DenseNet-169.
        Densenet169 = "densenet169",
        /// DenseNet-201.
        Densenet201 = "densenet201",
        /// The CIFAR ResNet-20 (32 px inputs; the bundled real weights).
        Resnet20Cifar = "resnet20-cifar",
    }
}

cft_core::choice! {
    /// Which Pillow release's bilinear resize to match. Both compute the same coefficients and
    /// round each pass to 8 bits; they differ in the order of the two passes, which changes some
    /// pixel values by one level.
    #[derive(Default)]
    pub enum Resize {
        /// Pillow ≥ 13 (python-pillow/Pillow#9549): the vertical pass runs first when the height
        /// shrinks by more than twice as many pixels as the width; otherwise horizontal first.
        #[default]
        Pillow13 = "pillow13",
        /// Pillow ≤ 12 (and the CFT authors' pinned 9.3): always horizontal first.
        Pillow12 = "pillow12",
    }
}

impl Resize {
    /// Whether resizing `in_w × in_h` to `out_w × out_h` runs the vertical pass first.
    pub fn vertical_first(self, (in_w, in_h): (usize, usize), (out_w, out_h): (usize, usize)) -> bool {
        let shrink_h = in_h as i64 - out_h as i64;
        let shrink_w = in_w as i64 - out_w as i64;
        self == Resize::Pillow13 && shrink_h > 0 && shrink_h > 2 * shrink_w
    }
}

cft_core::choice! {
    /// Input normalisation after `ToTensor`.
    pub enum Normalize {
        /// Values in [0, 1] (the CFT authors' networks, trained on Resize + ToTensor only).
        None = "none",
        /// `(x − mean) / std` with ImageNet statistics (most torchvision weights).
        Imagenet = "imagenet",
    }
}

cft_core::choice! {
    /// How JPEG files are decoded.
    #[derive(Default)]
    pub enum JpegDecode {
        /// libjpeg-turbo's decoder with Pillow's settings — integer IDCT, fancy upsampling: the
        /// pixels torchvision's default loader sees, bit for bit.
        #[default]
        Exact = "exact",
        /// libjpeg's DCT scaling (as Pillow's `Image.draft`, keeping the exact IDCT): decode at
        /// the smallest scale `m/8` whose size still covers the target, then resize. Faster on
        /// photos much larger than the target, but not the pixels torchvision sees.
        Reduced = "reduced",
    }
}

cft_core::choice! {
    /// What to do with an image that cannot be read.
    #[derive(Default)]
    pub enum BadImage {
        /// Stop with an error naming it.
        #[default]
        Fail = "fail",
        /// Leave it out (of the features and the labels) and record it.
        Skip = "skip",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_print_and_serialize_in_one_spelling() {
        for (text, device) in [("cpu", Device::Cpu), ("cuda", Device::Cuda(0)), ("cuda:3", Device::Cuda(3))] {
            assert_eq!(text.parse::<Device>(), Ok(device));
            assert_eq!(serde_json::to_string(&device).unwrap(), format!("{text:?}"));
            assert_eq!(serde_json::from_str::<Device>(&format!("{text:?}")).unwrap(), device);
        }
        for bad in ["gpu", "cuda:", "cuda:-1", "cuda:1x", "CUDA", ""] {
            let e = bad.parse::<Device>().unwrap_err();
            assert_eq!(e.to_string(), format!("{bad:?} is not a device: expected cpu, cuda or cuda:N"));
        }
        assert!(serde_json::from_str::<Device>("\"tpu\"").is_err());
    }

    #[test]
    fn the_pass_order_follows_the_release() {
        assert!(Resize::Pillow13.vertical_first((300, 900), (224, 224)));
        assert!(!Resize::Pillow12.vertical_first((300, 900), (224, 224)));
        assert!(!Resize::Pillow13.vertical_first((900, 300), (224, 224)));
        assert_eq!(BackboneName::ALL.len(), 9);
        assert_eq!("densenet121".parse::<BackboneName>(), Ok(BackboneName::Densenet121));
    }
}
