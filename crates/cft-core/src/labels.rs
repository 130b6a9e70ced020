//! Partial multi-label targets: positive, negative, uncertain or unknown per (sample, category).
//!
//! Two forms live side by side. [`PartialLabels`] is the dense `n × C` matrix (one byte per
//! entry) that small and medium datasets use. [`SparseLabels`] keeps, per category, only the
//! indices of its known samples: OpenImages V3 has millions of images × 5000 classes with a few
//! known labels per image, and CFT only ever needs a category's known samples.

use crate::rng::Pcg64;
use serde::{Deserialize, Serialize};

/// One label entry. The reference's float encoding is `1` positive, `0` negative, `−1`
/// uncertain and NaN unknown (see [`Label::from_reference`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(i8)]
pub enum Label {
    /// Known absent.
    Negative = 0,
    /// Known present.
    Positive = 1,
    /// Annotated as uncertain (CheXpert's −1); resolved by an [`UncertainPolicy`] before CFT.
    Uncertain = -1,
    /// Not annotated.
    Unknown = -2,
}

impl Label {
    /// Decodes the reference encoding (1, 0, −1, NaN); any other value is `None`.
    pub fn from_reference(value: f32) -> Option<Label> {
        if value.is_nan() {
            Some(Label::Unknown)
        } else if value == 1.0 {
            Some(Label::Positive)
        } else if value == 0.0 {
            Some(Label::Negative)
        } else if value == -1.0 {
            Some(Label::Uncertain)
        } else {
            None
        }
    }

    /// Encodes in the reference's float form (NaN for unknown).
    pub fn to_reference(self) -> f32 {
        match self {
            Label::Positive => 1.0,
            Label::Negative => 0.0,
            Label::Uncertain => -1.0,
            Label::Unknown => f32::NAN,
        }
    }

    /// `Some(true)` for positive, `Some(false)` for negative, `None` otherwise.
    pub fn known(self) -> Option<bool> {
        match self {
            Label::Positive => Some(true),
            Label::Negative => Some(false),
            _ => None,
        }
    }
}

crate::choice! {
    /// What to do with uncertain labels before CFT (CheXpert's U-Ignore, U-Ones, U-Zeros).
    #[derive(Default)]
    pub enum UncertainPolicy {
        /// Uncertain becomes unknown (the reference's default, `uncertain_to_unknown`).
        #[default]
        Ignore = "ignore",
        /// Uncertain becomes positive.
        Ones = "ones",
        /// Uncertain becomes negative.
        Zeros = "zeros",
    }
}

impl UncertainPolicy {
    /// The label an uncertain entry becomes under this policy.
    pub fn resolve(self) -> Label {
        match self {
            UncertainPolicy::Ignore => Label::Unknown,
            UncertainPolicy::Ones => Label::Positive,
            UncertainPolicy::Zeros => Label::Negative,
        }
    }
}

/// Dense partial labels: `n_samples × n_categories`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialLabels {
    n_samples: usize,
    n_categories: usize,
    data: Vec<Label>,
}

impl PartialLabels {
    /// Wraps a row-major label vector; a [`crate::error::CoreError::Shape`] naming both sizes if
    /// its length is not `n_samples × n_categories`.
    pub fn new(n_samples: usize, n_categories: usize, data: Vec<Label>) -> Result<Self, crate::error::CoreError> {
        if data.len() != n_samples * n_categories {
            return Err(crate::error::CoreError::shape(
                "labels",
                format!("[{n_samples}, {n_categories}] ({} labels)", n_samples * n_categories),
                format!("{} labels", data.len()),
            ));
        }
        Ok(Self { n_samples, n_categories, data })
    }

    /// All entries unknown.
    pub fn unknown(n_samples: usize, n_categories: usize) -> Self {
        Self { n_samples, n_categories, data: vec![Label::Unknown; n_samples * n_categories] }
    }

