//! The image datasets of the experiment layer: a paper dataset in its official layout (COCO
//! 2014, OpenImages V3, CheXpert) → the adapters' labelled image lists → an
//! [`ExtractionJob`] per split (feature cache, resumable parts) with the spec's backbone and
//! checkpoint → [`ProtocolData`] for the protocol. The protocol never sees candle or images.
//!
//! Features and image lists go to `<out>/<name>/features/`; the feature cache (keyed by the
//! images' names and contents, backbone, weights hash, size, resize, normalisation, precision)
//! is the user's one cache (`ImageInputs::cache`), so any later run over the same images reuses
//! the extraction, whatever its `--out`.

use crate::error::{bail, Context, Result};
use crate::job::{load_backbone, ExtractionJob};
use cft_core::SparseLabels;
use cft_data::{read_feature_set, LabelledImages};
use cft_experiment::partial_label::{GivenHead, LabelSource, LabelledFeatures, ProportionFeatures, ProtocolData};
use cft_experiment::progress::Progress;
use cft_experiment::spec::{BackboneSpec, BaseFrom, DataSource, ExperimentSpec};
use cft_features::{BadImage, Device, JpegDecode, Normalize, Resize};
use std::path::{Path, PathBuf};

/// Where the image data and the weights are, after the command line's overrides.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    /// The dataset's root folder.
    pub root: PathBuf,
    /// The checkpoint (safetensors state dict).
    pub weights: PathBuf,
    /// Where the network runs.
    pub device: Device,
    /// The reports folder (`<out>/<name>/features/` receives the features).
    pub out: PathBuf,
    /// Report folder name.
    pub name: String,
    /// Keep finished extraction parts.
    pub resume: bool,
    /// Notes the spec adds to every table.
    pub notes: Vec<String>,
    /// The checkpoint's key names (spec and command line; unset parts are detected).
    pub keys: cft_features::KeyNames,
    /// The feature cache folder.
    pub cache: PathBuf,
    /// Unreadable images: stop, or leave them out.
    pub on_bad_image: BadImage,
    /// The shard `(i, n)` of the run, when sharded: each shard writes its own copy of the
    /// features (from the shared cache), so that array tasks starting together never write
    /// one file at once.
    pub shard: Option<(usize, usize)>,
}

impl ImageInputs {
    /// Where the features and image lists go: `<out>/<name>/features/` (a shard's own
    /// `shard-i-of-n/` below it).
    pub fn features_dir(&self) -> PathBuf {
        let dir = self.out.join(&self.name).join("features");
        match self.shard {
            Some((i, n)) => dir.join(format!("shard-{i}-of-{n}")),
            None => dir,
        }
    }
}

/// One split as the adapters give it: image paths (relative to `image_root`), sparse labels.
struct ImageSplit {
    label_file: PathBuf,
    image_root: PathBuf,
    paths: Vec<String>,
    labels: SparseLabels,
}

/// The labelled splits of an image dataset and what the report says about them.
struct ImageDataset {
    categories: Vec<String>,
    train: ImageSplit,
    test: ImageSplit,
    /// Label files read (fingerprinted by every unit).
    label_files: Vec<PathBuf>,
    real_labels: Option<String>,
    evaluation_split: &'static str,
    notes: Vec<String>,
}

fn need(root: &Path, rel: &str, layout: &str) -> Result<PathBuf> {
    let p = root.join(rel);
    if !p.is_file() {
        bail!("data.root {}: no {rel} ({layout})", root.display());
    }
    Ok(p)
}

fn from_images(file: PathBuf, image_root: &Path, img: LabelledImages) -> ImageSplit {
    ImageSplit { label_file: file, image_root: image_root.to_path_buf(), paths: img.paths, labels: img.labels }
}

