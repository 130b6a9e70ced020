//! The extraction job: images → backbone features → a feature set for the CFT core (tensor
//! `features`, image paths in the metadata, labels when the image list is a labelled dataset),
//! with the trained classifier optionally exported as a CFT head. `cft extract` fills one from
//! its command line; the image datasets of `cft run` ([`crate::source`]) fill one per split.
//!
//! Long runs write one part file per `chunk` images under `<out>.parts/`; `resume` keeps the
//! finished parts of the same settings (a fingerprint in the part folder) and refuses others.
//! A feature cache (`cache`), keyed by the images' names and contents and every setting that
//! changes a feature, skips the network on a hit. The output and its manifest are written
//! atomically at the end.

use crate::error::{bail, Context, Result};
use cft_core::{LinearHead, Matrix, PartialLabels, Precision};
use cft_data::fsutil::sibling;
use cft_data::{check_outputs, read_feature_set, write_feature_set, FeatureSet, Named};
use cft_experiment::manifest::{write_manifest, InputFile, RunClock};
use cft_experiment::progress::Progress;
use cft_experiment::shard::Shard;
use cft_features::{
    Backbone, BackboneName, BadImage, Device, ExtractOptions, ImageRef, JpegDecode, KeyNames, Normalize, Placement,
    Resize, WeightSource,
};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Everything one extraction needs, typed (the command line's flags, or a spec's backbone).
#[derive(Debug, Clone)]
pub struct ExtractionJob {
    /// Backbone: resnet18/34/50/101/152, densenet121/169/201, resnet20-cifar.
    pub backbone: BackboneName,
    /// A safetensors state dict, or `rule` (the deterministic weights of the parity fixtures).
    pub weights: String,
    /// A folder (its .jpg/.jpeg/.png files in file-name order), a text file with one image path
    /// per line, or a CheXpert CSV (labels come along).
    pub images: PathBuf,
    /// Folder that relative image paths start from (default: the list file's folder).
    pub image_root: Option<PathBuf>,
    /// Images are resized to S×S (Pillow bilinear).
    pub image_size: usize,
    /// Input normalisation after ToTensor.
    pub normalize: Normalize,
    /// Images per forward pass.
    pub batch: usize,
    /// Compute and storage precision.
    pub precision: Precision,
    /// Where the network runs.
    pub device: Device,
    /// Only this shard's contiguous range of images.
    pub shard: Option<Shard>,
    /// Keep the finished parts of an interrupted run.
    pub resume: bool,
    /// Images per part file (the resume granularity).
    pub chunk: usize,
    /// The feature cache folder, if any.
    pub cache: Option<PathBuf>,
    /// Unreadable images: skip (listed in `<out>.skipped.tsv`) or stop.
    pub on_bad_image: BadImage,
    /// JPEG decoding.
    pub jpeg_decode: JpegDecode,
    /// Whose bilinear resize.
    pub resize: Resize,
    /// The weights file's key names (unset parts are detected).
    pub keys: KeyNames,
    /// TF32 GEMMs for f32 convolutions on CUDA.
    pub tf32: bool,
    /// Also write the weights file's classifier as a CFT head here.
    pub head_out: Option<PathBuf>,
    /// The feature set to write.
    pub out: PathBuf,
}

/// The names the cache key and the manifest have always used for the settings (the command
/// line's value names), so that caches made before the job was a library type still hit.
fn normalize_name(n: Normalize) -> &'static str {
    match n {
        Normalize::None => "None",
        Normalize::Imagenet => "Imagenet",
    }
}
fn jpeg_name(j: JpegDecode) -> &'static str {
    match j {
        JpegDecode::Exact => "Exact",
        JpegDecode::Reduced => "Reduced",
    }
}
fn resize_name(r: Resize) -> &'static str {
    match r {
        Resize::Pillow13 => "Pillow13",
        Resize::Pillow12 => "Pillow12",
    }
}
fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "F32",
        Precision::F16 => "F16",
        Precision::Bf16 => "Bf16",
    }
}

fn dtype(p: Precision) -> candle_core::DType {
    match p {
        Precision::F32 => candle_core::DType::F32,
        Precision::F16 => candle_core::DType::F16,
        Precision::Bf16 => candle_core::DType::BF16,
    }
}

