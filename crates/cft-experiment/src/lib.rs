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
//!
//! The main call's input: a spec, checked, and the protocol configuration it gives
//! (`partial_label::run_protocol` then runs it on a dataset):
//!
//! ```
//! let spec: cft_experiment::spec::ExperimentSpec = toml::from_str(
//!     "seeds = [0, 1]\n[data]\ndataset = \"scene\"\n[labels]\nproportions = [0.1, 0.5]\n[cft]\nbp_lr = [1e-4, 1e-3]\n",
//! )
//! .unwrap();
//! spec.check().unwrap();
//! let cells = cft_experiment::grid::expand(&spec).unwrap();
//! assert_eq!(cells.len(), 4); // 2 learning rates × 2 seeds
//! let cfg = cells[3].spec.protocol_config("scene");
//! assert_eq!((cfg.bp_lr, cfg.ga_seed, cfg.mask_seed), (1e-3, 1, 527));
//! ```

pub mod ablation;
pub mod bench;
pub mod checkpoint;
pub mod engine;
pub mod error;
pub mod finetune_job;
pub mod grid;
pub mod head_job;
pub mod manifest;
pub mod merge;
pub mod partial_label;
pub mod progress;
pub mod rehearsal;
pub mod run;
pub mod shard;
pub mod spec;
pub mod stages;
