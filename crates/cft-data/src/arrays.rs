//! Features, labels and heads handed over in memory (the Python package's numpy arrays and
//! torch tensors), checked as the file readers check them and with the same wording, the
//! argument's name standing where a file reader names the file.

use crate::error::{DataError, Result};
use cft_core::{Label, LinearHead, Matrix, PartialLabels};

/// The message for a non-finite feature value (file readers prefix the tensor's name).
pub fn non_finite_feature(row: usize, col: usize, v: f32) -> String {
    format!("row {row}, column {col} is {v}: features must be finite")
}

/// The message for a label value outside the reference's encoding.
pub fn bad_label(row: usize, col: usize, v: f32) -> String {
    format!("row {row}, column {col} is {v}; expected 1, 0, -1 or NaN")
}

/// Row-major `rows × cols` features, refused when empty or when a value is not finite.
pub fn features(name: &str, rows: usize, cols: usize, data: Vec<f32>) -> Result<Matrix> {
    if rows == 0 || cols == 0 {
        return Err(DataError::array(
            name,
            format!("shape [{rows}, {cols}]: features need at least one row and one column"),
        ));
    }
    let m = Matrix::new(rows, cols, data).map_err(|e| DataError::array(name, e.to_string()))?;
    match m.first_non_finite() {
        Some((r, c, v)) => Err(DataError::array(name, non_finite_feature(r, c, v))),
        None => Ok(m),
    }
}

/// Row-major `rows × cols` labels in the reference's encoding (1 positive, 0 negative, −1
/// uncertain, NaN unknown).
pub fn labels(name: &str, rows: usize, cols: usize, values: &[f32]) -> Result<PartialLabels> {
    if cols == 0 || values.len() != rows * cols {
        return Err(DataError::array(name, format!("shape [{rows}, {cols}]: labels need at least one category")));
    }
    let mut data = Vec::with_capacity(values.len());
    for (i, &v) in values.iter().enumerate() {
        data.push(Label::from_reference(v).ok_or_else(|| DataError::array(name, bad_label(i / cols, i % cols, v)))?);
    }
    Ok(PartialLabels::new(rows, cols, data).expect("shape checked"))
}

/// Labels whose rows must match the `rows` of the features (or scores) they go with.
pub fn labels_for(
    name: &str,
    features_name: &str,
    rows: usize,
    shape: (usize, usize),
    values: &[f32],
) -> Result<PartialLabels> {
    if shape.0 != rows {
        return Err(DataError::array(
            name,
            format!("{} rows but `{features_name}` has {}: one label row per feature row is required", shape.0, rows),
        ));
    }
    labels(name, shape.0, shape.1, values)
}

/// A linear head `weight [C, d]` (+ `bias [C]`, zeros when absent) for features of width `d`
/// and `c` label columns; refused when the shapes disagree or a value is not finite.
pub fn head(weight: (usize, usize, Vec<f32>), bias: Option<Vec<f32>>, d: usize, c: usize) -> Result<LinearHead> {
    let (rows, cols, w) = weight;
    if cols != d || rows != c {
        return Err(DataError::array(
            "weight",
            format!(
                "shape [{rows}, {cols}] does not fit features of width {d} and {c} label columns: expected [{c}, {d}]"
            ),
        ));
    }
    let weight = Matrix::new(rows, cols, w).map_err(|e| DataError::array("weight", e.to_string()))?;
    if let Some((r, k, v)) = weight.first_non_finite() {
        return Err(DataError::array("weight", format!("row {r}, column {k} is {v}: weights must be finite")));
    }
    let bias = match bias {
        Some(b) if b.len() != c => {
            return Err(DataError::array(
                "bias",
                format!("{} values for {c} categories (weight has {c} rows)", b.len()),
            ))
        }
        Some(b) => match b.iter().position(|v| !v.is_finite()) {
            Some(k) => return Err(DataError::array("bias", format!("entry {k} is {}: biases must be finite", b[k]))),
            None => b,
        },
        None => vec![0.0; c],
    };
    LinearHead::new(weight, bias).map_err(|e| DataError::array("bias", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arrays_are_refused_naming_the_argument_and_the_place() {
        let e = features("train_features", 2, 2, vec![0.0, 1.0, f32::NAN, 2.0]).unwrap_err().to_string();
        assert_eq!(e, "train_features: row 1, column 0 is NaN: features must be finite");
        let e = features("x", 0, 3, vec![]).unwrap_err().to_string();
        assert_eq!(e, "x: shape [0, 3]: features need at least one row and one column");
        let e = labels("train_labels", 1, 3, &[1.0, 0.5, 0.0]).unwrap_err().to_string();
        assert_eq!(e, "train_labels: row 0, column 1 is 0.5; expected 1, 0, -1 or NaN");
        let e = labels_for("y", "x", 2, (3, 1), &[1.0; 3]).unwrap_err().to_string();
        assert_eq!(e, "y: 3 rows but `x` has 2: one label row per feature row is required");
        let e = head((2, 3, vec![0.0; 6]), None, 4, 2).unwrap_err().to_string();
        assert_eq!(e, "weight: shape [2, 3] does not fit features of width 4 and 2 label columns: expected [2, 4]");
        let e = head((1, 1, vec![f32::INFINITY]), None, 1, 1).unwrap_err().to_string();
        assert_eq!(e, "weight: row 0, column 0 is inf: weights must be finite");
        let e = head((1, 1, vec![0.0]), Some(vec![0.0, 1.0]), 1, 1).unwrap_err().to_string();
        assert_eq!(e, "bias: 2 values for 1 categories (weight has 1 rows)");
        let h = head((2, 1, vec![0.5, -0.5]), None, 1, 2).unwrap();
        assert_eq!(h.bias, vec![0.0, 0.0]);
        assert_eq!(labels("y", 1, 4, &[1.0, 0.0, -1.0, f32::NAN]).unwrap().row(0)[2], Label::Uncertain);
    }
}
