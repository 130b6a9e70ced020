//! The image layer's error: every refusal is one line naming the file (line, key, value)
//! it concerns; errors of the crates below keep their own types and wording. Front ends (the
//! CLI wraps it in `anyhow`) print it with `Display`, which includes the causes.

use std::fmt::Display;

/// What went wrong extracting, caching or loading image features.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// A refused spec, configuration, store or run, in one line.
    #[error("{0}")]
    Refused(String),
    /// An error with what was being done when it happened (`context: cause`).
    #[error("{context}: {cause}")]
    Context {
        /// What was being done (a file, a key, a step).
        context: String,
        /// What went wrong.
        cause: Box<ImagesError>,
    },
    /// A dataset, feature set or head file.
    #[error(transparent)]
    Data(#[from] cft_data::DataError),
    /// A backbone, its weights or the image pipeline (boxed: it is large).
    #[error(transparent)]
    Features(Box<cft_features::FeatureError>),
    /// A shape the core refused (the shapes are in the message).
    #[error(transparent)]
    Core(#[from] cft_core::CoreError),
    /// The experiment layer (a spec, a fingerprint, a manifest).
    #[error(transparent)]
    Experiment(#[from] cft_experiment::error::ExperimentError),
    /// The file system.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A JSON cache entry or manifest.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A tensor operation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<cft_features::FeatureError> for ImagesError {
    fn from(e: cft_features::FeatureError) -> Self {
        ImagesError::Features(Box::new(e))
    }
}

/// Result alias for this crate.
pub type Result<T, E = ImagesError> = std::result::Result<T, E>;

impl ImagesError {
    /// A refusal with this message.
    pub fn refused(message: impl Display) -> Self {
        ImagesError::Refused(message.to_string())
    }
}

cft_experiment::context_trait!(ImagesError);

/// Returns early with [`ImagesError::Refused`] and a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::ImagesError::Refused(format!($($arg)*)))
    };
}

/// An [`ImagesError::Refused`] with a formatted message.
macro_rules! refused {
    ($($arg:tt)*) => {
        $crate::error::ImagesError::Refused(format!($($arg)*))
    };
}

pub(crate) use {bail, refused};
