//! Where a run's time and memory go, stage by stage (load, base heads, each CFT method,
//! evaluation, report): wall time, user and system CPU time, and the peak resident memory
//! reached within the stage. `cft run --stages` records them for the paper-scale rehearsals
//! (README "The paper's size").
//!
//! CPU times and peaks are the process's (Linux `/proc/self`): while stages are recorded the
//! protocol runs its units one after another, so each stage's figures are its own. The peak
//! is reset at each stage's start (`/proc/self/clear_refs`), so it is the stage's own peak.

use serde::Serialize;
use std::sync::Mutex;
use std::time::Instant;

/// Totals of one stage over every unit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageTotals {
    /// Stage name (`load`, `base heads`, `CFT-GA`, …).
    pub stage: String,
    /// How many times it ran (one per unit, or once).
    pub runs: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// User CPU seconds (all threads).
    pub user_seconds: f64,
    /// System CPU seconds (all threads): page faults, allocation, I/O.
    pub system_seconds: f64,
    /// The highest resident memory reached within the stage, bytes (`None` off Linux).
    pub peak_rss_bytes: Option<u64>,
}

impl StageTotals {
    /// System time's share of the stage's CPU time.
    pub fn system_share(&self) -> f64 {
        let cpu = self.user_seconds + self.system_seconds;
        if cpu > 0.0 {
            self.system_seconds / cpu
        } else {
            0.0
        }
    }
}

/// The process's CPU times so far (user, system), in seconds.
fn cpu_times() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) end with ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name and state.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    const TICKS_PER_SECOND: f64 = 100.0; // USER_HZ, 100 on every Linux ABI
    Some((ticks(11)? / TICKS_PER_SECOND, ticks(12)? / TICKS_PER_SECOND))
}

/// The peak resident memory since the last reset, bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Starts a new peak: the next [`peak_rss`] reports the highest memory from now on.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Stage figures, recorded from one thread at a time.
#[derive(Debug, Default)]
pub struct StageLog {
    totals: Mutex<Vec<StageTotals>>,
}

impl StageLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` as (one run of) stage `name` and adds its figures.
    pub fn time<T>(&self, name: &str, f: impl FnOnce() -> T) -> T {
        reset_peak();
        let (start, cpu0) = (Instant::now(), cpu_times());
        let out = f();
        let seconds = start.elapsed().as_secs_f64();
        let (user, system) = match (cpu0, cpu_times()) {
            (Some((u0, s0)), Some((u1, s1))) => (u1 - u0, s1 - s0),
            _ => (0.0, 0.0),
        };
        let peak = peak_rss();
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        match totals.iter_mut().find(|t| t.stage == name) {
            Some(t) => {
                t.runs += 1;
                t.seconds += seconds;
                t.user_seconds += user;
                t.system_seconds += system;
                t.peak_rss_bytes = t.peak_rss_bytes.max(peak);
            }
            None => totals.push(StageTotals {
                stage: name.to_string(),
                runs: 1,
                seconds,
                user_seconds: user,
                system_seconds: system,
                peak_rss_bytes: peak,
            }),
        }
        out
    }

    /// Every stage's totals, in the order they first ran.
    pub fn totals(&self) -> Vec<StageTotals> {
        self.totals.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A Markdown table of the stages and their sum, with each peak as a multiple of
    /// `feature_bytes` (the features held in memory).
    pub fn table(&self, feature_bytes: u64) -> String {
        let totals = self.totals();
        let gib = |b: u64| cft_data::bench::gib(b.into());
        let mut s = String::from(
            "| stage | runs | wall (s) | user CPU (s) | system CPU (s) | system share | peak RSS (GiB) | peak / feature bytes |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let row = |s: &mut String, t: &StageTotals| {
            let peak = t.peak_rss_bytes.map_or("–".into(), |p| format!("{:.2}", gib(p)));
            let ratio =
                t.peak_rss_bytes.map_or("–".into(), |p| format!("{:.2}", p as f64 / feature_bytes.max(1) as f64));
            s.push_str(&format!(
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1}% | {peak} | {ratio} |\n",
                t.stage,
                t.runs,
                t.seconds,
                t.user_seconds,
                t.system_seconds,
                100.0 * t.system_share()
            ));
        };
        for t in &totals {
            row(&mut s, t);
        }
        let all = StageTotals {
            stage: "**all stages**".into(),
            runs: totals.iter().map(|t| t.runs).sum(),
            seconds: totals.iter().map(|t| t.seconds).sum(),
            user_seconds: totals.iter().map(|t| t.user_seconds).sum(),
            system_seconds: totals.iter().map(|t| t.system_seconds).sum(),
            peak_rss_bytes: totals.iter().filter_map(|t| t.peak_rss_bytes).max(),
        };
        row(&mut s, &all);
        s.push_str(&format!("\nFeature bytes in memory (f32): {:.2} GiB.\n", gib(feature_bytes)));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_add_up_per_name_and_report_a_peak_that_follows_the_work() {
        let log = StageLog::new();
        for _ in 0..2 {
            log.time("small", || std::hint::black_box(vec![1u8; 1 << 20]).len());
        }
        // 256 MB touched: the stage's own peak is at least that, the small stage's is not.
        log.time("large", || std::hint::black_box(vec![1u8; 256 << 20]).len());
        let t = log.totals();
        assert_eq!(t.iter().map(|t| (t.stage.as_str(), t.runs)).collect::<Vec<_>>(), [("small", 2), ("large", 1)]);
        if let (Some(small), Some(large)) = (t[0].peak_rss_bytes, t[1].peak_rss_bytes) {
            assert!(large >= small + (200 << 20), "peaks: small {small}, large {large}");
        } else {
            eprintln!("SKIPPED peak check: /proc/self/status has no VmHWM here");
        }
        let table = log.table(1 << 30);
        assert!(table.contains("| large | 1 |") && table.contains("**all stages** | 3 |"), "{table}");
    }
}