    /// Number of samples (rows).
    pub fn n_samples(&self) -> usize {
        self.n_samples
    }

    /// Number of categories (columns).
    pub fn n_categories(&self) -> usize {
        self.n_categories
    }

    /// The label of `sample` for `category`.
    pub fn get(&self, sample: usize, category: usize) -> Label {
        self.data[sample * self.n_categories + category]
    }

    /// Sets the label of `sample` for `category`.
    pub fn set(&mut self, sample: usize, category: usize, label: Label) {
        self.data[sample * self.n_categories + category] = label;
    }

    /// One sample's labels.
    pub fn row(&self, sample: usize) -> &[Label] {
        &self.data[sample * self.n_categories..(sample + 1) * self.n_categories]
    }

    /// The row-major entries.
    pub fn as_slice(&self) -> &[Label] {
        &self.data
    }

    /// Replaces uncertain entries by the policy of their category (`policies.len() == C`, or
    /// one policy for all when it has length 1).
    pub fn resolve_uncertain(&self, policies: &[UncertainPolicy]) -> Self {
        let mut out = self.clone();
        for (i, l) in out.data.iter_mut().enumerate() {
            if *l == Label::Uncertain {
                let c = i % self.n_categories;
                *l = policies[if policies.len() == 1 { 0 } else { c }].resolve();
            }
        }
        out
    }

    /// Assume-negative: every unknown entry becomes negative (the AN pseudo-labelling).
    pub fn assume_negative(&self) -> Self {
        let mut out = self.clone();
        for l in &mut out.data {
            if *l == Label::Unknown {
                *l = Label::Negative;
            }
        }
        out
    }

    /// Keeps only the given samples, in the given order.
    pub fn select_rows(&self, samples: &[usize]) -> Self {
        let mut data = Vec::with_capacity(samples.len() * self.n_categories);
        for &s in samples {
            data.extend_from_slice(self.row(s));
        }
        Self { n_samples: samples.len(), n_categories: self.n_categories, data }
    }

    /// Fraction of entries that are positive or negative.
    pub fn known_fraction(&self) -> f64 {
        if self.data.is_empty() {
            return 0.0;
        }
        self.data.iter().filter(|l| l.known().is_some()).count() as f64 / self.data.len() as f64
    }

    /// Per-category known samples (the sparse form).
    pub fn to_sparse(&self) -> SparseLabels {
        let mut per_category = vec![KnownSamples::default(); self.n_categories];
        for s in 0..self.n_samples {
            for (c, &l) in self.row(s).iter().enumerate() {
                per_category[c].push(s as u32, l);
            }
        }
        SparseLabels { n_samples: self.n_samples, per_category }
    }
}

/// One category's annotated samples, as sorted sample indices per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownSamples {
    /// Samples labelled positive.
    pub positives: Vec<u32>,
    /// Samples labelled negative.
    pub negatives: Vec<u32>,
    /// Samples labelled uncertain.
    pub uncertain: Vec<u32>,
}

impl KnownSamples {
    /// Records `label` for `sample` (unknown is ignored).
    pub fn push(&mut self, sample: u32, label: Label) {
        match label {
            Label::Positive => self.positives.push(sample),
            Label::Negative => self.negatives.push(sample),
            Label::Uncertain => self.uncertain.push(sample),
            Label::Unknown => {}
        }
    }

    /// Known (positive or negative) samples in ascending index order with their targets.
    pub fn known_sorted(&self) -> (Vec<usize>, Vec<bool>) {
        let mut all: Vec<(u32, bool)> =
            self.positives.iter().map(|&s| (s, true)).chain(self.negatives.iter().map(|&s| (s, false))).collect();
        all.sort_unstable_by_key(|&(s, _)| s);
        all.into_iter().map(|(s, y)| (s as usize, y)).unzip()
    }
}

/// Sparse partial labels: per category, the indices of its known samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseLabels {
    /// Number of samples.
    pub n_samples: usize,
    /// One entry per category.
    pub per_category: Vec<KnownSamples>,
}

