//! The core's error: a parameter outside its range ([`ParamError`], from each configuration's
//! `check()`), a buffer that does not fit its declared shape (the shapes in the message), or a
//! run its controller stopped ([`Interrupted`]). Functions return the precise type; this enum
//! is the one a caller collects them into.

use crate::batched::Interrupted;
use crate::params::ParamError;

/// Everything the core refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// A parameter outside its range.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A buffer or part whose size does not fit the shape it is declared with.
    #[error("{what}: expected {expected}, given {got}")]
    Shape {
        /// What was being built (`matrix`, `labels`, `linear head`).
        what: &'static str,
        /// The shape it was declared with.
        expected: String,
        /// What was given.
        got: String,
    },
    /// A run stopped by its controller between two epochs.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl CoreError {
    /// A shape error: `what`, the declared shape and what was given.
    pub fn shape(what: &'static str, expected: impl Into<String>, got: impl Into<String>) -> Self {
        CoreError::Shape { what, expected: expected.into(), got: got.into() }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Label, LinearHead, Matrix, PartialLabels};

    #[test]
    fn shape_errors_carry_the_declared_and_the_given_sizes() {
        let e = Matrix::new(2, 3, vec![0.0; 5]).unwrap_err().to_string();
        assert_eq!(e, "matrix: expected [2, 3] (6 values), given 5 values");
        let e = PartialLabels::new(10, 2, vec![Label::Unknown; 19]).unwrap_err().to_string();
        assert_eq!(e, "labels: expected [10, 2] (20 labels), given 19 labels");
        let e = LinearHead::new(Matrix::zeros(3, 4), vec![0.0; 2]).unwrap_err().to_string();
        assert_eq!(e, "linear head: expected 3 biases (weight [3, 4]), given 2 biases");
    }
}
