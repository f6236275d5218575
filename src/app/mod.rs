//! The application layer: what each `vidapter` subcommand does, built from the library's
//! domain modules (data, backbone, eval, methods, train). Nothing below this layer imports
//! it; `main.rs` only parses arguments and prints what these functions return, each report
//! rendering itself (`Display` or `render`) so that its text is tested without the binary.
//!
//! - [`experiment`]: `train`, `eval`, `predict` and `kfold` on a run config; [`predict`]:
//!   predict's JSON and CSV;
//! - [`extract`]: `extract --config`, a run's feature cache of one split, and `extract
//!   --pixels`, a backbone's hidden states;
//! - [`info`]: `info`, a backbone and a method on it; [`data_check`]: `data check`;
//!   [`synth`]: `synth`;
//! - [`demo`]: `vidapter demo`, the papers' story offline on synthetic videos;
//! - [`bench`]: timings against PyTorch in the same run (backbone, data, training steps,
//!   the feature cache);
//! - [`args`]: command-line values the subcommands share (`--method`, `--set`, `--python`).

pub mod args;
pub mod bench;
pub mod data_check;
pub mod demo;
pub mod experiment;
pub mod extract;
pub mod info;
pub mod predict;
pub mod synth;