fn coco(root: &Path) -> Result<ImageDataset> {
    let layout = "MS-COCO 2014 layout: annotations/instances_train2014.json, annotations/instances_val2014.json, train2014/, val2014/";
    let (tf, vf) = (
        need(root, "annotations/instances_train2014.json", layout)?,
        need(root, "annotations/instances_val2014.json", layout)?,
    );
    let train = cft_data::coco::read_coco(&tf, cft_data::coco::ImageOrder::File)?;
    let val = cft_data::coco::read_coco(&vf, cft_data::coco::ImageOrder::File)?;
    cft_data::check_same_categories(&[(&tf, Some(&train.images.categories)), (&vf, Some(&val.images.categories))])?;
    let categories = train.images.categories.clone();
    let (nt, nv) = (train.images.len(), val.images.len());
    Ok(ImageDataset {
        categories,
        train: from_images(tf.clone(), root, train.images),
        test: from_images(vf.clone(), root, val.images),
        label_files: vec![tf, vf],
        real_labels: None,
        evaluation_split: "val2014",
        notes: vec![format!(
            "Evaluation: mAP over the categories on val2014 ({nv} images, full labels); training labels of train2014 ({nt} images) dropped by the reference protocol (numpy PCG64, seed 526)."
        )],
    })
}

fn openimages(root: &Path) -> Result<ImageDataset> {
    let layout = "OpenImages V3 layout: classes-trainable.txt, class-descriptions.csv, train/annotations-human.csv, test/annotations-human.csv, images as train/<ImageID>.jpg and test/<ImageID>.jpg";
    let classes_file = need(root, "classes-trainable.txt", layout)?;
    let descriptions_file = need(root, "class-descriptions.csv", layout)?;
    let (tf, vf) =
        (need(root, "train/annotations-human.csv", layout)?, need(root, "test/annotations-human.csv", layout)?);
    let classes = cft_data::openimages::read_trainable(&classes_file)?;
    let names = cft_data::openimages::read_class_descriptions(&descriptions_file)?;
    let (train, _) = cft_data::openimages::read_annotations(&tf, "train", &classes, &|_| {})?;
    let (test, _) = cft_data::openimages::read_annotations(&vf, "test", &classes, &|_| {})?;
    let categories: Vec<String> = classes.iter().map(|c| names.get(c).cloned().unwrap_or_else(|| c.clone())).collect();
    let known = train.labels.per_category.iter().map(|k| k.positives.len() + k.negatives.len()).sum::<usize>();
    let cells = (train.len() * classes.len()).max(1);
    let (nt, nv) = (train.len(), test.len());
    Ok(ImageDataset {
        categories,
        train: from_images(tf.clone(), root, train),
        test: from_images(vf.clone(), root, test),
        label_files: vec![classes_file, descriptions_file, tf, vf],
        real_labels: Some(format!("real ({:.1}% known)", 100.0 * known as f64 / cells as f64)),
        evaluation_split: "test split",
        notes: vec![format!(
            "Evaluation: per-class AP on the test split ({nv} images) over human-verified labels only (unknown labels masked), mAP over all trainable classes and over five frequency groups G1–G5 (classes sorted ascending by their number of positive training labels, the authors' `Open_Images_V3_Group_Metric`: a class's frequency is what makes it rare). Training labels: the human-verified labels of {nt} training images as they are (confidence 1 positive, 0 negative, all others unknown)."
        )],
    })
}

fn chexpert(root: &Path, uncertain: cft_data::chexpert::Uncertain) -> Result<ImageDataset> {
    let layout =
        "CheXpert layout: train.csv and valid.csv (CheXpert-v1.0 or -small), images where their Path column says";
    let (tf, vf) = (need(root, "train.csv", layout)?, need(root, "valid.csv", layout)?);
    let (opts, policy) = (uncertain.options(), uncertain.describe());
    let train = cft_data::chexpert::read_chexpert(&tf, &opts)?;
    let valid = cft_data::chexpert::read_chexpert(&vf, &opts)?;
    // `Path` starts with the dataset folder's own name (`CheXpert-v1.0-small/train/…`): the
    // images are found from the root's parent when not from the root.
    let image_root = |split: &cft_data::chexpert::ChexpertSplit| -> PathBuf {
        match split.images.first() {
            Some(im) if !root.join(&im.path).is_file() => root.parent().map(Path::to_path_buf).unwrap_or_default(),
            _ => root.to_path_buf(),
        }
    };
    let split = |file: &Path, s: cft_data::chexpert::ChexpertSplit| ImageSplit {
        label_file: file.to_path_buf(),
        image_root: image_root(&s),
        paths: s.images.iter().map(|i| i.path.clone()).collect(),
        labels: s.labels.to_sparse(),
    };
    let known = train.labels.known_fraction();
    let (nt, nv) = (train.images.len(), valid.images.len());
    Ok(ImageDataset {
        categories: train.tasks.clone(),
        train: split(&tf, train),
        test: split(&vf, valid),
        label_files: vec![tf, vf],
        real_labels: Some(format!("real ({:.1}% known)", 100.0 * known)),
        evaluation_split: "validation CSV",
        notes: vec![format!(
            "Evaluation: AUC per competition task and their mean on the validation CSV ({nv} images, image level); the competition's test set is scored by `cft chexpert-score` from a predictions CSV. Training labels: train.csv ({nt} images) as annotated, uncertain policy {policy}, blanks unknown."
        )],
    })
}

