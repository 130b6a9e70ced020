//! `cft extract`: images → backbone features → a feature set for the CFT core (tensor
//! `features`, image paths in the metadata, labels when the image list is a labelled dataset),
//! with the trained classifier optionally exported as a CFT head; `cft merge-features` joins
//! shards; `cft bench-backbone` times the network alone.
//!
//! The work is the library's typed extraction job ([`cft_images::ExtractionJob`]: feature
//! cache, resumable parts under `<out>.parts/`, the manifest); this module only turns the
//! command line into one.

use crate::args::choice;
use anyhow::Result;
use cft_core::Precision;
use cft_experiment::shard::Shard;
use cft_features::KeyNames;
use cft_images::job::{load_backbone, set_tf32};
use cft_images::ExtractionJob;
use cft_pipeline::{BackboneName, BadImage, Device, JpegDecode, Normalize, Resize};
use std::path::PathBuf;

/// Arguments of `cft extract`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExtractArgs {
    /// Test hook (hidden): stop as if killed once this many parts were written (exit status 3); the resume tests use it.
    #[arg(long, hide = true)]
    pub abort_after_parts: Option<usize>,
    /// Backbone: resnet18/34/50/101/152, densenet121/169/201, resnet20-cifar.
    #[arg(long, value_parser = choice::<BackboneName>())]
    pub backbone: BackboneName,
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
    #[arg(long, value_parser = choice::<Normalize>(), default_value = "imagenet")]
    pub normalize: Normalize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Compute and storage precision.
    #[arg(long, value_parser = choice::<Precision>(), default_value = "f32")]
    pub precision: Precision,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// Extract only shard i of n (`i/n`, 0-based, contiguous image ranges); join with merge-features.
    #[arg(long)]
    pub shard: Option<Shard>,
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
    #[arg(long, value_parser = choice::<BadImage>(), default_value = "fail")]
    pub on_bad_image: BadImage,
    /// JPEG decoding: `exact` decodes as Pillow does (libjpeg-turbo; torchvision's pixels, bit
    /// for bit); `reduced` first decodes large photos at a reduced DCT scale (faster; the
    /// features differ slightly, see the README).
    #[arg(long, value_parser = choice::<JpegDecode>(), default_value = "exact")]
    pub jpeg_decode: JpegDecode,
    /// Whose bilinear resize: `pillow13` (today's Pillow: the vertical pass first when the
    /// height shrinks by more than twice as many pixels as the width) or `pillow12` (Pillow ≤ 12
    /// and the CFT authors' pinned 9.3: always horizontal first). Part of the cache key.
    #[arg(long, value_parser = choice::<Resize>(), default_value = "pillow13")]
    pub resize: Resize,
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

impl ExtractArgs {
    /// The weights file's key names from `--key-prefix` / `--head-key`.
    pub fn key_names(&self) -> KeyNames {
        KeyNames { backbone_prefix: self.key_prefix.clone(), head_key: self.head_key.clone() }
    }

    /// The extraction job these flags describe.
    pub fn job(&self) -> ExtractionJob {
        ExtractionJob {
            backbone: self.backbone,
            weights: self.weights.clone(),
            images: self.images.clone(),
            image_root: self.image_root.clone(),
            image_size: self.image_size,
            normalize: self.normalize,
            batch: self.batch,
            precision: self.precision,
            device: self.device,
            shard: self.shard,
            resume: self.resume,
            chunk: self.chunk,
            cache: self.cache.clone(),
            on_bad_image: self.on_bad_image,
            jpeg_decode: self.jpeg_decode,
            resize: self.resize,
            keys: self.key_names(),
            tf32: self.tf32,
            head_out: self.head_out.clone(),
            out: self.out.clone(),
        }
    }
}

/// Runs `cft extract`.
pub fn run(args: &ExtractArgs) -> Result<()> {
    // Fault injection for the resume tests: stop as if killed after N parts (the lock stays).
    let abort_after = args.abort_after_parts;
    let hook = |parts: usize| {
        if abort_after == Some(parts) {
            eprintln!("--abort-after-parts {parts}: stopping as if interrupted");
            std::process::exit(3);
        }
    };
    Ok(args.job().run(&crate::common::Bars::default(), Some(&hook))?)
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
    let rows = cft_images::job::merge_shards(&args.shards, &args.out)?;
    eprintln!("wrote {} ({rows} images from {} shards)", args.out.display(), args.shards.len());
    Ok(())
}

/// Arguments of `cft bench-backbone`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchBackboneArgs {
    /// Backbone name.
    #[arg(long, value_parser = choice::<BackboneName>(), default_value = "resnet50")]
    pub backbone: BackboneName,
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
    #[arg(long, value_parser = choice::<Precision>(), default_value = "f32")]
    pub precision: Precision,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: Device,
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
    set_tf32(args.tf32, args.device, args.precision)?;
    let (net, _) = load_backbone(args.backbone, &args.weights, &KeyNames::default(), args.device, args.precision)?;
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
        "tf32": args.tf32, "device": args.device.to_string(), "images_per_second": ips, "threads": rayon::current_num_threads(),
        "build": cft_experiment::manifest::Versions::collect().build,
    });
    println!("{line}");
    if let Some(p) = &args.json {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(p)?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}
