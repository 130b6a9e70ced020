//! `cft extract`: images → backbone features → a feature set for the CFT core (tensor
//! `features`, image paths in the metadata, labels when the image list is a labelled dataset),
//! with the trained classifier optionally exported as a CFT head; `cft merge-features` joins
//! shards; `cft bench-backbone` times the network alone.
//!
//! Long runs write one part file per `--chunk` images under `<out>.parts/`; `--resume` keeps
//! the finished parts. The output and its manifest are written atomically at the end.

use crate::common::{progress, sibling};
use crate::manifest::{write_manifest, InputFile, RunClock};
use crate::reproduce_cmd::PrecisionArg;
use anyhow::{bail, Context, Result};
use cft_core::{LinearHead, Matrix, PartialLabels};
use cft_data::{check_outputs, read_feature_set, write_feature_set, FeatureSet, Named};
use cft_features::{Backbone, BadImage, ExtractOptions, ImageRef, KeyNames, Normalize, Placement, WeightSource};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Arguments of `cft extract`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExtractArgs {
    /// Backbone: resnet18/34/50/101/152, densenet121/169/201, resnet20-cifar.
    #[arg(long)]
    pub backbone: String,
    /// PyTorch state dict as safetensors (`safetensors.torch.save_file(model.state_dict(), W)`);
    /// `rule` builds the deterministic weights of the parity fixtures (for timing).
    #[arg(long)]
    pub weights: String,
    /// A folder (its .jpg/.jpeg/.png files in file-name order), a text file with one image path
    /// per line, or a CheXpert CSV (labels come along).
    #[arg(long)]
    pub images: PathBuf,
    /// Folder that relative image paths start from (default: the list file's folder).
    #[arg(long)]
    pub image_root: Option<PathBuf>,
    /// Images are resized to S×S (PIL bilinear).
    #[arg(long, default_value_t = 224)]
    pub image_size: usize,
    /// Input normalisation after ToTensor.
    #[arg(long, value_enum, default_value_t = NormalizeArg::Imagenet)]
    pub normalize: NormalizeArg,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Compute and storage precision.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    pub precision: PrecisionArg,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Extract only shard i of n (`i/n`, 0-based, contiguous image ranges); join with merge-features.
    #[arg(long)]
    pub shard: Option<String>,
    /// Keep the finished parts of an interrupted run.
    #[arg(long)]
    pub resume: bool,
    /// Images per part file (the resume granularity).
    #[arg(long, default_value_t = 1024)]
    pub chunk: usize,
    /// Feature cache folder: features are keyed by the image list (names and contents), the
    /// backbone, the weights file's hash and key names, image size, resize, normalisation, JPEG
    /// decoding, precision, TF32 and device kind;
    /// a later extraction with the same key reuses them instead of running the network.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Unreadable images: skip them (listed in `<out>.skipped.tsv`) or stop.
    #[arg(long, value_enum, default_value_t = BadImageArg::Fail)]
    pub on_bad_image: BadImageArg,
    /// JPEG decoding: `exact` decodes as Pillow does (libjpeg-turbo; torchvision's pixels, bit
    /// for bit); `reduced` first decodes large photos at a reduced DCT scale (faster; the
    /// features differ slightly, see the README).
    #[arg(long, value_enum, default_value_t = JpegDecodeArg::Exact)]
    pub jpeg_decode: JpegDecodeArg,
    /// Whose bilinear resize: `pillow13` (today's Pillow: the vertical pass first when the
    /// height shrinks by more than twice as many pixels as the width) or `pillow12` (Pillow ≤ 12
    /// and the CFT authors' pinned 9.3: always horizontal first). Part of the cache key.
    #[arg(long, value_enum, default_value_t = ResizeArg::Pillow13)]
    pub resize: ResizeArg,
    /// Prefix of the backbone's keys in the weights file (`backbone.` for the CFT authors'
    /// checkpoints); detected when unambiguous.
    #[arg(long)]
    pub key_prefix: Option<String>,
    /// The classifier's key without `.weight`/`.bias` (`classification_layer` for the CFT
    /// authors' checkpoints); default: torchvision's, or the one linear layer outside the
    /// backbone prefix.
    #[arg(long)]
    pub head_key: Option<String>,
    /// With `--precision f32` on CUDA: TF32 tensor cores for the convolutions' GEMMs (f32
    /// storage and accumulation, 10-bit mantissa products; PyTorch's default for cuDNN
    /// convolutions). Part of the cache key.
    #[arg(long)]
    pub tf32: bool,
    /// Also write the weights file's classifier (fc / classifier / linear) as a CFT head.
    #[arg(long)]
    pub head_out: Option<PathBuf>,
    /// The feature set to write (safetensors).
    #[arg(long)]
    pub out: PathBuf,
}

