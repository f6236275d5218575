//! vidapter: parameter-efficient image-to-video transfer learning in Rust.
//!
//! A frozen image model (CLIP ViT, DINOv2, ViT) is loaded from the files people have
//! ([`backbone`]), and adapted to video by training a few parameters. This crate is the
//! library; the `vidapter` binary parses arguments and calls it.
//!
//! Map:
//! - [`backbone`]: the one Vision Transformer, its configs, weight loading and hub resolution;
//! - [`extract`]: hidden states of a pixel tensor, named as transformers names them;
//! - [`methods`]: FE-Adapter, ST-Adapter, M-adapter, EVL, full fine-tuning, the linear probe;
//!   the video classifier;
//! - [`train`]: loss, optimiser, schedules, checkpoints, the training loop;
//! - [`demo`]: `vidapter demo`, the papers' story offline on synthetic videos;
//! - [`data`]: decoding, sampling, transforms, the loader, the dataset checker;
//! - [`compare`]: tensor-by-tensor relative error between two safetensors files;
//! - [`bench`]: timing against PyTorch in the same run; [`bench_train`]: a training step of
//!   each method, its time and peak memory;
//! - [`device`]: `--device cpu | vulkan:N | cuda:N`;
//! - [`eval`]: metrics (UAR, WAR, top-k), multi-view aggregation, plots and report tables;
//! - [`error`]: the error type, which always names the file, tensor or field at fault.

#![warn(missing_docs)]

pub mod backbone;
pub mod bench;
pub mod bench_cache;
pub mod bench_train;
pub mod cache;
pub mod compare;
pub mod data;
pub mod demo;
pub mod device;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod extract;
pub mod methods;
pub mod train;
pub mod util;

pub use error::{Error, Result};