/// Loads a backbone by name from a weights file or the fixture rule; also returns the key
/// names in force (given or detected).
pub fn load_backbone(
    name: BackboneName,
    weights: &str,
    keys: &KeyNames,
    device: Device,
    precision: Precision,
) -> Result<(Backbone, KeyNames)> {
    if precision == Precision::Bf16 && device == Device::Cpu {
        // candle's CPU backend has no bf16 matmul: refuse here rather than fail inside it.
        bail!("--precision bf16 runs on CUDA devices only; on the CPU use --precision f32 (or f16)");
    }
    if weights != "rule" {
        // A `torch.save` checkpoint is the common first try: say how to convert it.
        let mut head = [0u8; 8];
        let path = Path::new(weights);
        let n = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).unwrap_or(0);
        if let Some(hint) = cft_data::pytorch_pickle_hint(path, &head[..n]) {
            bail!("{weights}: {hint}");
        }
    }
    let src =
        if weights == "rule" { WeightSource::Rule } else { WeightSource::from_file_with(Path::new(weights), keys)? };
    let placement = Placement { device: cft_features::device(device)?, dtype: dtype(precision) };
    Ok((Backbone::load(name.name(), &src, placement)?, src.key_names()))
}

/// The network input limits of specs (`cft_experiment::spec`), for `cft extract` too: checked
/// before any allocation, each with its number.
fn check_input_size(image_size: usize, batch: usize) -> Result<()> {
    use cft_experiment::spec::{MAX_BATCH_PIXELS, MAX_IMAGE_SIZE};
    if !(8..=MAX_IMAGE_SIZE).contains(&image_size) {
        bail!("--image-size {image_size}: expected 8 to {MAX_IMAGE_SIZE} pixels");
    }
    let pixels = batch.max(1).saturating_mul(image_size * image_size);
    if pixels > MAX_BATCH_PIXELS {
        bail!(
            "--batch {batch} at --image-size {image_size}: {pixels} pixels per forward pass, at most {MAX_BATCH_PIXELS} (64 images at 448 px); lower --batch to {}",
            (MAX_BATCH_PIXELS / (image_size * image_size)).max(1)
        );
    }
    Ok(())
}

/// Turns candle's TF32 GEMMs on or off for this process (CUDA, f32 only).
pub fn set_tf32(on: bool, device: Device, precision: Precision) -> Result<()> {
    if on && (!device.is_cuda() || precision != Precision::F32) {
        bail!("--tf32 applies to --precision f32 on a CUDA device (this run: {device}, {precision:?})");
    }
    candle_core::cuda::set_gemm_reduced_precision_f32(on);
    Ok(())
}

/// The image list and, for a labelled dataset, its labels and category names.
struct ImageList {
    images: Vec<ImageRef>,
    labels: Option<(PartialLabels, Vec<String>)>,
}

fn read_list(args: &ExtractionJob) -> Result<ImageList> {
    let p = &args.images;
    if p.is_dir() {
        return Ok(ImageList { images: cft_features::list_folder(p)?, labels: None });
    }
    let root = args.image_root.clone().unwrap_or_else(|| p.parent().map(Path::to_path_buf).unwrap_or_default());
    if cft_data::sniff::is_chexpert_csv(p)? {
        let split = cft_data::chexpert::read_chexpert(p, &cft_data::chexpert::ChexpertOptions::default())?;
        let images =
            split.images.iter().map(|im| ImageRef { file: root.join(&im.path), name: im.path.clone() }).collect();
        return Ok(ImageList { images, labels: Some((split.labels, split.tasks)) });
    }
    let text = std::fs::read_to_string(p).with_context(|| p.display().to_string())?;
    let images: Vec<ImageRef> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| ImageRef { file: root.join(l), name: l.to_string() })
        .collect();
    if images.is_empty() {
        bail!("{}: the image list is empty", p.display());
    }
    Ok(ImageList { images, labels: None })
}

#[derive(Serialize)]
struct ExtractConfig<'a> {
    backbone: &'a str,
    weights: &'a str,
    parameters: usize,
    images: String,
    image_size: usize,
    normalize: &'static str,
    jpeg_decode: &'static str,
    resize: &'static str,
    key_prefix: Option<String>,
    head_key: Option<String>,
    tf32: bool,
    batch: usize,
    precision: &'static str,
    device: String,
    shard: Option<String>,
    image_range: (usize, usize),
    extracted: usize,
    skipped: usize,
    /// Features came from the cache: no image was decoded, the network did not run.
    cache_hit: bool,
    /// The network's throughput (absent on a cache hit).
    images_per_second: Option<f64>,
}

