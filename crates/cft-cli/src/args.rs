//! What the commands' flags share: the value parser of every named choice ([`choice`]: clap
//! lists the spellings in `--help` and parses into the library's enum, so no command matches
//! on text), and the checks several commands apply, delegated to the core's ranges.

use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};

/// The value parser of a choice enum of the libraries (a method, a metric, an engine, …):
/// its spellings as clap's possible values, parsed by the enum's own `FromStr`.
pub fn choice<T: cft_core::Choice + Clone>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::NAMES.iter().copied()).try_map(|s| s.parse::<T>())
}

/// Refuses a learning rate outside the core's range ([`cft_core::params::check_lr`]), naming
/// the flag and the reference's values.
pub fn check_lr(option: &str, lr: f32) -> Result<()> {
    cft_core::params::check_lr(option, lr)
        .map_err(|e| anyhow::anyhow!("{e} (the reference uses 1e-4 for CFT, 1e-2 for base heads)"))
}

/// Refuses a known-label proportion outside [0, 1] (or NaN).
pub fn check_known(option: &str, p: f64) -> Result<()> {
    Ok(cft_core::params::check_known_proportion(option, p)?)
}

/// A core parameter's flag on the command line (`max_epochs` is `--epochs`, `adam.lr` is
/// `--lr`, others `--` and the name with dashes), so a refusal names what the user typed.
pub fn flag_error(e: cft_core::ParamError) -> anyhow::Error {
    let flag = match e.param.as_str() {
        "max_epochs" => "--epochs".to_string(),
        "adam.lr" => "--lr".to_string(),
        other => format!("--{}", other.rsplit('.').next().unwrap_or(other).replace('_', "-")),
    };
    anyhow::anyhow!("{}", e.named(&flag))
}
