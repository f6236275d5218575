//! A backbone's identity: what the user named and a SHA-256 of its weight files, stored in
//! checkpoints and feature-cache keys so that a run never pairs trained parameters or cached
//! features with other weights than they came from.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Which frozen backbone a checkpoint was trained on (or a feature cache was extracted from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneId {
    /// What the user gave (`--backbone`).
    pub spec: String,
    /// SHA-256 over the weight files' bytes, in order.
    pub sha256: String,
    /// Blocks and width, for the error message when they differ.
    pub summary: String,
}

impl BackboneId {
    /// Hashes `files` (the backbone's weight files).
    pub fn of(spec: &str, files: &[std::path::PathBuf], summary: String) -> Result<Self> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        for f in files {
            let mut file = std::fs::File::open(f).map_err(|e| Error::io(f, e))?;
            loop {
                let n = file.read(&mut buf).map_err(|e| Error::io(f, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
        let sha256 = crate::util::hex(&hasher.finalize());
        Ok(BackboneId {
            spec: spec.to_string(),
            sha256,
            summary,
        })
    }
}

/// The files whose bytes identify a backbone: the weight file itself, or for a sharded
/// checkpoint every shard its index names (sorted), which is what the hash covers.
pub fn weight_files(weights: &Path) -> Result<Vec<std::path::PathBuf>> {
    let is_index = weights
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".index.json"));
    if !is_index {
        return Ok(vec![weights.to_path_buf()]);
    }
    let text = std::fs::read_to_string(weights).map_err(|e| Error::io(weights, e))?;
    let index: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(weights, format!("not a JSON index: {e}")))?;
    let map = index["weight_map"]
        .as_object()
        .ok_or_else(|| Error::format(weights, "no `weight_map` object"))?;
    let dir = weights.parent().unwrap_or(Path::new("."));
    let mut files: Vec<_> = map
        .values()
        .filter_map(|v| v.as_str())
        .map(|f| dir.join(f))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}