impl ExtractionJob {
    /// Runs the job: the feature set at `out`, `<out>.skipped.tsv`, `<out>.manifest.json`
    /// (and the classifier at `head_out`). Progress goes to `progress`; `after_part(k)` is
    /// called once part `k` is written (for tests that interrupt a run).
    pub fn run(&self, progress: &dyn Progress, after_part: Option<&dyn Fn(usize)>) -> Result<()> {
        let args = self;
        let clock = RunClock::start();
        let parts_dir = sibling(&args.out, ".parts");
        let skipped_path = sibling(&args.out, ".skipped.tsv");
        let manifest_path = sibling(&args.out, ".manifest.json");
        let weights_path = PathBuf::from(&args.weights);
        self.check_paths(&parts_dir, &skipped_path, &manifest_path, &weights_path)?;
        let _lock = cft_data::OutputLock::acquire(&args.out)?;
        set_tf32(args.tf32, args.device, args.precision)?;
        let list = read_list(args)?;
        let range = match args.shard {
            Some(s) => s.range(list.images.len()),
            None => 0..list.images.len(),
        };
        let (net, net_keys) = load_backbone(args.backbone, &args.weights, &args.keys, args.device, args.precision)?;
        let opts = ExtractOptions {
            image_size: args.image_size,
            normalize: args.normalize,
            batch: args.batch.max(1),
            bad_image: args.on_bad_image,
            jpeg: args.jpeg_decode,
            resize: args.resize,
        };
        // The part folder records what its parts were extracted with; a resume must match it.
        let key = ExtractionKey::new(args, &list.images[range.clone()], &range, Some(args.chunk));
        // The weights file is hashed once, for the part folder, the cache and the manifest.
        let weight_input: Vec<(String, InputFile)> = if args.weights == "rule" {
            vec![]
        } else {
            vec![("--weights".to_string(), InputFile::of(&weights_path)?)]
        };
        let fingerprint = cft_experiment::checkpoint::Fingerprint::with_inputs(&key, &weight_input)?;
        // The feature cache: a hit skips the network entirely.
        let cache = match &args.cache {
            Some(dir) => Some(FeatureCache::new(dir, &ExtractionKey { chunk: None, ..key.clone() }, &weight_input)?),
            None => None,
        };
        let hit = match &cache {
            // An entry made with `--on-bad-image skip` left images out: a run that must fail on
            // them extracts again (and fails, naming the image) instead of reusing it.
            Some(c) => c
                .lookup(&list.images[range.clone()], net.dim(), progress)?
                .filter(|(_, _, skipped)| skipped.is_empty() || args.on_bad_image == BadImage::Skip),
            None => None,
        };
        let cache_hit = hit.is_some();
        let (features, names, skipped, ips) = match hit {
            Some((features, names, skipped)) => {
                eprintln!(
                    "feature cache hit: {} (the network does not run)",
                    cache.as_ref().map_or(String::new(), |c| c.features.display().to_string())
                );
                (features, names, skipped, f64::NAN)
            }
            None => {
                let done = extract_in_parts(
                    args,
                    progress,
                    after_part,
                    &list.images[range.clone()],
                    &net,
                    &opts,
                    &fingerprint,
                    &parts_dir,
                    &skipped_path,
                )?;
                if let Some(c) = &cache {
                    c.store(net.dim(), &done.0, &done.1, &done.2)?;
                }
                done
            }
        };
        for (name, why) in &skipped {
            eprintln!("skipped {name}: {why}");
        }
        let set = feature_set(&list, names, features, net.dim())?;
        write_feature_set(&args.out, &set, args.precision)?;
        let mut outputs = vec![args.out.clone()];
        let tsv: String = std::iter::once("image\treason\n".to_string())
            .chain(skipped.iter().map(|(n, r)| format!("{n}\t{}\n", r.replace(['\t', '\n'], " "))))
            .collect();
        cft_data::write_atomic(&skipped_path, tsv.as_bytes())?;
        outputs.push(skipped_path);
        if let Some(h) = &args.head_out {
            self.write_classifier(&net, h)?;
            outputs.push(h.clone());
        }
        outputs.push(manifest_path.clone());
        let mut inputs = vec![InputFile::of(&args.images).unwrap_or(InputFile {
            path: args.images.display().to_string(),
            bytes: 0,
            fnv1a64: String::new(),
        })];
        inputs.extend(weight_input.iter().map(|(_, f)| f.clone()));
        let cfg = self.manifest_config(
            &net,
            &net_keys,
            (range.start, range.end),
            (set.features.rows(), skipped.len()),
            (!cache_hit).then_some(ips),
        );
        write_manifest(&manifest_path, &clock.manifest("extract", cfg, inputs, outputs))?;
        std::fs::remove_dir_all(&parts_dir).ok();
        let speed = if cache_hit { "from the feature cache".to_string() } else { format!("{ips:.1} images/s") };
        eprintln!(
            "wrote {} ({} images × {} features, {} skipped; {speed})",
            args.out.display(),
            set.features.rows(),
            net.dim(),
            skipped.len()
        );
        Ok(())
    }

