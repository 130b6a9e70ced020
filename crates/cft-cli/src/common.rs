//! What the commands share to show their work: progress bars on a terminal and progress lines
//! in logs ([`progress`], [`Bars`] for the library's reports), and a run's printed table.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Prints a single run's table and where it went (or, for a shard, how to merge); with
/// `stages`, the stage table too.
pub fn print_run(
    done: &cft_experiment::partial_label::Reproduction,
    out: &std::path::Path,
    clock: Instant,
    stages: bool,
) -> anyhow::Result<()> {
    match &done.results {
        Some(results) => {
            let mut table = cft_report::partial_label_table(results, "");
            table.links.clear();
            print!("{}", table.to_markdown());
            eprintln!("wrote {} in {:.1} s", done.dir.display(), clock.elapsed().as_secs_f64());
        }
        None => eprintln!(
            "ran {} of {} units into {} in {:.1} s; when every shard is done, `cft report {}` merges them",
            done.ran,
            done.total,
            done.dir.display(),
            clock.elapsed().as_secs_f64(),
            out.display()
        ),
    }
    if stages {
        let path = done.dir.join("stages.md");
        eprint!("{}", std::fs::read_to_string(&path)?);
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
