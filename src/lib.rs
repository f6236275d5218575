//! vidapter: parameter-efficient image-to-video transfer learning in Rust.
//!
//! A frozen image model (CLIP ViT, DINOv2, ViT) is loaded from the files people have
//! ([`backbone`]), and adapted to video by training a few parameters. This crate is the
//! library; the `vidapter` binary parses arguments and calls it.
//!
//! Map, in layers (a module imports only from layers below it; `tests/it/layers.rs` checks):
//! - [`error`], [`util`]: the error type, which always names the file, tensor or field at
//!   fault; atomic writes, checksums, progress, temporary folders; [`kernels`]: hand-written
//!   CPU kernels (burn backend extensions with their backward);
//! - [`data`]: decoding, sampling, transforms, the loader, dataset formats, the checker;
//!   [`backbone`]: the one Vision Transformer, its configs, weight loading, hub resolution,
//!   identity and hidden-state extraction; [`device`]: `--device`;
//! - [`methods`]: FE-Adapter, ST-Adapter, M-adapter, EVL, full fine-tuning, the linear probe;
//!   the video classifier; [`eval`]: metrics (UAR, WAR, top-k), multi-view aggregation,
//!   plots, report tables, tensor comparison; [`faces`]: face detection, tracking,
//!   alignment and drawing for raw video;
//! - [`train`]: run config, loss, optimiser, schedules, checkpoints, the feature cache, the
//!   training loop;
//! - [`app`]: each subcommand (train/eval/predict/kfold, extract, demo, bench).

#![warn(missing_docs)]

pub mod app;
pub mod backbone;
pub mod data;
pub mod device;
pub mod dist;
pub mod error;
pub mod eval;
pub mod faces;
pub mod kernels;
pub mod methods;
pub mod train;
pub mod util;

pub use error::{Error, Result};
