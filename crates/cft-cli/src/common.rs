//! Helpers shared by the commands: loading checked inputs, progress bars, summary tables.

use anyhow::{bail, Result};
use cft_core::{CategoryOutcome, PartialLabels, UncertainPolicy};
use cft_data::{read_feature_set, read_head_file, FeatureSet, HeadFile};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A feature set that must carry labels.
pub struct Labelled {
    /// The features (and metadata).
    pub set: FeatureSet,
    /// Its labels, uncertain entries resolved.
    pub labels: PartialLabels,
}

/// Reads a feature set that must have a `labels` tensor and resolves uncertain labels.
pub fn load_labelled(path: &Path, policy: UncertainPolicy) -> Result<Labelled> {
    let set = read_feature_set(path)?;
    let Some(labels) = set.labels.clone() else {
        bail!("{}: no `labels` tensor; this command needs labelled features", path.display());
    };
    Ok(Labelled { labels: labels.resolve_uncertain(&[policy]), set })
}

/// Reads a head (found under `key` in a model state dict, see [`cft_data::read_head_file`])
/// and checks it against features of dimension `d` and `c` label columns.
pub fn load_head_for(path: &Path, key: Option<&str>, d: usize, c: Option<usize>, data_path: &Path) -> Result<HeadFile> {
    let file = read_head_file(path, key)?;
    let head = &file.head;
    if head.dim() != d {
        bail!(
            "{}: the head's weight is [{}, {}] but the features in {} have d = {d}: the head must be trained on these features",
            path.display(),
            head.categories(),
            head.dim(),
            data_path.display()
        );
    }
    if let Some(c) = c {
        if head.categories() != c {
            bail!(
                "{}: the head has {} categories but {} has {c} label columns",
                path.display(),
                head.categories(),
                data_path.display()
            );
        }
    }
    Ok(file)
}

/// A progress bar on stderr: drawn in place on a terminal; elsewhere (CI, `nohup`, Slurm
/// logs) a plain line every 10 seconds (`CFT_PROGRESS_INTERVAL` seconds), as cargo and pip do.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    use std::io::IsTerminal;
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} {rate} {elapsed_precise} (eta {eta})")
                .expect("valid template")
                .with_key("rate", rate)
                .progress_chars("=> "),
        );
        bar
    } else {
        let every = std::env::var("CFT_PROGRESS_INTERVAL")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(10.0);
        let log = LogLines { every: Duration::from_secs_f64(every), last: Mutex::new(None) };
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::term_like(Box::new(log)));
        bar.set_style(
            ProgressStyle::with_template("{msg}: {pos}/{len} ({percent}%), {rate}, {elapsed} elapsed, eta {eta}")
                .expect("valid template")
                .with_key("rate", rate),
        );
        bar
    };
    bar.set_message(what.to_string());
    bar
}

/// The library's progress reports drawn as [`progress`] bars: one bar per piece of work (a new
/// total, e.g. the next split's extraction, starts a new bar), notes printed above it.
#[derive(Default)]
pub struct Bars {
    bar: Mutex<Option<(String, ProgressBar)>>,
}

impl cft_experiment::progress::Progress for Bars {
    fn update(&self, done: u64, total: u64, label: &str) {
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(|(_, b)| b.length() != Some(total)) {
            if let Some((_, old)) = slot.take() {
                old.finish_and_clear();
            }
            *slot = Some((label.to_string(), progress(total, label)));
        }
        if let Some((l, bar)) = slot.as_mut() {
            if l != label {
                *l = label.to_string();
                bar.set_message(label.to_string());
            }
            bar.set_position(done);
        }
    }

    fn finish(&self) {
        if let Some((_, bar)) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }

    fn note(&self, line: &str) {
        match self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some((_, bar)) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

/// The rate as a whole number per second (indicatif's `per_sec` prints four decimals).
fn rate(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let r = state.per_sec();
    let _ = if r >= 10.0 { write!(w, "{r:.0}/s") } else { write!(w, "{r:.2}/s") };
}

/// The non-terminal progress target: prints the rendered line at most once per interval.
#[derive(Debug)]
struct LogLines {
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl TermLike for LogLines {
    fn width(&self) -> u16 {
        160
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, line: &str) -> std::io::Result<()> {
        self.write_str(line)
    }
    fn write_str(&self, line: &str) -> std::io::Result<()> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= self.every) {
            eprintln!("{line}");
            *last = Some(Instant::now());
        }
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Category names: from the file, or `0..C` as strings.
pub fn category_names(set: &FeatureSet, c: usize) -> Vec<String> {
    set.categories.clone().unwrap_or_else(|| (0..c).map(|i| i.to_string()).collect())
}

fn fmt_score(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |x| format!("{x:.4}"))
}

/// The per-category summary printed by `cft finetune`. Status: `fine-tuned`, `unchanged` (no
/// epoch beat the original, which is kept), `fine-tuned, at the epoch limit` (the run ended at
/// `max_epochs` while the best epoch was recent: more epochs might still help), or the skip reason.
pub fn outcome_table(outcomes: &[CategoryOutcome], names: &[String], max_epochs: usize) -> String {
    let w = names.iter().map(String::len).max().unwrap_or(8).clamp(8, 28);
    let mut s = format!(
        "{:>5}  {:<w$}  {:>7}  {:>7}  {:>8}  {:>8}  {:>8}  {:>6}  {:>6}  {:>7}  status\n",
        "index", "category", "train", "valid", "original", "best", "delta", "best@", "epochs", "seconds"
    );
    for o in outcomes {
        let name: String = names.get(o.category).map_or("?", String::as_str).chars().take(w).collect();
        let delta = match (o.original_score, o.best_score) {
            (Some(a), Some(b)) => format!("{:+.4}", b - a),
            _ => "—".into(),
        };
        let status = match o.skipped {
            Some(r) => format!("skipped: {r}"),
            None if o.best_epoch < 0 => "unchanged (no epoch beat the original)".to_string(),
            // Stopped by the epoch limit, not by patience: the score was still improving.
            None if o.epochs_run >= max_epochs => "fine-tuned, at the epoch limit (still improving)".to_string(),
            None => "fine-tuned".to_string(),
        };
        s.push_str(&format!(
            "{:>5}  {:<w$}  {:>7}  {:>7}  {:>8}  {:>8}  {:>8}  {:>6}  {:>6}  {:>7.2}  {status}\n",
            o.category,
            name,
            o.train_known,
            o.valid_known,
            fmt_score(o.original_score),
            fmt_score(o.best_score),
            delta,
            o.best_epoch,
            o.epochs_run,
            o.seconds
        ));
    }
    s
}

pub use cft_experiment::partial_label::{append_history, HISTORY_HEADER};

pub use cft_data::fsutil::{first_line, sibling};

/// Refuses files whose category names disagree (same count, other names or order).
pub fn check_same_categories(files: &[(&std::path::Path, Option<&[String]>)]) -> Result<()> {
    let named: Vec<_> = files.iter().filter_map(|(p, c)| c.map(|c| (p, c))).collect();
    for pair in named.windows(2) {
        let ((pa, a), (pb, b)) = (pair[0], pair[1]);
        if let Some(k) = (0..a.len().max(b.len())).find(|&k| a.get(k) != b.get(k)) {
            anyhow::bail!(
                "{}: category {k} is `{}` but {} names it `{}`: the files must list the same categories in the same order",
                pb.display(),
                b.get(k).map_or("(none)", String::as_str),
                pa.display(),
                a.get(k).map_or("(none)", String::as_str)
            );
        }
    }
    Ok(())
}

pub use cft_images::source::user_cache_dir;