/// Every image of a split is listed once and lies inside the split's image folder: a path
/// from an annotation file with `..`, an absolute path or a symbolic link leading out of it is
/// refused (a hostile or broken annotation file must not make us read other files), and so is
/// a file listed twice (both entries would get the second's labels).
fn confine(split: &ImageSplit) -> Result<()> {
    use rayon::prelude::*;
    let file = split.label_file.display();
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::with_capacity(split.paths.len());
    for (i, p) in split.paths.iter().enumerate() {
        if let Some(j) = seen.insert(p.as_str(), i) {
            bail!(
                "{file}: image `{p}` is listed twice (entries {} and {}); each file may carry one set of labels",
                j + 1,
                i + 1
            );
        }
        let rel = Path::new(p);
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            bail!(
                "{file}: image path `{p}` leaves the data folder {} (absolute, or with `..`); paths in annotation files must stay inside it",
                split.image_root.display()
            );
        }
    }
    let Ok(root) = std::fs::canonicalize(&split.image_root) else { return Ok(()) };
    let outside = split
        .paths
        .par_iter()
        .find_any(|p| std::fs::canonicalize(split.image_root.join(p)).is_ok_and(|real| !real.starts_with(&root)));
    if let Some(p) = outside {
        bail!(
            "{file}: image `{p}` is a symbolic link to a file outside the data folder {}; refusing to read it",
            split.image_root.display()
        );
    }
    Ok(())
}

/// Extracts one split with `cft extract` (cache, parts, manifest) and returns the features
/// with the labels of the images in the feature set's order.
fn extract_split(
    b: &BackboneSpec,
    inputs: &ImageInputs,
    progress: &dyn Progress,
    weights: &Path,
    split: &ImageSplit,
    stem: &str,
    head_out: Option<PathBuf>,
) -> Result<(LabelledFeatures, PathBuf)> {
    let dir = inputs.features_dir();
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let list = dir.join(format!("{stem}-images.txt"));
    let text: String = split.paths.iter().map(|p| format!("{p}\n")).collect();
    cft_data::write_atomic(&list, text.as_bytes())?;
    let out = dir.join(format!("{stem}.safetensors"));
    let job = ExtractionJob {
        backbone: b.name,
        weights: weights.display().to_string(),
        images: list,
        image_root: Some(split.image_root.clone()),
        image_size: b.image_size,
        resize: b.resize,
        keys: inputs.keys.clone(),
        normalize: b.normalize,
        batch: b.batch,
        precision: b.precision,
        device: inputs.device,
        shard: None,
        resume: inputs.resume,
        chunk: 1024,
        cache: Some(inputs.cache.clone()),
        on_bad_image: inputs.on_bad_image,
        jpeg_decode: JpegDecode::Exact,
        tf32: false,
        head_out,
        out: out.clone(),
    };
    job.run(progress, None)?;
    let set = read_feature_set(&out)?;
    let names = set.paths.clone().unwrap_or_default();
    let index: std::collections::HashMap<&str, usize> =
        split.paths.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
    let rows: Vec<usize> = names
        .iter()
        .map(|n| {
            index.get(n.as_str()).copied().with_context(|| format!("{}: image {n} is not in the list", out.display()))
        })
        .collect::<Result<_>>()?;
    let labels = split.labels.select_rows(&rows);
    Ok((LabelledFeatures { features: set.features, labels }, out))
}