    /// The manifest's configuration: every setting of the job and what came of it.
    fn manifest_config<'a>(
        &'a self,
        net: &Backbone,
        net_keys: &KeyNames,
        image_range: (usize, usize),
        (extracted, skipped): (usize, usize),
        images_per_second: Option<f64>,
    ) -> ExtractConfig<'a> {
        let args = self;
        ExtractConfig {
            backbone: args.backbone.name(),
            weights: &args.weights,
            parameters: net.parameters,
            images: args.images.display().to_string(),
            image_size: args.image_size,
            normalize: normalize_name(args.normalize),
            jpeg_decode: jpeg_name(args.jpeg_decode),
            resize: resize_name(args.resize),
            key_prefix: net_keys.backbone_prefix.clone(),
            head_key: net_keys.head_key.clone(),
            tf32: args.tf32,
            batch: args.batch,
            precision: precision_name(args.precision),
            device: args.device.to_string(),
            shard: args.shard.map(|s| s.to_string()),
            image_range,
            extracted,
            skipped,
            cache_hit: images_per_second.is_none(),
            images_per_second,
        }
    }

    /// Refuses outputs that equal an input, image lists inside the part folder this run
    /// rewrites, and an image size the batch cannot hold, before anything is read.
    fn check_paths(
        &self,
        parts_dir: &Path,
        skipped_path: &Path,
        manifest_path: &Path,
        weights_path: &Path,
    ) -> Result<()> {
        let args = self;
        let mut inputs = vec![Named::new("--images", &args.images)];
        if args.weights != "rule" {
            inputs.push(Named::new("--weights", weights_path));
        }
        let mut outputs = vec![
            Named::new("--out", &args.out),
            Named::new("the skipped-image list (<out>.skipped.tsv)", skipped_path),
            Named::new("the manifest (<out>.manifest.json)", manifest_path),
        ];
        if let Some(h) = &args.head_out {
            outputs.push(Named::new("--head-out", h));
        }
        check_outputs(&inputs, &outputs)?;
        if args.images.starts_with(parts_dir) {
            bail!(
                "--images {} lies inside the part folder {} that this run rewrites",
                args.images.display(),
                parts_dir.display()
            );
        }
        check_input_size(args.image_size, args.batch)?;
        Ok(())
    }

    /// Writes the network's classifier (`--head-out`) as an nn.Linear state dict.
    fn write_classifier(&self, net: &Backbone, h: &Path) -> Result<()> {
        let Some((w, b)) = net.classifier() else {
            bail!("--head-out: {} has no classifier layer for {}", self.weights, self.backbone);
        };
        let (c, d) = w.dims2()?;
        let head = LinearHead::new(
            Matrix::new(c, d, w.flatten_all()?.to_vec1::<f32>()?).context("head shape")?,
            b.to_vec1::<f32>()?,
        )
        .context("head shape")?;
        cft_data::write_head(h, &head, None)?;
        Ok(())
    }
}

/// The extracted rows as a feature set, with the image list's labels (if any) in row order.
fn feature_set(list: &ImageList, names: Vec<String>, features: Vec<f32>, dim: usize) -> Result<FeatureSet> {
    let labels = match list.labels.as_ref() {
        None => None,
        Some((l, cats)) => {
            let index: std::collections::HashMap<&str, usize> =
                list.images.iter().enumerate().map(|(i, im)| (im.name.as_str(), i)).collect();
            let rows = names
                .iter()
                .map(|n| index.get(n.as_str()).copied().with_context(|| format!("image {n} is not in the image list")))
                .collect::<Result<Vec<usize>>>()?;
            Some((l.select_rows(&rows), cats.clone()))
        }
    };
    let set = FeatureSet {
        features: Matrix::new(names.len(), dim, features).context("feature shape")?,
        categories: labels.as_ref().map(|(_, c)| c.clone()),
        labels: labels.map(|(l, _)| l),
        paths: Some(names),
    };
    Ok(set)
}

