//! Training: the loss, the optimiser over trainable parameters only, schedules, checkpoints
//! and the loop. Model and method files hold none of this (style.md, "training apart from
//! models").

pub mod checkpoint;
pub mod config;
pub mod loss;
pub mod optim;
pub mod run;

pub use run::{TrainJob, TrainSettings, TrainSummary, train};
