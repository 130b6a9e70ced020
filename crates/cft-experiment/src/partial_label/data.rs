//! What a protocol run reads ([`ProtocolData`]): the training and evaluation splits (features
//! and sparse partial labels), a given base head, per-proportion checkpoints' features, and what
//! the tables must say about them; and the held-out split ([`holdout_split`]).

use crate::error::{bail, Result};
use cft_core::{LinearHead, Matrix, Pcg64, SparseLabels};
use cft_data::DatasetManifest;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Features with partial labels (one row per image). The labels stay sparse (per category,
/// its known images) end to end: OpenImages' 5,000 classes over millions of images would be
/// tens of GB as a dense matrix.
#[derive(Debug, Clone)]
pub struct LabelledFeatures {
    /// `images × d`.
    pub features: Matrix,
    /// Known labels per category over the images.
    pub labels: SparseLabels,
}

/// A trained classifier that serves as the base head instead of linear heads on frozen
/// features (the checkpoint's own `fc`): CFT repairs it.
#[derive(Debug, Clone)]
pub struct GivenHead {
    /// Row name in the tables (`checkpoint fc`).
    pub label: String,
    /// The head (`categories × d`).
    pub head: LinearHead,
}

/// The features of one known-label proportion when a checkpoint was trained per proportion
/// (the paper's COCO models): unit `proportion` reads these instead of the shared features.
#[derive(Debug, Clone)]
pub struct ProportionFeatures {
    /// The proportion (as in the configuration).
    pub proportion: f64,
    /// Training features (rows as [`ProtocolData::train`]).
    pub train: Matrix,
    /// Evaluation features (rows as [`ProtocolData::test`]).
    pub test: Matrix,
    /// That checkpoint's classifier, when it is the base head.
    pub given_head: Option<GivenHead>,
}

/// Everything a protocol run reads: the training and evaluation splits, and what the report
/// should say about them.
#[derive(Debug, Clone)]
pub struct ProtocolData {
    /// Report folder name (`scene`, `coco2014`, …).
    pub name: String,
    /// Category names, in label order.
    pub categories: Vec<String>,
    /// The training split: full labels (dropped per proportion) or real partial labels.
    pub train: LabelledFeatures,
    /// The evaluation split (test, val2014, CheXpert's validation CSV).
    pub test: LabelledFeatures,
    /// Files whose size and hash a resumed unit must match (dataset files, feature sets).
    pub inputs: Vec<PathBuf>,
    /// The checkpoint's classifier, when it is the base head.
    pub given_head: Option<GivenHead>,
    /// Per-proportion features and heads (empty: every unit reads `train`, `test`, `given_head`).
    pub per_proportion: Vec<ProportionFeatures>,
    /// Which of the paper's tables the run fills (see [`cft_results::ExperimentResults::paper_table`]).
    pub paper_table: Option<String>,
    /// The evaluation split's name when not `test split` (`val2014`, `validation CSV`).
    pub evaluation_split: Option<String>,
    /// Heading of the real-labels column (see [`cft_results::ExperimentResults::real_labels`]).
    pub real_labels: Option<String>,
    /// What the tables must say beside the numbers (base model, labels, evaluation split).
    pub notes: Vec<String>,
    /// Where the data came from, recorded in the run manifest.
    pub description: serde_json::Value,
}

impl ProtocolData {
    /// A bundled (or user) ARFF dataset through its manifest: `train` and `test` splits.
    pub fn from_manifest(manifest: &DatasetManifest) -> Result<Self> {
        let train = manifest.load_split("train")?;
        let test = manifest.load_split("test")?;
        Ok(Self {
            name: manifest.name.clone(),
            categories: train.categories.clone(),
            train: LabelledFeatures { features: train.features, labels: train.labels.to_sparse() },
            test: LabelledFeatures { features: test.features, labels: test.labels.to_sparse() },
            inputs: manifest.splits.values().chain(manifest.labels_xml.iter()).map(|f| manifest.file(f)).collect(),
            given_head: None,
            per_proportion: Vec::new(),
            paper_table: None,
            evaluation_split: None,
            real_labels: None,
            notes: Vec::new(),
            description: serde_json::to_value(manifest).unwrap_or_default(),
        })
    }

    /// A researcher's own features: `train` and `test` feature sets in the format `cft finetune`
    /// reads (safetensors `features` `n × d`, `labels` `n × C` with 1 / 0 / −1 uncertain / NaN
    /// unknown, `categories` metadata). Uncertain labels count as unknown. With `head` (an
    /// `nn.Linear` or a model state dict, its classifier found as `cft finetune --head` finds
    /// it, or under `head_key`), that head is the base model instead of linear AN/Ignore heads.
    /// Every mismatch (no labels, other dimensions, other categories) is one error naming the file.
    pub fn from_feature_sets(
        name: &str,
        train: &Path,
        test: &Path,
        head: Option<(&Path, Option<&str>)>,
    ) -> Result<Self> {
        if cft_data::outputs::same_file(train, test) {
            bail!(
                "data.test ({}) is the same file as data.train ({}): a test score on the training rows measures nothing; give the held-out split",
                test.display(),
                train.display()
            );
        }
        // Read block by block into features and sparse labels (dense `labels` or sparse
        // `labels_index` + `labels_value`): at OpenImages' scale nothing is held twice.
        let load = |p: &Path| -> Result<(cft_data::LabelledSet, SparseLabels)> {
            let mut set = cft_data::read_labelled_set(p)?;
            let labels = std::mem::replace(&mut set.labels, SparseLabels { n_samples: 0, per_category: Vec::new() });
            Ok((set, labels))
        };
        let (tr, tr_labels) = load(train)?;
        let (te, te_labels) = load(test)?;
        if tr.features.cols() != te.features.cols() {
            bail!(
                "{}: {} features per row, but {} has {}: both splits must come from one network",
                test.display(),
                te.features.cols(),
                train.display(),
                tr.features.cols()
            );
        }
        let c = tr_labels.n_categories();
        if te_labels.n_categories() != c {
            bail!("{}: {} label columns, {} has {c}", test.display(), te_labels.n_categories(), train.display());
        }
        cft_data::check_same_categories(&[(train, tr.categories.as_deref()), (test, te.categories.as_deref())])?;
        let categories = tr.categories.clone().unwrap_or_else(|| (0..c).map(|k| format!("category {k}")).collect());
        let mut inputs = vec![train.to_path_buf(), test.to_path_buf()];
        let given_head = match head {
            None => None,
            Some((path, key)) => {
                let file = cft_data::read_head_file(path, key)?;
                let (hc, hd) = (file.head.categories(), file.head.dim());
                if (hc, hd) != (c, tr.features.cols()) {
                    bail!(
                        "{}: the head is [{hc}, {hd}], the features need [{c}, {}] (one row per category, one column per feature)",
                        path.display(),
                        tr.features.cols()
                    );
                }
                cft_data::check_same_categories(&[(train, Some(&categories)), (path, file.categories.as_deref())])?;
                inputs.push(path.to_path_buf());
                Some(GivenHead { label: "given head".into(), head: file.head })
            }
        };
        Ok(Self {
            name: name.to_string(),
            categories,
            train: LabelledFeatures { features: tr.features, labels: tr_labels },
            test: LabelledFeatures { features: te.features, labels: te_labels },
            description: serde_json::json!({
                "source": "features",
                "train": train.display().to_string(),
                "test": test.display().to_string(),
                "head": head.map(|(p, _)| p.display().to_string()),
            }),
            inputs,
            given_head,
            per_proportion: Vec::new(),
            paper_table: None,
            evaluation_split: None,
            real_labels: None,
            notes: Vec::new(),
        })
    }

    /// The data with every feature matrix rounded to `precision` storage; f32 borrows as is
    /// (no copy of the features).
    pub fn rounded(&self, precision: cft_core::Precision) -> Cow<'_, ProtocolData> {
        if precision == cft_core::Precision::F32 {
            return Cow::Borrowed(self);
        }
        let split = |s: &LabelledFeatures| LabelledFeatures {
            features: s.features.rounded(precision),
            labels: s.labels.clone(),
        };
        Cow::Owned(ProtocolData {
            name: self.name.clone(),
            categories: self.categories.clone(),
            train: split(&self.train),
            test: split(&self.test),
            inputs: self.inputs.clone(),
            given_head: self.given_head.clone(),
            per_proportion: self
                .per_proportion
                .iter()
                .map(|f| ProportionFeatures {
                    proportion: f.proportion,
                    train: f.train.rounded(precision),
                    test: f.test.rounded(precision),
                    given_head: f.given_head.clone(),
                })
                .collect(),
            paper_table: self.paper_table.clone(),
            evaluation_split: self.evaluation_split.clone(),
            real_labels: self.real_labels.clone(),
            notes: self.notes.clone(),
            description: self.description.clone(),
        })
    }

    /// Checks the shapes the protocol relies on, naming the split.
    pub fn check(&self) -> Result<()> {
        let c = self.categories.len();
        for (name, s) in [("training", &self.train), ("evaluation", &self.test)] {
            if s.features.rows() != s.labels.n_samples || s.labels.n_categories() != c {
                bail!(
                    "{}: the {name} split has {} feature rows and {} × {} labels for {c} categories",
                    self.name,
                    s.features.rows(),
                    s.labels.n_samples,
                    s.labels.n_categories()
                );
            }
            if s.features.rows() == 0 {
                bail!("{}: the {name} split has no images", self.name);
            }
        }
        if self.train.features.cols() != self.test.features.cols() {
            bail!(
                "{}: training features have {} dimensions, evaluation features {}",
                self.name,
                self.train.features.cols(),
                self.test.features.cols()
            );
        }
        for f in &self.per_proportion {
            if f.train.rows() != self.train.features.rows()
                || f.test.rows() != self.test.features.rows()
                || f.train.cols() != f.test.cols()
            {
                bail!(
                    "{}: the features of proportion {} are {} + {} rows × {}, the splits have {} + {} images",
                    self.name,
                    f.proportion,
                    f.train.rows(),
                    f.test.rows(),
                    f.train.cols(),
                    self.train.features.rows(),
                    self.test.features.rows()
                );
            }
        }
        let heads = self.given_head.iter().chain(self.per_proportion.iter().filter_map(|f| f.given_head.as_ref()));
        for g in heads {
            if g.head.categories() != c || g.head.dim() != self.train.features.cols() {
                bail!(
                    "{}: the given head `{}` is {} × {}, the data {c} categories × {} features",
                    self.name,
                    g.label,
                    g.head.categories(),
                    g.head.dim(),
                    self.train.features.cols()
                );
            }
        }
        Ok(())
    }
}