/// What [`extract_in_parts`] returns: features (row-major), image names, skipped images with
/// the reason, and the network's images per second.
type Extracted = (Vec<f32>, Vec<String>, Vec<(String, String)>, f64);

/// Extracts `todo` in parts of `--chunk` images under `parts_dir` (resumable: the folder's
/// fingerprint must match), returning every part's features in order.
#[allow(clippy::too_many_arguments)]
fn extract_in_parts(
    args: &ExtractionJob,
    progress: &dyn Progress,
    after_part: Option<&dyn Fn(usize)>,
    todo: &[ImageRef],
    net: &Backbone,
    opts: &ExtractOptions,
    fingerprint: &cft_experiment::checkpoint::Fingerprint,
    parts_dir: &Path,
    skipped_path: &Path,
) -> Result<Extracted> {
    let parts_key = parts_dir.join("fingerprint.json");
    if args.resume && parts_key.is_file() {
        let text = std::fs::read_to_string(&parts_key).with_context(|| parts_key.display().to_string())?;
        let stored: cft_experiment::checkpoint::Fingerprint = serde_json::from_str(&text).map_err(|e| {
            crate::error::refused!("{}: not a part-folder fingerprint ({e}): refusing to resume", parts_key.display())
        })?;
        stored.check_resume(fingerprint, &parts_key)?;
    } else {
        if parts_dir.exists() {
            if args.resume {
                bail!(
                    "{}: a part folder without a fingerprint (an older version, or not ours): refusing to resume; remove it or run without --resume",
                    parts_dir.display()
                );
            }
            std::fs::remove_dir_all(parts_dir).with_context(|| parts_dir.display().to_string())?;
        }
        std::fs::create_dir_all(parts_dir).with_context(|| parts_dir.display().to_string())?;
        cft_data::write_atomic(&parts_key, (serde_json::to_string_pretty(fingerprint)? + "\n").as_bytes())?;
    }
    let label = format!("extract {} ({})", net.name(), args.device);
    let total = todo.len() as u64;
    let t = std::time::Instant::now();
    let mut fresh = 0usize;
    let mut features = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    for (k, chunk) in todo.chunks(args.chunk.max(1)).enumerate() {
        let part = parts_dir.join(format!("part-{k:06}.safetensors"));
        let part_skipped = parts_dir.join(format!("part-{k:06}.skipped.json"));
        let (f, n, s) = if args.resume && part.exists() && part_skipped.exists() {
            let set = read_feature_set(&part)?;
            let s: Vec<(String, String)> = serde_json::from_str(&std::fs::read_to_string(&part_skipped)?)?;
            (set.features.into_vec(), set.paths.unwrap_or_default(), s)
        } else {
            let base = (k * args.chunk) as u64;
            let out =
                cft_features::extract(net, chunk, opts, &|done| progress.update(base + done as u64, total, &label));
            let out = match out {
                Ok(out) => out,
                Err(e) => {
                    // Finished parts stay for --resume (which may also change --on-bad-image);
                    // when the first part fails there are none, and the folder is only clutter.
                    if k == 0 {
                        let _ = std::fs::remove_dir_all(parts_dir);
                    }
                    return Err(match args.on_bad_image {
                        BadImage::Fail => crate::error::refused!(
                            "{e}; rerun with --on-bad-image skip to leave unreadable images out (they are listed in {})",
                            skipped_path.display()
                        ),
                        BadImage::Skip => e.into(),
                    });
                }
            };
            fresh += chunk.len();
            let set = FeatureSet {
                features: Matrix::new(out.names.len(), out.dim, out.features.clone()).context("feature shape")?,
                labels: None,
                categories: None,
                paths: Some(out.names.clone()),
            };
            write_feature_set(&part, &set, cft_core::Precision::F32)?;
            cft_data::write_atomic(&part_skipped, serde_json::to_string(&out.skipped)?.as_bytes())?;
            if let Some(hook) = after_part {
                hook(k + 1);
            }
            (out.features, out.names, out.skipped)
        };
        progress.update(((k + 1) * args.chunk).min(todo.len()) as u64, total, &label);
        features.extend(f);
        names.extend(n);
        skipped.extend(s);
    }
    progress.finish();
    let secs = t.elapsed().as_secs_f64();
    Ok((features, names, skipped, fresh as f64 / secs.max(1e-9)))
}

