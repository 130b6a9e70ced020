//! The experiment layer's error: every refusal is one line naming the file (line, key, value)
//! it concerns; errors of the crates below keep their own types and wording. Front ends (the
//! CLI wraps it in `anyhow`) print it with `Display`, which includes the causes.

use std::fmt::Display;

/// What went wrong in a spec, a grid, a run or one of its stores.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A refused spec, configuration, store or run, in one line.
    #[error("{0}")]
    Refused(String),
    /// An error with what was being done when it happened (`context: cause`).
    #[error("{context}: {cause}")]
    Context {
        /// What was being done (a file, a key, a step).
        context: String,
        /// What went wrong.
        cause: Box<ExperimentError>,
    },
    /// A dataset, feature set or head file.
    #[error(transparent)]
    Data(#[from] cft_data::DataError),
    /// A parameter of the core outside its range.
    #[error(transparent)]
    Param(#[from] cft_core::params::ParamError),
    /// A shape the core refused, or a stopped run.
    #[error(transparent)]
    Core(#[from] cft_core::CoreError),
    /// Writing a report or a figure.
    #[error(transparent)]
    Report(#[from] cft_report::ReportError),
    /// The file system.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A JSON store or manifest.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A TOML spec.
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// Writing a spec value as TOML.
    #[error(transparent)]
    TomlWrite(#[from] toml::ser::Error),
    /// A number outside its type's range.
    #[error(transparent)]
    Number(#[from] std::num::TryFromIntError),
    /// An error of a front end's part: a [`crate::run::FeatureSource`] or a
    /// [`crate::engine::CftEngine`] (a GPU engine, an image pipeline).
    #[error(transparent)]
    Source(Box<dyn std::error::Error + Send + Sync>),
}

/// Result alias for this crate.
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;

impl ExperimentError {
    /// A refusal with this message.
    pub fn refused(message: impl Display) -> Self {
        ExperimentError::Refused(message.to_string())
    }

    /// A front end's error (an engine's, an image source's).
    pub fn source(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ExperimentError::Source(error.into())
    }
}

/// Defines `Context` (`context` / `with_context` on results and options, as front ends know
/// them from `anyhow`) for an error enum with `Refused(String)` and `Context { context, cause }`
/// variants: an error becomes `context: cause`, a `None` the context alone. One definition for
/// every library crate's error type (this crate's, `cft-images`').
#[macro_export]
macro_rules! context_trait {
    ($err:ident) => {
        /// `context` / `with_context` on results and options: the error becomes
        /// `context: cause`; a `None` becomes the context alone.
        pub trait Context<T> {
            /// Prefixes the error with `context`.
            fn context<C: std::fmt::Display>(self, context: C) -> std::result::Result<T, $err>;
            /// Prefixes the error with the context `f` gives (computed only on error).
            fn with_context<C: std::fmt::Display, F: FnOnce() -> C>(self, f: F) -> std::result::Result<T, $err>;
        }

        impl<T, E: Into<$err>> Context<T> for std::result::Result<T, E> {
            fn context<C: std::fmt::Display>(self, context: C) -> std::result::Result<T, $err> {
                self.map_err(|e| $err::Context { context: context.to_string(), cause: Box::new(e.into()) })
            }

            fn with_context<C: std::fmt::Display, F: FnOnce() -> C>(self, f: F) -> std::result::Result<T, $err> {
                self.map_err(|e| $err::Context { context: f().to_string(), cause: Box::new(e.into()) })
            }
        }

        impl<T> Context<T> for Option<T> {
            fn context<C: std::fmt::Display>(self, context: C) -> std::result::Result<T, $err> {
                self.ok_or_else(|| $err::Refused(context.to_string()))
            }

            fn with_context<C: std::fmt::Display, F: FnOnce() -> C>(self, f: F) -> std::result::Result<T, $err> {
                self.ok_or_else(|| $err::Refused(f().to_string()))
            }
        }
    };
}

context_trait!(ExperimentError);

/// Returns early with [`ExperimentError::Refused`] and a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::ExperimentError::Refused(format!($($arg)*)))
    };
}

/// [`bail!`] unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::error::bail!($($arg)*);
        }
    };
}

/// An [`ExperimentError::Refused`] with a formatted message.
macro_rules! refused {
    ($($arg:tt)*) => {
        $crate::error::ExperimentError::Refused(format!($($arg)*))
    };
}

pub(crate) use {bail, ensure, refused};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_reads_context_then_cause_and_options_become_the_context() {
        let e: Result<()> = Err(std::io::Error::new(std::io::ErrorKind::NotFound, "gone")).context("plan.json");
        assert_eq!(e.unwrap_err().to_string(), "plan.json: gone");
        let none: Option<u8> = None;
        assert_eq!(none.context("no unit 3").unwrap_err().to_string(), "no unit 3");
        let r: Result<()> = (|| {
            ensure!(1 + 1 == 3, "arithmetic: {} ≠ {}", 2, 3);
            Ok(())
        })();
        assert_eq!(r.unwrap_err().to_string(), "arithmetic: 2 ≠ 3");
    }
}
