//! Batched extraction: images are decoded and resized in parallel (rayon) on a producer thread
//! while the backbone runs on the previous batch; a corrupt or missing image is either skipped
//! (and reported with its path and reason) or fatal — never a silent zero row.

use crate::backbone::Backbone;
use crate::error::{FeatureError, Result};
use crate::image::{load_input, JpegDecode, Normalize, Resize};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

pub use cft_pipeline::BadImage;

/// One image to extract: where to read it and the path recorded in the feature set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The file to read.
    pub file: PathBuf,
    /// The name stored in the output (relative path as the dataset lists it).
    pub name: String,
}

/// Extraction settings.
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    /// Images are resized to `image_size × image_size`.
    pub image_size: usize,
    /// Normalisation after `ToTensor`.
    pub normalize: Normalize,
    /// Images per forward pass.
    pub batch: usize,
    /// Unreadable images: skip or fail.
    pub bad_image: BadImage,
    /// JPEG decoding: Pillow-exact, or faster at reduced DCT scale.
    pub jpeg: JpegDecode,
    /// Whose bilinear resize (Pillow 13's pass order, or Pillow ≤ 12's).
    pub resize: Resize,
}

/// Features of the images that could be read.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// `n × dim`, row-major, in input order.
    pub features: Vec<f32>,
    /// The feature dimension.
    pub dim: usize,
    /// Names of the extracted images (row order).
    pub names: Vec<String>,
    /// Skipped images: `(name, reason)`.
    pub skipped: Vec<(String, String)>,
}

/// The image files of a folder (`.jpg`, `.jpeg`, `.png`, any case), sorted by file name; an
/// empty folder is an error.
pub fn list_folder(dir: &Path) -> Result<Vec<ImageRef>> {
    let rd = std::fs::read_dir(dir).map_err(|e| FeatureError::Io { path: dir.to_path_buf(), error: e })?;
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| FeatureError::Io { path: dir.to_path_buf(), error: e })?;
        let name = entry.file_name().to_string_lossy().to_string();
        let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        if entry.path().is_file() && matches!(ext.as_str(), "jpg" | "jpeg" | "png") {
            names.push(name);
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(FeatureError::Invalid(format!("{}: no .jpg/.jpeg/.png images in this folder", dir.display())));
    }
    Ok(names.into_iter().map(|n| ImageRef { file: dir.join(&n), name: n }).collect())
}

struct Batch {
    rows: Vec<f32>,
    names: Vec<String>,
    skipped: Vec<(String, String)>,
}

fn prepare(images: &[ImageRef], opts: &ExtractOptions) -> Result<Batch> {
    let loaded: Vec<(usize, std::result::Result<Vec<f32>, FeatureError>)> = images
        .par_iter()
        .enumerate()
        .map(|(i, im)| (i, load_input(&im.file, opts.image_size, opts.normalize, opts.jpeg, opts.resize)))
        .collect();
    let mut b = Batch { rows: Vec::new(), names: Vec::new(), skipped: Vec::new() };
    for (i, r) in loaded {
        match r {
            Ok(v) => {
                b.rows.extend_from_slice(&v);
                b.names.push(images[i].name.clone());
            }
            Err(e) if opts.bad_image == BadImage::Skip => b.skipped.push((images[i].name.clone(), e.to_string())),
            Err(e) => return Err(e),
        }
    }
    Ok(b)
}

/// Extracts features of `images` with `backbone`; `progress(done)` is called after each batch
/// with the number of images processed so far.
pub fn extract(
    backbone: &Backbone,
    images: &[ImageRef],
    opts: &ExtractOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Extracted> {
    let s = opts.image_size;
    if s == 0 || opts.batch == 0 {
        return Err(FeatureError::Invalid("image size and batch size must be positive".into()));
    }
    let mut out = Extracted { dim: backbone.dim(), ..Default::default() };
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Batch>>(2);
        scope.spawn(move || {
            for chunk in images.chunks(opts.batch) {
                let b = prepare(chunk, opts);
                let stop = b.is_err();
                if tx.send(b).is_err() || stop {
                    break;
                }
            }
        });
        let mut done = 0;
        for b in rx {
            let b = b?;
            done += b.names.len() + b.skipped.len();
            if !b.names.is_empty() {
                let x = Tensor::from_vec(b.rows, (b.names.len(), 3, s, s), &Device::Cpu)?;
                let f = backbone.features(&x)?;
                out.features.extend(f.flatten_all()?.to_vec1::<f32>()?);
            }
            out.names.extend(b.names);
            out.skipped.extend(b.skipped);
            progress(done);
        }
        Ok(())
    })?;
    Ok(out)
}
