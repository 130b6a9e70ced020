//! Errors of feature extraction, each naming the file, tensor or image at fault.

use std::path::PathBuf;

/// What can go wrong while loading a backbone or extracting features.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// A weight the backbone needs is not in the file.
    #[error(
        "{file}: tensor `{name}` is missing (expected shape {expected:?}); is this a {backbone} state dict? {seen}"
    )]
    MissingTensor {
        /// The weights file.
        file: PathBuf,
        /// The state-dict key looked up (with the key prefix in force).
        name: String,
        /// The shape the backbone needs.
        expected: Vec<usize>,
        /// The backbone being built.
        backbone: String,
        /// What the file's keys look like: the top-level prefixes seen and how to map them.
        seen: String,
    },
    /// A weight has the wrong shape.
    #[error("{file}: tensor `{name}` has shape {found:?}, the backbone needs {expected:?}")]
    Shape {
        /// The weights file.
        file: PathBuf,
        /// The state-dict key.
        name: String,
        /// The shape the backbone needs.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// An image cannot be read or decoded.
    #[error("{path}: {message}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A file-system error.
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause (in the message, not a `source`, so that it is printed once).
        error: std::io::Error,
    },
    /// Invalid arguments or inputs.
    #[error("{0}")]
    Invalid(String),
    /// candle failed (device, kernel, shapes).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, FeatureError>;
