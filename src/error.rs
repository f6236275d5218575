//! The library's error type: every variant says *where* (file, tensor key, config field)
//! and *what was expected*, so that the binary can print one paragraph a user can act on.

use std::path::{Path, PathBuf};

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in vidapter that is the input's fault rather than ours.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    ///
    /// The OS message is part of this error's own text and deliberately not exposed as its
    /// `source()`, so that a chained report (`anyhow`'s `{:#}`) prints it once.
    #[error("{}: {err}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        err: std::io::Error,
    },

    /// A file exists but its content is not what its format requires.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A configuration field holds a value we cannot use.
    #[error("{}: field `{field}`: {reason}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// The offending field (dotted for nested fields).
        field: String,
        /// What was found and what is allowed.
        reason: String,
    },

    /// A command-line override (`--set KEY=VALUE`, `--epochs N`, ...) holds a value we cannot
    /// use; the file it was applied to is named too.
    #[error("command line `{key}={value}` (over {}): field `{field}`: {reason}", path.display())]
    Override {
        /// The overridden key, dotted.
        key: String,
        /// The value given.
        value: String,
        /// The configuration file it was applied to.
        path: PathBuf,
        /// The offending field (the key, or a field inside it).
        field: String,
        /// What was found and what is allowed.
        reason: String,
    },

    /// A tensor required by the model is absent from the weight files.
    #[error(
        "{}: tensor `{key}` is missing (expected shape {expected:?}){hint}",
        path.display()
    )]
    MissingTensor {
        /// The weight file (or index) searched.
        path: PathBuf,
        /// The key that was looked up.
        key: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// A "did you mean" suggestion, possibly empty.
        hint: String,
    },

    /// A tensor exists but has the wrong shape for the configuration.
    #[error(
        "{}: tensor `{key}` has shape {got:?}, but the configuration needs {expected:?}",
        path.display()
    )]
    TensorShape {
        /// The weight file holding the tensor.
        path: PathBuf,
        /// The tensor key.
        key: String,
        /// Shape found in the file.
        got: Vec<usize>,
        /// Shape the configuration implies.
        expected: Vec<usize>,
    },

    /// A tensor is stored in a dtype we do not read.
    #[error(
        "{}: tensor `{key}` is stored as {got}; vidapter reads F32, F16, BF16 and F64 weights",
        path.display()
    )]
    TensorDtype {
        /// The weight file holding the tensor.
        path: PathBuf,
        /// The tensor key.
        key: String,
        /// The dtype found.
        got: String,
    },

    /// The weight files hold tensors the model has no place for.
    #[error(
        "{}: {} tensor(s) belong to no part of the {arch} model: {}{}",
        path.display(),
        keys.len(),
        keys.iter().take(8).map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
        if keys.len() > 8 { ", ..." } else { "" }
    )]
    UnexpectedTensors {
        /// The weight file (or index).
        path: PathBuf,
        /// The architecture being loaded.
        arch: String,
        /// The keys nobody used.
        keys: Vec<String>,
    },

    /// A model could not be found locally and could not be downloaded.
    #[error("{0}")]
    ModelNotFound(String),

    /// An input tensor or argument has the wrong form.
    #[error("{0}")]
    Input(String),

    /// The requested compute device does not exist in this build or on this machine.
    #[error("{0}")]
    Device(String),

    /// A clip could not be read, or was damaged, in strict mode (`train.strict`), where that
    /// stops the run instead of skipping the clip.
    #[error("unreadable clip (strict): {0}")]
    UnreadableClip(String),

    /// The training loss stopped being finite: the run stops, its last checkpoint untouched.
    #[error(
        "the training loss became {loss} at epoch {epoch}, optimiser step {step}; stopping. The last good checkpoint is {} (lower the learning rate or enable clip_grad_norm)",
        last_good.display()
    )]
    Diverged {
        /// The loss value (NaN or infinite).
        loss: f64,
        /// The epoch, from 1.
        epoch: usize,
        /// Optimiser steps taken before it.
        step: usize,
        /// The checkpoint that still holds the last good state.
        last_good: PathBuf,
    },

    /// `--resume` found a checkpoint that another run wrote (other backbone weights, method
    /// config or class map).
    #[error("{}: {reason}; resume with the same {what} or start a new run folder", checkpoint.display())]
    ResumeMismatch {
        /// The checkpoint.
        checkpoint: PathBuf,
        /// What differs.
        reason: String,
        /// What must be the same (`backbone`, `config`).
        what: &'static str,
    },

    /// Data-parallel training across processes failed: a launch variable is missing or
    /// malformed, the rendezvous timed out, or a peer stopped (its connection closed).
    #[error("distributed training: {0}")]
    Distributed(String),

    /// A feature cache cannot serve this run: made with other settings, or its extraction
    /// did not finish. Extracting again (`vidapter extract`) mends it.
    #[error("{}: {reason}", index.display())]
    StaleCache {
        /// The cache's `index.json`.
        index: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            err: source,
        }
    }

    /// An [`Error::Format`] for `path`.
    pub fn format(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Config`] for `field` of `path`.
    pub fn config(
        path: impl AsRef<Path>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Config {
            path: path.as_ref().to_path_buf(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}
