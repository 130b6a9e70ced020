//! # cft-report: tables and figures from what the runs wrote
//!
//! Reads the results a run left on disk ([`results::ExperimentResults`]) and renders the
//! paper-style tables ([`table`]: Markdown, CSV, LaTeX) and figures ([`plots`]: PNG and SVG),
//! one folder per dataset ([`dataset_report`]). Nothing here recomputes a score: every number
//! comes from the files.

pub mod dataset_report;
pub mod plots;
pub mod results;
pub mod table;

pub use dataset_report::{read_results, write_dataset_report, ReportError};
pub use results::{ExperimentResults, MethodRow, Protocol, ResultCell};
pub use table::{partial_label_table, pct, Table};
