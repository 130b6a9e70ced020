//! The adapters' error type: every variant names the file, and parse errors the line and field.

use std::path::{Path, PathBuf};

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, DataError>;

/// What went wrong reading or writing a dataset, feature set or head.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened, read or written.
    // The OS error is part of the message, not a `source`: printed with its chain (`{:#}`), a
    // source would repeat the cause ("No such file (os error 2): No such file (os error 2)").
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A text file has a malformed line.
    #[error("{path}:{line}: {field}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line (or CSV row) number.
        line: usize,
        /// The field, attribute or column concerned.
        field: String,
        /// What is wrong, repeating the offending value.
        message: String,
    },
    /// An in-memory input (an array a front end was given) is not what was expected.
    #[error("{name}: {message}")]
    Array {
        /// The argument's name (`train_features`).
        name: String,
        /// What is wrong, with the shapes or the value and where it is.
        message: String,
    },
    /// A file is well-formed but its content is not what was expected (shapes, names, values).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.to_path_buf(), error: source }
    }

    /// A content error in the array argument `name`.
    pub fn array(name: &str, message: impl Into<String>) -> Self {
        DataError::Array { name: name.to_string(), message: message.into() }
    }

    /// A content error on `path`.
    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        DataError::Invalid { path: path.to_path_buf(), message: message.into() }
    }

    /// A parse error on `path` at `line`, field `field`.
    pub fn parse(path: &Path, line: usize, field: impl Into<String>, message: impl Into<String>) -> Self {
        DataError::Parse { path: path.to_path_buf(), line, field: field.into(), message: message.into() }
    }
}
