//! # cft-report: tables and figures from what the runs wrote
//!
//! Reads the results a run left on disk ([`cft_results::ExperimentResults`], the schema `cft-experiment` writes) and the published
//! numbers ([`reference`](mod@reference), loaded with polars), and renders the paper-style tables ([`table`],
//! [`published_tables`]: Markdown, CSV, LaTeX) and figures ([`plots`]: PNG and SVG), one
//! folder per dataset ([`dataset_report`]) and an index ([`index`]). Nothing here recomputes a
//! score: every number comes from the files.

pub mod ablation;
pub mod dataset_report;
pub mod glyphs;
pub mod index;
pub mod plots;
pub mod published_tables;
pub mod reference;
pub mod table;

pub use dataset_report::{read_results, write_dataset_report, ReportError};
pub use index::write_index;
pub use published_tables::Ours;
pub use reference::{ensure_reference, Published};
pub use table::{partial_label_table, pct, Table};
