//! The value parsers and checks several commands share (device names, learning rates,
//! known-label proportions): one definition each, so every flag is refused the same way.
//! Range checks delegate to the core's ([`cft_core::params`]).

use anyhow::Result;

/// Parses `cpu`, `cuda` or `cuda:N`; `Some(N)` for CUDA.
pub fn parse_device(s: &str) -> Result<Option<usize>> {
    match s {
        "cpu" => Ok(None),
        "cuda" => Ok(Some(0)),
        _ => match s.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Ok(Some(n)),
            None => anyhow::bail!("--device {s}: expected cpu, cuda or cuda:N"),
        },
    }
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