/// A cache entry's features (row-major), image names and skipped images with the reason.
type CacheEntry = (Vec<f32>, Vec<String>, Vec<(String, String)>);

/// One entry of the feature cache (`--cache DIR`): `<key>.safetensors` (features and image
/// names) and `<key>.json` (the full fingerprint, checked on every hit, and the skipped images).
struct FeatureCache {
    /// The entry's feature file.
    features: PathBuf,
    meta: PathBuf,
    fingerprint: cft_experiment::checkpoint::Fingerprint,
}

#[derive(Serialize, serde::Deserialize)]
struct CacheMeta {
    fingerprint: cft_experiment::checkpoint::Fingerprint,
    skipped: Vec<(String, String)>,
}

/// What decides extracted features: the images (names and file sizes) and the extraction
/// settings; the part folder adds its chunk size, the feature cache does not.
#[derive(Clone, Serialize)]
struct ExtractionKey<'a> {
    backbone: &'a str,
    weights_rule: bool,
    /// Count and FNV-1a 64 of the image names and content hashes (xxh3) of this run's range.
    images: (usize, String),
    image_size: usize,
    normalize: &'static str,
    jpeg_decode: &'static str,
    resize: &'static str,
    /// The weights file's key names (as given; detection is a function of the hashed file).
    #[serde(skip_serializing_if = "Option::is_none")]
    key_prefix: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    head_key: Option<&'a str>,
    precision: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tf32: bool,
    device_kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    chunk: Option<usize>,
    image_range: (usize, usize),
}

impl<'a> ExtractionKey<'a> {
    fn new(args: &'a ExtractionJob, images: &[ImageRef], range: &std::ops::Range<usize>, chunk: Option<usize>) -> Self {
        use rayon::prelude::*;
        // Names and contents: an image replaced in place (even at the same size) is a new key.
        // Unreadable files hash as such; extraction then reports them.
        let contents: Vec<u64> = images
            .par_iter()
            .map(|im| std::fs::read(&im.file).map_or(u64::MAX, |b| xxhash_rust::xxh3::xxh3_64(&b)))
            .collect();
        let h = images.iter().zip(&contents).fold(cft_experiment::manifest::FNV_OFFSET, |h, (im, c)| {
            let h = cft_experiment::manifest::fnv1a64(h, im.name.as_bytes());
            cft_experiment::manifest::fnv1a64(h, &c.to_le_bytes())
        });
        Self {
            backbone: args.backbone.name(),
            weights_rule: args.weights == "rule",
            images: (images.len(), format!("{h:016x}")),
            image_size: args.image_size,
            normalize: normalize_name(args.normalize),
            jpeg_decode: jpeg_name(args.jpeg_decode),
            resize: resize_name(args.resize),
            key_prefix: args.keys.backbone_prefix.as_deref(),
            head_key: args.keys.head_key.as_deref(),
            precision: precision_name(args.precision),
            tf32: args.tf32,
            device_kind: if args.device.is_cuda() { "cuda" } else { "cpu" },
            chunk,
            image_range: (range.start, range.end),
        }
    }
}

impl FeatureCache {
    fn new(dir: &Path, key: &ExtractionKey<'_>, weights: &[(String, InputFile)]) -> Result<Self> {
        if dir.exists() && !dir.is_dir() {
            bail!(
                "the feature cache {} is a file, not a folder (set by --cache or $CFT_CACHE_DIR); name a folder",
                dir.display()
            );
        }
        let fingerprint = cft_experiment::checkpoint::Fingerprint::with_inputs(key, weights)?;
        let id = cft_experiment::manifest::fnv1a64(
            cft_experiment::manifest::FNV_OFFSET,
            serde_json::to_string(&fingerprint)?.as_bytes(),
        );
        Ok(Self {
            features: dir.join(format!("{id:016x}.safetensors")),
            meta: dir.join(format!("{id:016x}.json")),
            fingerprint,
        })
    }

    /// The cached features, names and skipped images, if this key is cached and the entry holds
    /// exactly `images` (their names, in order, less the skipped ones, `dim` features each). An
    /// entry that does not (damaged, or another list's features under this name) is a miss:
    /// a note says so, and the extraction that follows replaces it.
    fn lookup(&self, images: &[ImageRef], dim: usize, progress: &dyn Progress) -> Result<Option<CacheEntry>> {
        if !(self.meta.is_file() && self.features.is_file()) {
            return Ok(None);
        }
        match self.read_entry(images, dim) {
            Ok(entry) => Ok(Some(entry)),
            Err(why) => {
                progress
                    .note(&format!("note: feature cache entry {}: {why}; extracting again", self.features.display()));
                Ok(None)
            }
        }
    }