/// The fixed held-out split: a seeded permutation; the first `fraction` of it selects.
pub fn holdout_split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = Pcg64::new(seed);
    for i in (1..n).rev() {
        let j = ((rng.random() * (i + 1) as f64) as usize).min(i);
        idx.swap(i, j);
    }
    let k = ((n as f64) * fraction).round() as usize;
    let (mut sel, mut fit) = (idx[..k].to_vec(), idx[k..].to_vec());
    sel.sort_unstable();
    fit.sort_unstable();
    (fit, sel)
}

/// A toy dataset for the protocol's unit tests.
#[cfg(test)]
pub(crate) mod toy {
    use super::*;
    use cft_core::KnownSamples;

    /// Two categories over `n` images: category 0 known on every image (positive on odd
    /// ones), category 1 known on every third image (all negative).
    pub(crate) fn data(n: usize) -> ProtocolData {
        let labels = |n: usize| SparseLabels {
            n_samples: n,
            per_category: vec![
                KnownSamples {
                    positives: (0..n as u32).filter(|i| i % 2 == 1).collect(),
                    negatives: (0..n as u32).filter(|i| i % 2 == 0).collect(),
                    uncertain: Vec::new(),
                },
                KnownSamples {
                    positives: Vec::new(),
                    negatives: (0..n as u32).step_by(3).collect(),
                    uncertain: Vec::new(),
                },
            ],
        };
        let features = |n: usize| Matrix::new(n, 2, (0..2 * n).map(|i| (i % 7) as f32 - 3.0).collect()).unwrap();
        ProtocolData {
            name: "toy".into(),
            categories: vec!["a".into(), "b".into()],
            train: LabelledFeatures { features: features(n), labels: labels(n) },
            test: LabelledFeatures { features: features(n / 2), labels: labels(n / 2) },
            inputs: Vec::new(),
            given_head: None,
            per_proportion: Vec::new(),
            paper_table: None,
            evaluation_split: None,
            real_labels: None,
            notes: vec!["a note".into()],
            description: serde_json::Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_out_split_is_a_fixed_seeded_partition_of_the_requested_size() {
        let (fit, sel) = holdout_split(1000, 0.2, 0);
        assert_eq!((fit.len(), sel.len()), (800, 200));
        let mut all: Vec<usize> = fit.iter().chain(&sel).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>(), "every image once, in one part");
        assert!(fit.windows(2).all(|w| w[0] < w[1]) && sel.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(holdout_split(1000, 0.2, 0), (fit.clone(), sel.clone()), "same seed, same split");
        assert_ne!(holdout_split(1000, 0.2, 1).1, sel, "another seed, another split");
    }

    #[test]
    fn selection_on_kept_rows_equals_selection_on_the_gathered_rows() {
        // The held-out unit keeps the labels of each part's rows on the whole matrix; the
        // engines then see exactly the gathered rows' samples, in the same order.
        let d = toy::data(60);
        let (fit, sel) = holdout_split(60, 0.2, 3);
        let kept = d.train.labels.keep_rows(&sel);
        let gathered = d.train.labels.select_rows(&sel);
        for c in 0..2 {
            let (rows, y) = kept.per_category[c].known_sorted();
            let (grows, gy) = gathered.per_category[c].known_sorted();
            assert_eq!(y, gy);
            assert_eq!(rows.iter().map(|r| sel.binary_search(r).unwrap()).collect::<Vec<_>>(), grows);
        }
        assert_eq!(d.train.labels.keep_rows(&fit).known_count() + kept.known_count(), d.train.labels.known_count());
    }
}
