//! The application layer: what each `vidapter` subcommand does, built from the library's
//! domain modules (data, backbone, eval, methods, train). Nothing below this layer imports
//! it; `main.rs` only parses arguments and prints what these functions return, each report
//! rendering itself (`Display` or `render`) so that its text is tested without the binary.
//!
//! - [`experiment`]: `train`, `eval`, `predict` and `kfold` on a run config; [`predict`]:
//!   predict's JSON and CSV;
//! - [`extract`]: `extract --config`, a run's feature cache of one split, and `extract
//!   --pixels`, a backbone's hidden states;
//! - [`faces`]: `faces` (raw videos -> aligned face clips), `predict --faces` (each
//!   person's emotion over time, `--annotate`), and `[data.faces]` (faces cropped once and
//!   cached for training and evaluation);
//! - [`live`]: `predict --live`, a camera, network stream or pipe classified as it comes,
//!   window by window;
//! - [`info`]: `info`, a backbone and a method on it; [`data_check`]: `data check`;
//!   [`synth`]: `synth`;
//! - [`demo`]: `vidapter demo`, the papers' story offline on synthetic videos;
//! - [`bench`](mod@bench): timings against PyTorch in the same run (backbone, data, training steps,
//!   the feature cache);
//! - [`args`]: command-line values the subcommands share (`--method`, `--set`, `--python`).

pub mod args;
pub mod bench;
pub mod data_check;
pub mod demo;
pub mod experiment;
pub mod extract;
pub mod faces;
pub mod info;
pub mod live;
pub mod predict;
pub mod synth;

use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::prelude::*;

/// Sends the library's `tracing` events to stderr: lines for the person at the terminal
/// ([`crate::util::PROGRESS`]) plainly, progress (`info`) unless `quiet` and notes (`warn`)
/// always; everything else as `RUST_LOG` says (default: warnings and errors), with level and
/// target.
pub fn init_logging(quiet: bool) {
    let is_progress = |m: &tracing::Metadata<'_>| m.target() == crate::util::PROGRESS;
    let progress = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_filter(filter_fn(is_progress).and(if quiet {
            LevelFilter::WARN
        } else {
            LevelFilter::INFO
        }));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn".into())
                .and(filter_fn(move |m| !is_progress(m))),
        );
    tracing_subscriber::registry()
        .with(progress)
        .with(logs)
        .init();
}
