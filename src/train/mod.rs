//! Training: the run config, the loss, the optimiser over trainable parameters only,
//! schedules, checkpoints, the side-branch feature cache, the validation pass and the loop.
//! Model and method files hold none of this (style.md, "training apart from models").

pub mod cache;
pub mod checkpoint;
pub mod config;
pub mod loss;
pub mod optim;
pub mod predict;
pub mod run;
pub mod step;

pub use run::{TrainJob, TrainSummary, train};