/// Normalisation on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum NormalizeArg {
    /// [0, 1] values.
    None,
    /// ImageNet mean/std.
    Imagenet,
}

/// JPEG decoding on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum JpegDecodeArg {
    /// Pillow-exact (libjpeg-turbo, full size).
    Exact,
    /// Reduced DCT scale, then the exact resize.
    Reduced,
}

impl From<JpegDecodeArg> for cft_features::JpegDecode {
    fn from(a: JpegDecodeArg) -> Self {
        match a {
            JpegDecodeArg::Exact => Self::Exact,
            JpegDecodeArg::Reduced => Self::Reduced,
        }
    }
}

/// Resize pass order on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum ResizeArg {
    /// Pillow ≥ 13's pass order.
    Pillow13,
    /// Pillow ≤ 12's pass order (horizontal first).
    Pillow12,
}

impl From<ResizeArg> for cft_features::PillowResize {
    fn from(a: ResizeArg) -> Self {
        match a {
            ResizeArg::Pillow13 => Self::Pillow13,
            ResizeArg::Pillow12 => Self::Pillow12,
        }
    }
}

impl ExtractArgs {
    /// The weights file's key names from `--key-prefix` / `--head-key`.
    pub fn key_names(&self) -> KeyNames {
        KeyNames { backbone_prefix: self.key_prefix.clone(), head_key: self.head_key.clone() }
    }
}

/// Bad-image policy on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum BadImageArg {
    /// Skip and record.
    Skip,
    /// Stop with an error.
    Fail,
}

fn dtype(p: PrecisionArg) -> candle_core::DType {
    match p {
        PrecisionArg::F32 => candle_core::DType::F32,
        PrecisionArg::F16 => candle_core::DType::F16,
        PrecisionArg::Bf16 => candle_core::DType::BF16,
    }
}

