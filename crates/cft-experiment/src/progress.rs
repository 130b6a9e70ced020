//! Progress of long work, reported by the library and drawn by the front end (a terminal bar,
//! log lines, a notebook widget, a Python callback).

/// Receives progress: `done` of `total` steps of the work named `label`.
pub trait Progress: Sync {
    /// `done` of `total` steps of `label` are finished.
    fn update(&self, done: u64, total: u64, label: &str);
    /// The work is over (clear a bar).
    fn finish(&self) {}
    /// A line about the work (what runs, where it went), for the user.
    fn note(&self, line: &str) {
        let _ = line;
    }
    /// Whether the user asked to stop (Python's Ctrl-C): long work checks it between epochs,
    /// units and cells, and ends with [`cft_core::Interrupted`].
    fn stop_requested(&self) -> bool {
        false
    }
}

/// No progress shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn update(&self, _: u64, _: u64, _: &str) {}
}