    /// The entry, checked against what it must hold (see [`FeatureCache::lookup`]).
    fn read_entry(&self, images: &[ImageRef], dim: usize) -> std::result::Result<CacheEntry, String> {
        let text = std::fs::read_to_string(&self.meta).map_err(|e| format!("{}: {e}", self.meta.display()))?;
        let meta: CacheMeta = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a cache entry's record ({e})", self.meta.display()))?;
        if !meta.fingerprint.differences(&self.fingerprint).is_empty() {
            return Err("recorded for other images or settings".into());
        }
        let set = read_feature_set(&self.features).map_err(|e| e.to_string())?;
        let names = set.paths.clone().unwrap_or_default();
        let skipped: std::collections::HashSet<&str> = meta.skipped.iter().map(|(n, _)| n.as_str()).collect();
        let expected: Vec<&str> = images.iter().map(|im| im.name.as_str()).filter(|n| !skipped.contains(n)).collect();
        if set.features.cols() != dim {
            return Err(format!("{} features per image, the network gives {dim}", set.features.cols()));
        }
        if names.len() != expected.len() || names.iter().zip(&expected).any(|(a, b)| a != b) {
            let first =
                names.iter().zip(&expected).position(|(a, b)| a != b).unwrap_or(names.len().min(expected.len()));
            return Err(format!(
                "{} images where this list has {} (first difference at row {first})",
                names.len(),
                expected.len()
            ));
        }
        Ok((set.features.into_vec(), names, meta.skipped))
    }

    /// Stores an extraction (features first, then the entry's metadata, each atomically).
    fn store(&self, dim: usize, features: &[f32], names: &[String], skipped: &[(String, String)]) -> Result<()> {
        let set = FeatureSet {
            features: Matrix::new(names.len(), dim, features.to_vec()).context("feature shape")?,
            labels: None,
            categories: None,
            paths: Some(names.to_vec()),
        };
        write_feature_set(&self.features, &set, cft_core::Precision::F32)?;
        let meta = CacheMeta { fingerprint: self.fingerprint.clone(), skipped: skipped.to_vec() };
        cft_data::write_atomic(&self.meta, (serde_json::to_string_pretty(&meta)? + "\n").as_bytes())?;
        Ok(())
    }
}

