//! Run manifests: what was run, with which configuration, seeds, inputs and versions, how long
//! it took. One is written beside every result so that a number can be traced and rerun.

use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// An input file as recorded in a manifest (and in checkpoints, to recognise the same input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// Path as given.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// FNV-1a 64 of the content, hex (cheap identity check, not a security hash).
    pub fnv1a64: String,
}

impl InputFile {
    /// Records a file (size and content hash), streaming it in blocks.
    pub fn of(path: &Path) -> Result<Self> {
        let mut h = FNV_OFFSET;
        let bytes = cft_data::streamed::for_each_block(path, |block| h = fnv1a64(h, block))
            .map_err(|e| crate::error::refused!("{}: {e}", path.display()))?;
        Ok(Self { path: path.display().to_string(), bytes, fnv1a64: format!("{h:016x}") })
    }

    /// Whether two records describe the same content (the path may differ).
    pub fn same_content(&self, other: &Self) -> bool {
        self.bytes == other.bytes && self.fnv1a64 == other.fnv1a64
    }
}

/// The FNV-1a 64 offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a 64 of `bytes`, continuing from `h` (start with [`FNV_OFFSET`]).
pub fn fnv1a64(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Software versions and the source commit.
#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    /// This workspace's version.
    pub cft: &'static str,
    /// The commit this `cft` was built from (captured at build time; `None` when built outside
    /// a git checkout). Never the repository of the current directory.
    pub git_commit: Option<String>,
    /// Whether the build's checkout had uncommitted changes to tracked files.
    pub git_dirty: Option<bool>,
    /// Target triple and build profile.
    pub build: String,
    /// The CPU kernel level that ran (results are the same at every level).
    pub kernel: &'static str,
}

impl Versions {
    /// Collects the versions of this build.
    pub fn collect() -> Self {
        let commit = Some(env!("CFT_BUILD_GIT_COMMIT")).filter(|c| !c.is_empty()).map(str::to_string);
        let dirty = match env!("CFT_BUILD_GIT_DIRTY") {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        Self {
            cft: env!("CARGO_PKG_VERSION"),
            git_commit: commit,
            git_dirty: dirty,
            build: format!(
                "{}-{} {}",
                std::env::consts::ARCH,
                std::env::consts::OS,
                if cfg!(debug_assertions) { "debug" } else { "release" }
            ),
            kernel: cft_core::kernels::kernel_level().level().name(),
        }
    }
}

/// A run manifest.
#[derive(Debug, Clone, Serialize)]
pub struct RunManifest<C: Serialize> {
    /// The subcommand (`finetune`, `reproduce`, …).
    pub command: String,
    /// The full command line.
    pub argv: Vec<String>,
    /// Start time, UTC, RFC 3339.
    pub started_utc: String,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Threads used.
    pub threads: usize,
    /// The configuration (with seeds).
    pub config: C,
    /// Input files.
    pub inputs: Vec<InputFile>,
    /// Output files written.
    pub outputs: Vec<String>,
    /// Versions.
    pub versions: Versions,
}

/// Measures a run and builds its manifest at the end.
#[derive(Debug)]
pub struct RunClock {
    started: SystemTime,
    clock: Instant,
}

impl Default for RunClock {
    fn default() -> Self {
        Self::start()
    }
}

impl RunClock {
    /// Starts the clock.
    pub fn start() -> Self {
        Self { started: SystemTime::now(), clock: Instant::now() }
    }

    /// Seconds since start.
    pub fn seconds(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    /// The manifest of a finished run.
    pub fn manifest<C: Serialize>(
        &self,
        command: &str,
        config: C,
        inputs: Vec<InputFile>,
        outputs: Vec<PathBuf>,
    ) -> RunManifest<C> {
        RunManifest {
            command: command.to_string(),
            argv: std::env::args().collect(),
            started_utc: rfc3339(self.started),
            seconds: self.seconds(),
            threads: rayon::current_num_threads(),
            config,
            inputs,
            outputs: outputs.iter().map(|p| p.display().to_string()).collect(),
            versions: Versions::collect(),
        }
    }
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Writes a manifest as pretty JSON, atomically.
pub fn write_manifest<C: Serialize>(path: &Path, m: &RunManifest<C>) -> Result<()> {
    let text = serde_json::to_string_pretty(m)? + "\n";
    cft_data::write_atomic(path, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_654_861)), "2026-11-26T01:01:01Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }
}