/// Reads the dataset under `inputs.root`, extracts both splits and assembles the protocol's data.
pub fn load(spec: &ExperimentSpec, inputs: &ImageInputs, progress: &dyn Progress) -> Result<ProtocolData> {
    let Some(b) = &spec.backbone else { bail!("backbone: missing") };
    if !inputs.root.is_dir() {
        bail!("data.root {}: not a folder (give the dataset's root with --data-root)", inputs.root.display());
    }
    let ds = match spec.data.source {
        DataSource::Coco2014 => coco(&inputs.root)?,
        DataSource::OpenimagesV3 => openimages(&inputs.root)?,
        DataSource::Chexpert => chexpert(&inputs.root, spec.labels.uncertain.unwrap_or_default())?,
        DataSource::Arff | DataSource::Features => {
            bail!("data.source = \"{}\" is not an image dataset", spec.data.source.name())
        }
    };
    confine(&ds.train)?;
    confine(&ds.test)?;
    let (template, checkpoints) = checkpoints(spec, &inputs.weights)?;
    // Every checkpoint must exist and fit the backbone before anything is written (errors name
    // the file and the tensor).
    let given = *spec.base.from.get() == BaseFrom::Checkpoint;
    for (_, w) in &checkpoints {
        check_checkpoint(b, w, &inputs.keys, inputs.device, given, ds.categories.len())?;
    }
    let mut files = ds.label_files.clone();
    let mut extracted = Vec::new();
    for (p, w) in &checkpoints {
        let prefix = p.map_or(String::new(), |p| format!("p{:02}-", cft_core::percent(p)));
        let dir = inputs.features_dir();
        let head_file = given.then(|| dir.join(format!("{prefix}checkpoint-head.safetensors")));
        let (train, train_file) =
            extract_split(b, inputs, progress, w, &ds.train, &format!("{prefix}train"), head_file.clone())?;
        let (test, test_file) = extract_split(b, inputs, progress, w, &ds.test, &format!("{prefix}test"), None)?;
        let given_head = match &head_file {
            Some(h) => Some(GivenHead { label: "checkpoint".into(), head: cft_data::read_head(h)? }),
            None => None,
        };
        files.extend([train_file, test_file, w.clone()]);
        extracted.push((*p, train, test, given_head));
    }
    let mut notes = model_notes(b, &inputs.weights, given, template).to_vec();
    notes.extend(ds.notes);
    notes.extend(inputs.notes.iter().cloned());
    // Every proportion's extraction lists the same images in the same order (an image that
    // cannot be read fails or is skipped alike for every checkpoint), so the labels of the
    // first apply to all; checked, not assumed.
    for (p, tr, te, _) in &extracted[1..] {
        if tr.features.rows() != extracted[0].1.features.rows() || te.features.rows() != extracted[0].2.features.rows()
        {
            bail!(
                "the checkpoint of proportion {} extracted a different number of images than the first: refusing to mix their labels",
                p.unwrap_or_default()
            );
        }
    }
    let (_, train, test, given_head) = extracted[0].clone();
    let per_proportion = if template {
        extracted
            .into_iter()
            .map(|(p, tr, te, g)| ProportionFeatures {
                proportion: p.unwrap_or_default(),
                train: tr.features,
                test: te.features,
                given_head: g,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(ProtocolData {
        name: inputs.name.clone(),
        categories: ds.categories,
        train,
        test,
        inputs: files,
        given_head,
        per_proportion,
        paper_table: Some(spec.data.source.name().to_string()),
        evaluation_split: Some(ds.evaluation_split.to_string()),
        real_labels: ds.real_labels,
        notes,
        description: serde_json::json!({
            "source": spec.data.source,
            "root": inputs.root.display().to_string(),
            "weights": checkpoints.iter().map(|(_, w)| w.display().to_string()).collect::<Vec<_>>(),
            "backbone": b,
            "label_files": [ds.train.label_file.display().to_string(), ds.test.label_file.display().to_string()],
        }),
    })
}

/// A checkpoint to extract with: its known-label proportion (for a `{percent}` template) and file.
type Checkpoint = (Option<f64>, PathBuf);

/// The checkpoints to extract with: one, or one per known-label proportion when the path is a
/// `{percent}` template (10, 20, …); whether it was a template.
fn checkpoints(spec: &ExperimentSpec, weights: &Path) -> Result<(bool, Vec<Checkpoint>)> {
    let template = weights.to_string_lossy().contains("{percent}");
    let checkpoints: Vec<(Option<f64>, PathBuf)> = if template {
        if spec.labels.source != LabelSource::Drop {
            bail!("backbone.weights: a {{percent}} template needs labels.source = \"drop\" (one checkpoint per proportion)");
        }
        let pct = |p: f64| format!("{:02}", cft_core::percent(p));
        spec.labels
            .proportions
            .iter()
            .map(|&p| (Some(p), PathBuf::from(weights.to_string_lossy().replace("{percent}", &pct(p)))))
            .collect()
    } else {
        vec![(None, weights.to_path_buf())]
    };
    Ok((template, checkpoints))
}

/// The notes every table carries about the base model and the preprocessing.
fn model_notes(b: &cft_experiment::spec::BackboneSpec, weights: &Path, given: bool, template: bool) -> [String; 2] {
    let weights_name = weights.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let base_note = match (given, template) {
        (true, _) => format!("Base model: the classifier of {weights_name} ({}); CFT re-fits it category by category.", b.name),
        (false, true) => format!(
            "Base models: linear AN and Ignore heads trained on frozen {} features of the checkpoint of each proportion ({weights_name}) at {} px.",
            b.name, b.image_size
        ),
        (false, false) => format!(
            "Base models: linear AN and Ignore heads trained on frozen {} features of {weights_name} at {} px — not the paper's end-to-end trained networks.",
            b.name, b.image_size
        ),
    };
    let preprocessing = format!(
        "Preprocessing: {} bilinear resize to {s}×{s} px, ToTensor, {}.",
        match b.resize {
            Resize::Pillow12 => "Pillow ≤ 12 (the authors' 9.3)",
            Resize::Pillow13 => "Pillow 13",
        },
        if b.normalize == Normalize::None {
            "no normalisation (the CFT authors' pipeline: Resize + ToTensor only)"
        } else {
            "ImageNet mean/std normalisation (what torchvision's pretrained weights expect; the CFT authors' own networks were trained without it — use normalize = \"none\" with them)"
        },
        s = b.image_size
    );
    [base_note, preprocessing]
}

/// Loads `weights` into the backbone (errors name the file and tensor) and, when the checkpoint's
/// classifier is the base head, checks it has one output per category.
fn check_checkpoint(
    b: &BackboneSpec,
    weights: &Path,
    keys: &cft_features::KeyNames,
    device: Device,
    given: bool,
    categories: usize,
) -> Result<()> {
    if !weights.is_file() {
        bail!("backbone.weights {}: no such file (give the checkpoint with --weights)", weights.display());
    }
    // The device first: its error is the device's, not the checkpoint's.
    cft_features::device(device).map_err(|e| crate::error::refused!("backbone.device (or --device): {e}"))?;
    let w = weights.display().to_string();
    let (net, found) = load_backbone(b.name, &w, keys, device, b.precision)
        .map_err(|e| crate::error::refused!("backbone.weights: {e}"))?;
    if found.backbone_prefix.as_deref().is_some_and(|p| !p.is_empty()) || found.head_key.is_some() {
        eprintln!(
            "{w}: backbone keys under `{}`{}",
            found.backbone_prefix.as_deref().unwrap_or(""),
            found.head_key.as_deref().map_or(String::new(), |h| format!(", classifier `{h}`"))
        );
    }
    if given {
        let Some((fc, _)) = net.classifier() else {
            bail!(
                "base.from = \"checkpoint\": {w} has no classifier layer for {} (looked for {}); name it with `[base] head_key` or --head-key",
                b.name,
                found.head_key.map_or_else(|| "torchvision's fc / classifier / linear".to_string(), |h| format!("`{h}.weight`"))
            );
        };
        let outputs = fc.dims2()?.0;
        if outputs != categories {
            bail!(
                "base.from = \"checkpoint\": the classifier of {w} has {outputs} outputs, but the dataset has {categories} categories; use `from = \"linear\"` or a checkpoint trained on these categories"
            );
        }
    }
    Ok(())
}

/// The image datasets as the experiment layer's [`FeatureSource`](cft_experiment::run::FeatureSource): the spec's `data.root` and
/// `backbone.weights` unless the front end overrides them, with its device, key names, feature
/// cache and bad-image policy.
#[derive(Debug, Clone)]
pub struct ImageSource {
    /// The dataset's root folder (overrides the spec's `data.root`).
    pub data_root: Option<PathBuf>,
    /// The checkpoint (overrides the spec's `backbone.weights`).
    pub weights: Option<PathBuf>,
    /// Where the network runs (overrides the spec's `backbone.device`).
    pub device: Option<Device>,
    /// Prefix of the backbone's keys (overrides `backbone.key_prefix`).
    pub key_prefix: Option<String>,
    /// The classifier's key (overrides `base.head_key`).
    pub head_key: Option<String>,
    /// The feature cache (default: [`user_cache_dir`]).
    pub cache: Option<PathBuf>,
    /// Keep finished extraction parts.
    pub resume: bool,
    /// Unreadable images: stop, or leave them out.
    pub on_bad_image: BadImage,
    /// The run's shard, if any (see [`ImageInputs::shard`]).
    pub shard: Option<(usize, usize)>,
}

/// The user's feature cache, shared by every run and `--out`: `$CFT_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/cft/features`, else `~/.cache/cft/features`, else `<out>/.feature-cache`.
pub fn user_cache_dir(out: &Path) -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("CFT_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|x| x.join("cft/features")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/cft/features")))
        .unwrap_or_else(|| out.join(".feature-cache"))
}