/// Concatenates the rows of feature-set shards written by `cft extract --shard` (each the
/// same dimension, categories and label layout) into `out`; returns the rows written.
pub fn merge_shards(shards: &[PathBuf], out: &Path) -> Result<usize> {
    let inputs: Vec<Named<'_>> = shards.iter().map(|p| Named::new("a shard", p)).collect();
    check_outputs(&inputs, &[Named::new("--out", out)])?;
    let sets: Vec<FeatureSet> = shards.iter().map(|p| read_feature_set(p)).collect::<std::result::Result<_, _>>()?;
    let Some(first) = sets.first() else { bail!("merge-features: no shard given") };
    let d = first.features.cols();
    for (s, p) in sets.iter().zip(shards) {
        if s.features.cols() != d {
            bail!("{}: {} features per image, the first shard has {d}", p.display(), s.features.cols());
        }
        if s.categories != first.categories || s.labels.is_some() != first.labels.is_some() {
            bail!("{}: categories or labels differ from the first shard's", p.display());
        }
    }
    let rows: usize = sets.iter().map(|s| s.features.rows()).sum();
    let mut data = Vec::with_capacity(rows * d);
    let (mut paths, mut labels) = (Vec::new(), Vec::new());
    for s in &sets {
        data.extend_from_slice(s.features.as_slice());
        paths.extend(s.paths.clone().unwrap_or_default());
        if let Some(l) = &s.labels {
            labels.extend_from_slice(l.as_slice());
        }
    }
    let labels = match first.labels.as_ref().map(|l| l.n_categories()) {
        Some(c) => Some(PartialLabels::new(rows, c, labels)?),
        None => None,
    };
    let merged = FeatureSet {
        features: Matrix::new(rows, d, data)?,
        labels,
        categories: first.categories.clone(),
        paths: (paths.len() == rows).then_some(paths),
    };
    write_feature_set(out, &merged, Precision::F32)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records the notes it is given.
    #[derive(Default)]
    struct Notes(Mutex<Vec<String>>);

    impl Progress for Notes {
        fn update(&self, _: u64, _: u64, _: &str) {}
        fn note(&self, line: &str) {
            self.0.lock().unwrap().push(line.to_string());
        }
    }

    fn job(dir: &Path) -> ExtractionJob {
        ExtractionJob {
            backbone: BackboneName::Resnet20Cifar,
            weights: "rule".into(),
            images: dir.join("list.txt"),
            image_root: None,
            image_size: 32,
            normalize: Normalize::Imagenet,
            batch: 4,
            precision: Precision::F32,
            device: Device::Cpu,
            shard: None,
            resume: false,
            chunk: 16,
            cache: Some(dir.join("cache")),
            on_bad_image: BadImage::Fail,
            jpeg_decode: JpegDecode::Exact,
            resize: Resize::Pillow13,
            keys: KeyNames::default(),
            tf32: false,
            head_out: None,
            out: dir.join("out.safetensors"),
        }
    }

    fn images(dir: &Path, names: &[&str]) -> Vec<ImageRef> {
        names
            .iter()
            .map(|n| {
                std::fs::write(dir.join(n), n.as_bytes()).unwrap();
                ImageRef { file: dir.join(n), name: n.to_string() }
            })
            .collect()
    }

    #[test]
    fn the_cache_key_follows_the_images_contents_and_the_settings() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let j = job(d);
        let ims = images(d, &["a.jpg", "b.jpg"]);
        let key = |j: &ExtractionJob, ims: &[ImageRef]| {
            serde_json::to_string(&ExtractionKey::new(j, ims, &(0..ims.len()), None)).unwrap()
        };
        let base = key(&j, &ims);
        assert_eq!(key(&j, &ims), base, "the same images and settings, the same key");
        std::fs::write(d.join("b.jpg"), b"another picture").unwrap();
        assert_ne!(key(&j, &ims), base, "an image replaced in place is a new key");
        std::fs::write(d.join("b.jpg"), b"b.jpg").unwrap();
        assert_ne!(key(&ExtractionJob { resize: Resize::Pillow12, ..j.clone() }, &ims), base);
        assert_ne!(key(&ExtractionJob { normalize: Normalize::None, ..j.clone() }, &ims), base);
        assert_ne!(key(&ExtractionJob { device: Device::Cuda(0), ..j.clone() }, &ims), base);
        // The cache-key spellings stay what earlier caches were written with.
        assert!(base.contains("\"normalize\":\"Imagenet\"") && base.contains("\"resize\":\"Pillow13\""), "{base}");
    }

    #[test]
    fn a_cache_entry_that_does_not_hold_this_list_is_a_miss_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let j = job(d);
        let ims = images(d, &["a.jpg", "b.jpg", "c.jpg"]);
        let key = ExtractionKey::new(&j, &ims, &(0..3), None);
        let cache = FeatureCache::new(&d.join("cache"), &key, &[]).unwrap();
        std::fs::create_dir_all(d.join("cache")).unwrap();
        let names: Vec<String> = ims.iter().map(|i| i.name.clone()).collect();
        cache.store(2, &[0.0; 6], &names, &[]).unwrap();
        let notes = Notes::default();
        let hit = cache.lookup(&ims, 2, &notes).unwrap().unwrap();
        assert_eq!(hit.1, names);
        // Another width than the network's, another list, a row fewer: misses, each saying why.
        assert!(cache.lookup(&ims, 64, &notes).unwrap().is_none());
        let other = images(d, &["a.jpg", "x.jpg", "c.jpg"]);
        assert!(cache.lookup(&other, 2, &notes).unwrap().is_none());
        cache.store(2, &[0.0; 4], &names[..2], &[]).unwrap();
        assert!(cache.lookup(&ims, 2, &notes).unwrap().is_none());
        let notes = notes.0.into_inner().unwrap();
        assert_eq!(notes.len(), 3);
        assert!(notes[0].contains("2 features per image, the network gives 64"), "{notes:?}");
        assert!(notes[1].contains("first difference at row 1") && notes[1].ends_with("extracting again"), "{notes:?}");
        assert!(notes[2].contains("2 images where this list has 3"), "{notes:?}");
        // A skipped image is not expected in the entry.
        cache
            .store(2, &[0.0; 4], &[names[0].clone(), names[2].clone()], &[("b.jpg".into(), "truncated".into())])
            .unwrap();
        assert_eq!(cache.lookup(&ims, 2, &Notes::default()).unwrap().unwrap().2.len(), 1);
    }
}