/// Loads a backbone by name from a weights file or the fixture rule; also returns the key
/// names in force (given or detected).
pub fn load_backbone(
    name: &str,
    weights: &str,
    keys: &KeyNames,
    device: &str,
    precision: PrecisionArg,
) -> Result<(Backbone, KeyNames)> {
    if precision == PrecisionArg::Bf16 && device == "cpu" {
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
    Ok((Backbone::load(name, &src, placement)?, src.key_names()))
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
pub fn set_tf32(on: bool, device: &str, precision: PrecisionArg) -> Result<()> {
    if on && (!device.starts_with("cuda") || precision != PrecisionArg::F32) {
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

fn read_list(args: &ExtractArgs) -> Result<ImageList> {
    let p = &args.images;
    if p.is_dir() {
        return Ok(ImageList { images: cft_features::list_folder(p)?, labels: None });
    }
    let root = args.image_root.clone().unwrap_or_else(|| p.parent().map(Path::to_path_buf).unwrap_or_default());
    if crate::common::first_line(p)?.starts_with("Path,Sex,") {
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

fn parse_shard(s: &str, n: usize) -> Result<std::ops::Range<usize>> {
    let bad = || anyhow::anyhow!("--shard {s}: expected i/n with 0 ≤ i < n");
    let (i, k) = s.split_once('/').ok_or_else(bad)?;
    let (i, k): (usize, usize) = (i.parse().map_err(|_| bad())?, k.parse().map_err(|_| bad())?);
    if k == 0 || i >= k {
        return Err(bad());
    }
    Ok(i * n / k..(i + 1) * n / k)
}

#[derive(Serialize)]
struct ExtractConfig<'a> {
    backbone: &'a str,
    weights: &'a str,
    parameters: usize,
    images: String,
    image_size: usize,
    normalize: NormalizeArg,
    jpeg_decode: JpegDecodeArg,
    resize: ResizeArg,
    key_prefix: Option<String>,
    head_key: Option<String>,
    tf32: bool,
    batch: usize,
    precision: PrecisionArg,
    device: &'a str,
    shard: Option<&'a str>,
    image_range: (usize, usize),
    extracted: usize,
    skipped: usize,
    /// Features came from the cache: no image was decoded, the network did not run.
    cache_hit: bool,
    /// The network's throughput (absent on a cache hit).
    images_per_second: Option<f64>,
}

/// Runs `cft extract`.
pub fn run(args: &ExtractArgs) -> Result<()> {
    let clock = RunClock::start();
    let parts_dir = sibling(&args.out, ".parts");
    let skipped_path = sibling(&args.out, ".skipped.tsv");
    let manifest_path = sibling(&args.out, ".manifest.json");
    let weights_path = PathBuf::from(&args.weights);
    let mut inputs = vec![Named::new("--images", &args.images)];
    if args.weights != "rule" {
        inputs.push(Named::new("--weights", &weights_path));
    }
    let mut outputs = vec![
        Named::new("--out", &args.out),
        Named::new("the skipped-image list (<out>.skipped.tsv)", &skipped_path),
        Named::new("the manifest (<out>.manifest.json)", &manifest_path),
    ];
    if let Some(h) = &args.head_out {
        outputs.push(Named::new("--head-out", h));
    }
    check_outputs(&inputs, &outputs)?;
    if args.images.starts_with(&parts_dir) {
        bail!(
            "--images {} lies inside the part folder {} that this run rewrites",
            args.images.display(),
            parts_dir.display()
        );
    }
    check_input_size(args.image_size, args.batch)?;
    let _lock = cft_data::OutputLock::acquire(&args.out)?;
    set_tf32(args.tf32, &args.device, args.precision)?;
    let list = read_list(args)?;
    let range = match &args.shard {
        Some(s) => parse_shard(s, list.images.len())?,
        None => 0..list.images.len(),
    };
    let (net, net_keys) =
        load_backbone(&args.backbone, &args.weights, &args.key_names(), &args.device, args.precision)?;
    let opts = ExtractOptions {
        image_size: args.image_size,
        normalize: match args.normalize {
            NormalizeArg::None => Normalize::None,
            NormalizeArg::Imagenet => Normalize::Imagenet,
        },
        batch: args.batch.max(1),
        bad_image: match args.on_bad_image {
            BadImageArg::Skip => BadImage::Skip,
            BadImageArg::Fail => BadImage::Fail,
        },
        jpeg: args.jpeg_decode.into(),
        resize: args.resize.into(),
    };
    // The part folder records what its parts were extracted with; a resume must match it.
    let key = ExtractionKey::new(args, &list.images[range.clone()], &range, Some(args.chunk));
    // The weights file is hashed once, for the part folder, the cache and the manifest.
    let weight_input: Vec<(String, InputFile)> =
        if args.weights == "rule" { vec![] } else { vec![("--weights".to_string(), InputFile::of(&weights_path)?)] };
    let fingerprint = crate::checkpoint::Fingerprint::with_inputs(&key, &weight_input)?;
    // The feature cache: a hit skips the network entirely.
    let cache = match &args.cache {
        Some(dir) => Some(FeatureCache::new(dir, &ExtractionKey { chunk: None, ..key.clone() }, &weight_input)?),
        None => None,
    };
    let hit = match &cache {
        // An entry made with `--on-bad-image skip` left images out: a run that must fail on
        // them extracts again (and fails, naming the image) instead of reusing it.
        Some(c) => c.lookup()?.filter(|(_, _, skipped)| skipped.is_empty() || args.on_bad_image == BadImageArg::Skip),
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
    let labels = list.labels.as_ref().map(|(l, cats)| {
        let index: std::collections::HashMap<&str, usize> =
            list.images.iter().enumerate().map(|(i, im)| (im.name.as_str(), i)).collect();
        let rows: Vec<usize> = names.iter().map(|n| index[n.as_str()]).collect();
        (l.select_rows(&rows), cats.clone())
    });
    let set = FeatureSet {
        features: Matrix::new(names.len(), net.dim(), features).context("feature shape")?,
        categories: labels.as_ref().map(|(_, c)| c.clone()),
        labels: labels.map(|(l, _)| l),
        paths: Some(names),
    };
    let precision: cft_core::Precision = args.precision.into();
    write_feature_set(&args.out, &set, precision)?;
    let mut outputs = vec![args.out.clone()];
    let tsv: String = std::iter::once("image\treason\n".to_string())
        .chain(skipped.iter().map(|(n, r)| format!("{n}\t{}\n", r.replace(['\t', '\n'], " "))))
        .collect();
    cft_data::write_atomic(&skipped_path, tsv.as_bytes())?;
    outputs.push(skipped_path);
    if let Some(h) = &args.head_out {
        let Some((w, b)) = net.classifier() else {
            bail!("--head-out: {} has no classifier layer for {}", args.weights, args.backbone);
        };
        let (c, d) = w.dims2()?;
        let head = LinearHead::new(
            Matrix::new(c, d, w.flatten_all()?.to_vec1::<f32>()?).context("head shape")?,
            b.to_vec1::<f32>()?,
        )
        .context("head shape")?;
        cft_data::write_head(h, &head, None)?;
        outputs.push(h.clone());
    }
    outputs.push(manifest_path.clone());
    let mut inputs = vec![InputFile::of(&args.images).unwrap_or(InputFile {
        path: args.images.display().to_string(),
        bytes: 0,
        fnv1a64: String::new(),
    })];
    inputs.extend(weight_input.iter().map(|(_, f)| f.clone()));
    let cfg = ExtractConfig {
        backbone: &args.backbone,
        weights: &args.weights,
        parameters: net.parameters,
        images: args.images.display().to_string(),
        image_size: args.image_size,
        normalize: args.normalize,
        jpeg_decode: args.jpeg_decode,
        resize: args.resize,
        key_prefix: net_keys.backbone_prefix.clone(),
        head_key: net_keys.head_key.clone(),
        tf32: args.tf32,
        batch: args.batch,
        precision: args.precision,
        device: &args.device,
        shard: args.shard.as_deref(),
        image_range: (range.start, range.end),
        extracted: set.features.rows(),
        skipped: skipped.len(),
        cache_hit,
        images_per_second: (!cache_hit).then_some(ips),
    };
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

/// What [`extract_in_parts`] returns: features (row-major), image names, skipped images with
/// the reason, and the network's images per second.
type Extracted = (Vec<f32>, Vec<String>, Vec<(String, String)>, f64);

/// Extracts `todo` in parts of `--chunk` images under `parts_dir` (resumable: the folder's
/// fingerprint must match), returning every part's features in order.
fn extract_in_parts(
    args: &ExtractArgs,
    todo: &[ImageRef],
    net: &Backbone,
    opts: &ExtractOptions,
    fingerprint: &crate::checkpoint::Fingerprint,
    parts_dir: &Path,
    skipped_path: &Path,
) -> Result<Extracted> {
    let parts_key = parts_dir.join("fingerprint.json");
    if args.resume && parts_key.is_file() {
        let text = std::fs::read_to_string(&parts_key).with_context(|| parts_key.display().to_string())?;
        let stored: crate::checkpoint::Fingerprint = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!("{}: not a part-folder fingerprint ({e}): refusing to resume", parts_key.display())
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
    let bar = progress(todo.len() as u64, &format!("extract {} ({})", net.name(), args.device));
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
            let base = bar.position();
            let out = cft_features::extract(net, chunk, opts, &|done| bar.set_position(base + done as u64));
            let out = match out {
                Ok(out) => out,
                Err(e) => {
                    // Finished parts stay for --resume (which may also change --on-bad-image);
                    // when the first part fails there are none, and the folder is only clutter.
                    if k == 0 {
                        let _ = std::fs::remove_dir_all(parts_dir);
                    }
                    return Err(match args.on_bad_image {
                        BadImageArg::Fail => anyhow::anyhow!(
                            "{e}; rerun with --on-bad-image skip to leave unreadable images out (they are listed in {})",
                            skipped_path.display()
                        ),
                        BadImageArg::Skip => e.into(),
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
            // Fault injection for the resume test: stop as if interrupted after N parts.
            if std::env::var("CFT_ABORT_AFTER_PARTS").ok().and_then(|v| v.parse().ok()) == Some(k + 1) {
                eprintln!("CFT_ABORT_AFTER_PARTS={}: stopping as if interrupted", k + 1);
                std::process::exit(3);
            }
            (out.features, out.names, out.skipped)
        };
        bar.set_position(((k + 1) * args.chunk).min(todo.len()) as u64);
        features.extend(f);
        names.extend(n);
        skipped.extend(s);
    }
    bar.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    Ok((features, names, skipped, fresh as f64 / secs.max(1e-9)))
}

/// A cache entry's features (row-major), image names and skipped images with the reason.
type CacheEntry = (Vec<f32>, Vec<String>, Vec<(String, String)>);

/// One entry of the feature cache (`--cache DIR`): `<key>.safetensors` (features and image
/// names) and `<key>.json` (the full fingerprint, checked on every hit, and the skipped images).
struct FeatureCache {
    features: PathBuf,
    meta: PathBuf,
    fingerprint: crate::checkpoint::Fingerprint,
}

#[derive(Serialize, serde::Deserialize)]
struct CacheMeta {
    fingerprint: crate::checkpoint::Fingerprint,
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
    normalize: NormalizeArg,
    jpeg_decode: JpegDecodeArg,
    resize: ResizeArg,
    /// The weights file's key names (as given; detection is a function of the hashed file).
    #[serde(skip_serializing_if = "Option::is_none")]
    key_prefix: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    head_key: Option<&'a str>,
    precision: PrecisionArg,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tf32: bool,
    device_kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    chunk: Option<usize>,
    image_range: (usize, usize),
}

impl<'a> ExtractionKey<'a> {
    fn new(args: &'a ExtractArgs, images: &[ImageRef], range: &std::ops::Range<usize>, chunk: Option<usize>) -> Self {
        use rayon::prelude::*;
        // Names and contents: an image replaced in place (even at the same size) is a new key.
        // Unreadable files hash as such; extraction then reports them.
        let contents: Vec<u64> = images
            .par_iter()
            .map(|im| std::fs::read(&im.file).map_or(u64::MAX, |b| xxhash_rust::xxh3::xxh3_64(&b)))
            .collect();
        let h = images.iter().zip(&contents).fold(crate::manifest::FNV_OFFSET, |h, (im, c)| {
            let h = crate::manifest::fnv1a64(h, im.name.as_bytes());
            crate::manifest::fnv1a64(h, &c.to_le_bytes())
        });
        Self {
            backbone: &args.backbone,
            weights_rule: args.weights == "rule",
            images: (images.len(), format!("{h:016x}")),
            image_size: args.image_size,
            normalize: args.normalize,
            jpeg_decode: args.jpeg_decode,
            resize: args.resize,
            key_prefix: args.key_prefix.as_deref(),
            head_key: args.head_key.as_deref(),
            precision: args.precision,
            tf32: args.tf32,
            device_kind: if args.device.starts_with("cuda") { "cuda" } else { "cpu" },
            chunk,
            image_range: (range.start, range.end),
        }
    }
}

impl FeatureCache {
    fn new(dir: &Path, key: &ExtractionKey<'_>, weights: &[(String, InputFile)]) -> Result<Self> {
        let fingerprint = crate::checkpoint::Fingerprint::with_inputs(key, weights)?;
        let id = crate::manifest::fnv1a64(crate::manifest::FNV_OFFSET, serde_json::to_string(&fingerprint)?.as_bytes());
        Ok(Self {
            features: dir.join(format!("{id:016x}.safetensors")),
            meta: dir.join(format!("{id:016x}.json")),
            fingerprint,
        })
    }

    /// The cached features, names and skipped images, if this key is cached (a damaged or
    /// colliding entry is an error naming it).
    fn lookup(&self) -> Result<Option<CacheEntry>> {
        if !(self.meta.is_file() && self.features.is_file()) {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&self.meta).with_context(|| self.meta.display().to_string())?;
        let meta: CacheMeta = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a feature-cache entry ({e}); remove it", self.meta.display()))?;
        meta.fingerprint.check_resume(&self.fingerprint, &self.meta)?;
        let set = read_feature_set(&self.features)?;
        let names = set.paths.clone().unwrap_or_default();
        Ok(Some((set.features.into_vec(), names, meta.skipped)))
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

/// Arguments of `cft merge-features`.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// The merged feature set.
    #[arg(long)]
    pub out: PathBuf,
    /// Shards in order.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
}

/// Runs `cft merge-features`: concatenates shards' rows (same dimension and categories).
pub fn merge(args: &MergeArgs) -> Result<()> {
    let inputs: Vec<Named<'_>> = args.shards.iter().map(|p| Named::new("a shard", p)).collect();
    check_outputs(&inputs, &[Named::new("--out", &args.out)])?;
    let sets: Vec<FeatureSet> = args.shards.iter().map(|p| read_feature_set(p)).collect::<Result<_, _>>()?;
    let d = sets[0].features.cols();
    for (s, p) in sets.iter().zip(&args.shards) {
        if s.features.cols() != d {
            bail!("{}: {} features per image, the first shard has {d}", p.display(), s.features.cols());
        }
        if s.categories != sets[0].categories || s.labels.is_some() != sets[0].labels.is_some() {
            bail!("{}: categories or labels differ from the first shard's", p.display());
        }
    }
    let rows: usize = sets.iter().map(|s| s.features.rows()).sum();
    let mut data = Vec::with_capacity(rows * d);
    let mut paths = Vec::new();
    let mut labels = Vec::new();
    for s in &sets {
        data.extend_from_slice(s.features.as_slice());
        paths.extend(s.paths.clone().unwrap_or_default());
        if let Some(l) = &s.labels {
            labels.extend_from_slice(l.as_slice());
        }
    }
    let c = sets[0].labels.as_ref().map(|l| l.n_categories());
    let merged = FeatureSet {
        features: Matrix::new(rows, d, data).context("shape")?,
        labels: match c {
            Some(c) => Some(PartialLabels::new(rows, c, labels).context("labels shape")?),
            None => None,
        },
        categories: sets[0].categories.clone(),
        paths: (paths.len() == rows).then_some(paths),
    };
    write_feature_set(&args.out, &merged, cft_core::Precision::F32)?;
    eprintln!("wrote {} ({rows} images from {} shards)", args.out.display(), sets.len());
    Ok(())
}

/// Arguments of `cft bench-backbone`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchBackboneArgs {
    /// Backbone name.
    #[arg(long, default_value = "resnet50")]
    pub backbone: String,
    /// Weights (`rule`: the fixture rule; timing does not depend on values).
    #[arg(long, default_value = "rule")]
    pub weights: String,
    /// Image size.
    #[arg(long, default_value_t = 224)]
    pub image_size: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Timed batches (after one warm-up batch).
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    /// Compute precision.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    pub precision: PrecisionArg,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// TF32 tensor cores for f32 convolutions on CUDA (see `cft extract --tf32`).
    #[arg(long)]
    pub tf32: bool,
    /// Append the result as a JSON line to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `cft bench-backbone`: images/s of the network alone (input already on the device).
pub fn bench_backbone(args: &BenchBackboneArgs) -> Result<()> {
    use candle_core::{DType, Tensor};
    set_tf32(args.tf32, &args.device, args.precision)?;
    let (net, _) = load_backbone(&args.backbone, &args.weights, &KeyNames::default(), &args.device, args.precision)?;
    let dev = net.placement().device.clone();
    let s = args.image_size;
    let x = Tensor::rand(0f32, 1f32, (args.batch, 3, s, s), &dev)?.to_dtype(net.placement().dtype)?;
    let sync = |t: &Tensor| -> Result<()> {
        // Reading one value back waits for the device.
        let _ = t.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        Ok(())
    };
    sync(&net.features(&x)?)?;
    let t = std::time::Instant::now();
    for _ in 0..args.iters {
        sync(&net.features(&x)?)?;
    }
    let secs = t.elapsed().as_secs_f64();
    let ips = (args.iters * args.batch) as f64 / secs;
    let line = serde_json::json!({
        "backbone": args.backbone, "image_size": s, "batch": args.batch, "precision": format!("{:?}", args.precision),
        "tf32": args.tf32, "device": args.device, "images_per_second": ips, "threads": rayon::current_num_threads(),
        "build": crate::manifest::Versions::collect().build,
    });
    println!("{line}");
    if let Some(p) = &args.json {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(p)?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}
