//! The inputs of the feature-level commands (`cft finetune`, `evaluate`, `train-head`) and
//! their Python twins: a labelled feature set, dense or sparse ([`read_labelled`]), a head
//! checked against it ([`read_head_for`]), and the rule that files naming categories name the
//! same ones in the same order ([`check_same_categories`]), written once.

use crate::error::{DataError, Result};
use crate::tensors::{read_feature_set, read_head_file, HeadFile};
use cft_core::{Matrix, SparseLabels, UncertainPolicy};
use std::path::Path;

/// A feature set with its labels, uncertain entries resolved.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// `n × d` features.
    pub features: Matrix,
    /// Known labels per category.
    pub labels: SparseLabels,
    /// Category names, when the file has them.
    pub categories: Option<Vec<String>>,
    /// One image path per row, when the file has them.
    pub paths: Option<Vec<String>>,
}

impl Labelled {
    /// The category names: the file's, or `0 … C−1`.
    pub fn names(&self) -> Vec<String> {
        self.categories.clone().unwrap_or_else(|| (0..self.labels.n_categories()).map(|i| i.to_string()).collect())
    }
}

/// Reads a feature set that must have labels: a dense `labels` tensor (uncertain entries −1
/// resolved by `policy`) or sparse `labels_index` + `labels_value` (uncertain entries left
/// unknown, so only `ignore` applies to them).
pub fn read_labelled(path: &Path, policy: UncertainPolicy) -> Result<Labelled> {
    if crate::streamed::has_sparse_labels(path)? {
        if policy != UncertainPolicy::Ignore {
            return Err(DataError::invalid(
                path,
                format!(
                    "sparse labels (`labels_index` + `labels_value`) are read with uncertain entries unknown; the uncertain policy `{}` needs a dense `labels` tensor",
                    policy.name()
                ),
            ));
        }
        let set = crate::streamed::read_labelled_set(path)?;
        return Ok(Labelled { features: set.features, labels: set.labels, categories: set.categories, paths: None });
    }
    let set = read_feature_set(path)?;
    let Some(labels) = set.labels else {
        return Err(DataError::invalid(
            path,
            "no `labels` tensor (nor sparse `labels_index` + `labels_value`); this command needs labelled features",
        ));
    };
    Ok(Labelled {
        features: set.features,
        labels: labels.resolve_uncertain(&[policy]).to_sparse(),
        categories: set.categories,
        paths: set.paths,
    })
}

/// Reads a head (found under `key` in a model state dict, see [`read_head_file`]) and checks
/// it against features of dimension `d` and, when given, `c` label columns of `data_path`.
pub fn read_head_for(path: &Path, key: Option<&str>, d: usize, c: Option<usize>, data_path: &Path) -> Result<HeadFile> {
    let file = read_head_file(path, key)?;
    let head = &file.head;
    if head.dim() != d {
        return Err(DataError::invalid(
            path,
            format!(
                "the head's weight is [{}, {}] but the features in {} have d = {d}: the head must be trained on these features",
                head.categories(),
                head.dim(),
                data_path.display()
            ),
        ));
    }
    if let Some(c) = c.filter(|&c| c != head.categories()) {
        return Err(DataError::invalid(
            path,
            format!("the head has {} categories but {} has {c} label columns", head.categories(), data_path.display()),
        ));
    }
    Ok(file)
}

/// Refuses files whose category names disagree (same count, other names or order); files
/// without names are not compared.
pub fn check_same_categories(files: &[(&Path, Option<&[String]>)]) -> Result<()> {
    let named: Vec<_> = files.iter().filter_map(|(p, c)| c.map(|c| (p, c))).collect();
    for pair in named.windows(2) {
        let ((pa, a), (pb, b)) = (pair[0], pair[1]);
        if let Some(k) = (0..a.len().max(b.len())).find(|&k| a.get(k) != b.get(k)) {
            return Err(DataError::invalid(
                pb,
                format!(
                    "category {k} is `{}` but {} names it `{}`: the files must list the same categories in the same order",
                    b.get(k).map_or("(none)", String::as_str),
                    pa.display(),
                    a.get(k).map_or("(none)", String::as_str)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_lists_must_agree_name_by_name() {
        let (a, b) = (vec!["cat".to_string(), "dog".into()], vec!["cat".to_string(), "cow".into()]);
        check_same_categories(&[(Path::new("a"), Some(&a)), (Path::new("x"), None), (Path::new("a2"), Some(&a))])
            .unwrap();
        let e = check_same_categories(&[(Path::new("a"), Some(&a)), (Path::new("b"), Some(&b))]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "b: category 1 is `cow` but a names it `dog`: the files must list the same categories in the same order"
        );
    }
}