impl SparseLabels {
    /// Number of categories.
    pub fn n_categories(&self) -> usize {
        self.per_category.len()
    }

    /// Keeps only the given samples, renumbered in the given order (each sample at most once):
    /// the sparse counterpart of [`PartialLabels::select_rows`], with lists kept sorted.
    pub fn select_rows(&self, samples: &[usize]) -> Self {
        let mut new_index = vec![u32::MAX; self.n_samples];
        for (i, &s) in samples.iter().enumerate() {
            new_index[s] = i as u32;
        }
        let keep = |v: &[u32]| -> Vec<u32> {
            let mut out: Vec<u32> = v.iter().map(|&s| new_index[s as usize]).filter(|&i| i != u32::MAX).collect();
            out.sort_unstable();
            out
        };
        let per_category = self
            .per_category
            .iter()
            .map(|k| KnownSamples {
                positives: keep(&k.positives),
                negatives: keep(&k.negatives),
                uncertain: keep(&k.uncertain),
            })
            .collect();
        Self { n_samples: samples.len(), per_category }
    }

    /// Keeps only the labels of the given samples (ascending), numbered as before: the split
    /// of one feature matrix into fit and selection rows without copying the features.
    pub fn keep_rows(&self, samples: &[usize]) -> Self {
        let mut keep = vec![false; self.n_samples];
        for &s in samples {
            keep[s] = true;
        }
        let kept = |v: &[u32]| -> Vec<u32> { v.iter().copied().filter(|&s| keep[s as usize]).collect() };
        let per_category = self
            .per_category
            .iter()
            .map(|k| KnownSamples {
                positives: kept(&k.positives),
                negatives: kept(&k.negatives),
                uncertain: kept(&k.uncertain),
            })
            .collect();
        Self { n_samples: self.n_samples, per_category }
    }

    /// Number of (sample, category) entries that are positive or negative.
    pub fn known_count(&self) -> usize {
        self.per_category.iter().map(|k| k.positives.len() + k.negatives.len()).sum()
    }

    /// Fraction of (sample, category) entries that are positive or negative.
    pub fn known_fraction(&self) -> f64 {
        let cells = self.n_samples * self.n_categories();
        if cells == 0 {
            return 0.0;
        }
        self.known_count() as f64 / cells as f64
    }

    /// Builds the dense form (memory `n × C` bytes).
    pub fn to_dense(&self) -> PartialLabels {
        let mut dense = PartialLabels::unknown(self.n_samples, self.n_categories());
        for (c, k) in self.per_category.iter().enumerate() {
            for &s in &k.positives {
                dense.set(s as usize, c, Label::Positive);
            }
            for &s in &k.negatives {
                dense.set(s as usize, c, Label::Negative);
            }
            for &s in &k.uncertain {
                dense.set(s as usize, c, Label::Uncertain);
            }
        }
        dense
    }
}

/// The whole percent a known-label proportion is named by (units `p10-paper`, checkpoints'
/// `{percent}`, figures `delta_at_10`): specs refuse proportions closer than 0.01, so the name
/// identifies the proportion.
pub fn percent(p: f64) -> u32 {
    (100.0 * p).round() as u32
}

