//! The core's errors, on the ground floor (this module imports nothing of the crate): a
//! parameter outside its range ([`ParamError`], from each configuration's `check()`), a buffer
//! that does not fit its declared shape (the shapes in the message), or a run its controller
//! stopped ([`Interrupted`]). Functions return the precise type; [`CoreError`] is the one a
//! caller collects them into.

/// A parameter outside its range: `{param} = {value}: {expected}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    /// The parameter's name (the core's, or the front end's key or flag after [`ParamError::named`]).
    pub param: String,
    /// The refused value, as written.
    pub value: String,
    /// What is allowed.
    pub expected: String,
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A flag reads as on the command line (`--lr 0`), a key as in a spec (`cft.bp_lr = 0`).
        let sep = if self.param.starts_with("--") { " " } else { " = " };
        write!(f, "{}{sep}{}: {}", self.param, self.value, self.expected)
    }
}

impl std::error::Error for ParamError {}

impl ParamError {
    /// `param = value: expected`.
    pub fn new(param: &str, value: impl std::fmt::Display, expected: impl Into<String>) -> Self {
        Self { param: param.to_string(), value: value.to_string(), expected: expected.into() }
    }

    /// A name that is not one of `choices` (`method = "sgd": expected one of "bp-asl", …`).
    pub fn unknown(param: &str, value: &str, choices: &[&str]) -> Self {
        let quoted: Vec<String> = choices.iter().map(|c| format!("{c:?}")).collect();
        Self::new(param, format!("{value:?}"), format!("expected one of {}", quoted.join(", ")))
    }

    /// The same error under the front end's name for the parameter: a spec key (`cft.bp_lr`;
    /// shown as `cft.bp_lr = 0: …`) or a flag (`--lr`; shown as `--lr 0: …`).
    pub fn named(self, name: &str) -> Self {
        Self { param: name.to_string(), ..self }
    }

    /// The same error with `prefix` before the parameter's name (`ga.` → `cft.ga.population`).
    pub fn under(self, prefix: &str) -> Self {
        Self { param: format!("{prefix}{}", self.param), ..self }
    }
}

/// The run was stopped by its controller ([`crate::Hooks::on_epochs`]) between two epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("fine-tuning interrupted between two epochs")]
pub struct Interrupted;

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
