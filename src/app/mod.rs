//! The application layer: what each `vidapter` subcommand does, built from the library's
//! domain modules (data, backbone, eval, methods, train). Nothing below this layer imports
//! it; `main.rs` only parses arguments and prints what these functions return.
//!
//! - [`experiment`]: `train`, `eval`, `predict` and `kfold` on a run config;
//! - [`extract`]: `extract --config`, a run's feature cache of one split;
//! - [`demo`]: `vidapter demo`, the papers' story offline on synthetic videos;
//! - [`bench`]: timings against PyTorch in the same run (backbone, data, training steps,
//!   the feature cache).

pub mod bench;
pub mod demo;
pub mod experiment;
pub mod extract;