/// Whether two known-label proportions are the same label point (as read back from files).
pub fn same_proportion(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// The reference's label-dropping protocol that simulates partial labels.
///
/// One `PCG64(seed)` stream runs over the samples in order; for each sample it draws one
/// `random()` per positive category, then per negative, then per uncertain (each in category
/// order), and keeps the label when the draw is `< known_ratio`; dropped labels become unknown.
pub fn drop_labels(labels: &PartialLabels, known_ratio: f64, seed: u64) -> PartialLabels {
    let mut rng = Pcg64::new(seed);
    let mut out = PartialLabels::unknown(labels.n_samples, labels.n_categories);
    for s in 0..labels.n_samples {
        let row = labels.row(s);
        for kind in [Label::Positive, Label::Negative, Label::Uncertain] {
            for (c, _) in row.iter().enumerate().filter(|(_, &l)| l == kind) {
                if rng.random() < known_ratio {
                    out.set(s, c, kind);
                }
            }
        }
    }
    out
}

/// The single-positive protocol of Cole et al. (CVPR 2021; their `observe_uniform` with one
/// positive and no negative): from full labels, each image keeps one observed positive drawn
/// uniformly among its positives, and nothing else. One `np.random.RandomState(seed)` stream
/// runs over the images in order: an image's positive categories are shuffled and the first
/// kept, then its negative categories are shuffled too (none is kept, but the draws are made,
/// as in their code). An image without a positive keeps no label. Uncertain and unknown
/// entries are neither positive nor negative here.
pub fn single_positive(labels: &PartialLabels, seed: u32) -> PartialLabels {
    let mut rng = crate::rng::Mt19937::new(seed);
    let mut out = PartialLabels::unknown(labels.n_samples, labels.n_categories);
    for s in 0..labels.n_samples {
        let row = labels.row(s);
        let of = |kind: Label| -> Vec<usize> { (0..row.len()).filter(|&c| row[c] == kind).collect() };
        let mut positives = of(Label::Positive);
        rng.shuffle(&mut positives);
        if let Some(&c) = positives.first() {
            out.set(s, c, Label::Positive);
        }
        rng.shuffle(&mut of(Label::Negative));
    }
    out
}

#[cfg(test)]
mod sparse_tests {
    use super::*;

    #[test]
    fn sparse_select_rows_and_known_fraction_equal_the_dense_ones() {
        let data: Vec<Label> = (0..7 * 3)
            .map(|i| match (i * 5 + i / 3) % 4 {
                0 => Label::Positive,
                1 => Label::Negative,
                2 => Label::Unknown,
                _ => Label::Uncertain,
            })
            .collect();
        let dense = PartialLabels::new(7, 3, data).unwrap();
        let sparse = dense.to_sparse();
        let rows = [5, 0, 3, 6];
        assert_eq!(sparse.select_rows(&rows), dense.select_rows(&rows).to_sparse());
        assert_eq!(sparse.known_fraction(), dense.known_fraction());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> PartialLabels {
        use Label::*;
        PartialLabels::new(3, 2, vec![Positive, Unknown, Uncertain, Negative, Negative, Positive]).unwrap()
    }

    #[test]
    fn reference_encoding_round_trips() {
        for l in [Label::Positive, Label::Negative, Label::Uncertain] {
            assert_eq!(Label::from_reference(l.to_reference()), Some(l));
        }
        assert_eq!(Label::from_reference(f32::NAN), Some(Label::Unknown));
        assert_eq!(Label::from_reference(0.5), None);
    }

    #[test]
    fn policies_resolve_uncertain_per_category() {
        let l = small();
        let ones = l.resolve_uncertain(&[UncertainPolicy::Ones, UncertainPolicy::Zeros]);
        assert_eq!(ones.get(1, 0), Label::Positive);
        let ign = l.resolve_uncertain(&[UncertainPolicy::Ignore]);
        assert_eq!(ign.get(1, 0), Label::Unknown);
        assert_eq!(ign.get(0, 1), Label::Unknown);
        assert_eq!(l.assume_negative().get(0, 1), Label::Negative);
    }

    #[test]
    fn sparse_round_trips_and_lists_known_samples() {
        let l = small();
        let sp = l.to_sparse();
        assert_eq!(sp.to_dense(), l);
        assert_eq!(sp.per_category[0].positives, vec![0]);
        assert_eq!(sp.per_category[0].uncertain, vec![1]);
        let (idx, y) = sp.per_category[1].known_sorted();
        assert_eq!(idx, vec![1, 2]);
        assert_eq!(y, vec![false, true]);
    }
}