impl cft_experiment::run::FeatureSource for ImageSource {
    fn load(
        &self,
        spec: &ExperimentSpec,
        spec_path: &Path,
        out: &Path,
        progress: &dyn Progress,
    ) -> cft_experiment::error::Result<ProtocolData> {
        self.load_images(spec, spec_path, out, progress).map_err(cft_experiment::error::ExperimentError::source)
    }

    fn root(&self, spec: &ExperimentSpec, spec_path: &Path) -> Option<PathBuf> {
        self.dataset_root(spec, spec_path)
    }
}

impl ImageSource {
    /// [`cft_experiment::run::FeatureSource::load`] in this crate's error type.
    fn load_images(
        &self,
        spec: &ExperimentSpec,
        spec_path: &Path,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<ProtocolData> {
        let resolve = |p: &PathBuf| ExperimentSpec::resolve(spec_path, p);
        let Some(root) = self.dataset_root(spec, spec_path) else {
            bail!("{}: data.root: missing; give the dataset's folder with --data-root", spec_path.display())
        };
        let Some(b) = spec.backbone.as_ref() else { bail!("{}: backbone: missing", spec_path.display()) };
        let weights = match (&self.weights, &b.weights) {
            (Some(w), _) => w.clone(),
            (None, Some(w)) => resolve(w),
            (None, None) => {
                bail!("{}: backbone.weights: missing; give the checkpoint with --weights", spec_path.display())
            }
        };
        let inputs = ImageInputs {
            root,
            weights,
            device: self.device.unwrap_or(b.device),
            out: out.to_path_buf(),
            name: spec.name(None),
            resume: self.resume,
            notes: spec.output.notes.clone(),
            keys: cft_features::KeyNames {
                backbone_prefix: self.key_prefix.clone().or_else(|| b.key_prefix.clone()),
                head_key: self.head_key.clone().or_else(|| spec.base.head_key.clone()),
            },
            on_bad_image: self.on_bad_image,
            cache: self.cache.clone().unwrap_or_else(|| user_cache_dir(out)),
            shard: self.shard,
        };
        load(spec, &inputs, progress)
    }

    /// The dataset's folder: `--data-root`, else the spec's `data.root`.
    fn dataset_root(&self, spec: &ExperimentSpec, spec_path: &Path) -> Option<PathBuf> {
        self.data_root.clone().or_else(|| spec.data.root.as_ref().map(|r| ExperimentSpec::resolve(spec_path, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> ExperimentSpec {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_percent_template_names_one_checkpoint_per_proportion() {
        let s = spec("[data]\nsource = \"coco2014\"\n[labels]\nproportions = [0.1, 0.5, 0.9]\n");
        let (template, list) = checkpoints(&s, Path::new("w/coco_{percent}.safetensors")).unwrap();
        assert!(template);
        let names: Vec<(Option<f64>, String)> = list.iter().map(|(p, w)| (*p, w.display().to_string())).collect();
        assert_eq!(
            names,
            [
                (Some(0.1), "w/coco_10.safetensors".to_string()),
                (Some(0.5), "w/coco_50.safetensors".into()),
                (Some(0.9), "w/coco_90.safetensors".into())
            ]
        );
        let (template, list) = checkpoints(&s, Path::new("w/resnet101.safetensors")).unwrap();
        assert!(!template && list == [(None, PathBuf::from("w/resnet101.safetensors"))]);
        let real = spec("[data]\nsource = \"openimages_v3\"\n[labels]\nsource = \"real\"\n");
        let e = checkpoints(&real, Path::new("w_{percent}.safetensors")).unwrap_err().to_string();
        assert!(e.contains("needs labels.source = \"drop\""), "{e}");
    }
}
