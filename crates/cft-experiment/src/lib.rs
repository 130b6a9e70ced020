//! # cft-experiment: the experiment layer
//!
//! What turns the parts into results a researcher can cite, as a library that front ends
//! (the `cft` CLI, ablation scripts) call without clap, indicatif or candle:
//! * [`partial_label`]: the paper's partial-label protocol on a feature dataset: units per
//!   (known-label proportion, selection protocol), the held-out split, aggregation into the
//!   report's results, a resumable unit store;
//! * [`checkpoint`]: fingerprints (configuration + input hashes) that every resumable store
//!   carries, so a resume never adopts another run's work;
//! * [`manifest`]: the run manifest written beside every result (configuration, seeds, inputs
//!   with hashes, versions, timings);
//! * [`spec`]: experiments as TOML files (`experiments/*.toml`), checked with file, line and key;
//! * [`grid`]: ablation grids: lists in a spec expand to cells, `seeds` repeats them, shards
//!   split them over a job array.

pub mod ablation;
pub mod checkpoint;
pub mod grid;
pub mod manifest;
pub mod partial_label;
pub mod spec;
