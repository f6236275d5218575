//! Where a backbone's files come from: a local folder or file, or a Hugging Face hub id
//! resolved through the standard HF cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`).
//!
//! Nothing is downloaded when the files are already cached, or when `HF_HUB_OFFLINE=1`;
//! when they are missing and cannot be fetched, the error lists the files and where to put them.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Weight file names tried in a model folder, in order.
const WEIGHT_NAMES: [&str; 3] = [
    "model.safetensors",
    "model.safetensors.index.json",
    "open_clip_model.safetensors",
];

/// The files of one backbone, found on disk.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// What the user named (`--backbone`).
    pub spec: String,
    /// `config.json`, when present (OpenAI-layout files may lack one).
    pub config: Option<PathBuf>,
    /// A `.safetensors` file or a `.safetensors.index.json` index.
    pub weights: PathBuf,
    /// `preprocessor_config.json`, when present (normalisation mean/std).
    pub preprocessor: Option<PathBuf>,
}

fn existing(p: PathBuf) -> Option<PathBuf> {
    p.is_file().then_some(p)
}

/// Resolves `--backbone`: a folder, a `.safetensors` file, or a hub id such as
/// `openai/clip-vit-base-patch16`.
pub fn resolve(spec: &str) -> Result<ModelFiles> {
    let path = Path::new(spec);
    if path.is_dir() {
        return from_dir(spec, path);
    }
    if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new("."));
        return Ok(ModelFiles {
            spec: spec.to_string(),
            config: existing(dir.join("config.json")),
            weights: path.to_path_buf(),
            preprocessor: existing(dir.join("preprocessor_config.json")),
        });
    }
    if looks_like_hub_id(spec) {
        return from_hub(spec);
    }
    Err(Error::ModelNotFound(format!(
        "--backbone `{spec}`: no such file or folder, and not a hub id of the form `org/name`"
    )))
}

fn looks_like_hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        && !spec.starts_with('.')
}

fn from_dir(spec: &str, dir: &Path) -> Result<ModelFiles> {
    let weights = WEIGHT_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .or_else(|| {
            // Any single .safetensors file in the folder.
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect();
            (found.len() == 1).then(|| found.remove(0))
        })
        .ok_or_else(|| {
            Error::ModelNotFound(format!(
                "{}: no weights found; expected one of {} (or exactly one *.safetensors file)",
                dir.display(),
                WEIGHT_NAMES.join(", ")
            ))
        })?;
    Ok(ModelFiles {
        spec: spec.to_string(),
        config: existing(dir.join("config.json")),
        weights,
        preprocessor: existing(dir.join("preprocessor_config.json")),
    })
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn from_hub(id: &str) -> Result<ModelFiles> {
    use hf_hub::{Cache, Repo};
    let cache = Cache::from_env();
    let repo = cache.repo(Repo::model(id.to_string()));
    // 1. Everything already cached: no network at all.
    if let Some(files) = cached(id, &|f| repo.get(f)) {
        return Ok(files);
    }
    let missing_msg = |why: String| {
        let folder = cache.path().join(Repo::model(id.to_string()).folder_name());
        Error::ModelNotFound(format!(
            "model `{id}` is not in the Hugging Face cache ({}) and could not be downloaded: {why}. \
             Download config.json and model.safetensors (or model.safetensors.index.json with its \
             shards; preprocessor_config.json is optional) from https://huggingface.co/{id} into a \
             folder and pass that folder as --backbone, or place them in the cache as \
             {}/snapshots/<revision>/ with refs/main holding <revision>",
            cache.path().display(),
            folder.display()
        ))
    };
    if offline() {
        return Err(missing_msg("HF_HUB_OFFLINE is set".into()));
    }
    // 2. Download what is missing.
    let api = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone())
        .with_progress(true)
        .build()
        .map_err(|e| missing_msg(e.to_string()))?;
    let remote = api.model(id.to_string());
    let config = remote.get("config.json").ok();
    let mut last_err = String::from("no weight file found");
    for name in WEIGHT_NAMES {
        match remote.get(name) {
            Ok(path) => {
                if name.ends_with(".json") {
                    for shard in shard_names(&path)? {
                        remote
                            .get(&shard)
                            .map_err(|e| missing_msg(format!("{shard}: {e}")))?;
                    }
                }
                return Ok(ModelFiles {
                    spec: id.to_string(),
                    config,
                    weights: path,
                    preprocessor: remote.get("preprocessor_config.json").ok(),
                });
            }
            Err(e) => last_err = format!("{name}: {e}"),
        }
    }
    Err(missing_msg(last_err))
}

/// The model's files if the cache holds all of them.
fn cached(id: &str, get: &dyn Fn(&str) -> Option<PathBuf>) -> Option<ModelFiles> {
    for name in WEIGHT_NAMES {
        let Some(weights) = get(name) else { continue };
        if name.ends_with(".json") {
            let shards = shard_names(&weights).ok()?;
            if shards.iter().any(|s| get(s).is_none()) {
                return None;
            }
        }
        let config = get("config.json");
        if config.is_none() && name != "open_clip_model.safetensors" {
            return None;
        }
        return Some(ModelFiles {
            spec: id.to_string(),
            config,
            weights,
            preprocessor: get("preprocessor_config.json"),
        });
    }
    None
}

fn shard_names(index: &Path) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let parsed: Index = serde_json::from_str(&text)
        .map_err(|e| Error::format(index, format!("not a safetensors index: {e}")))?;
    let mut names: Vec<String> = parsed.weight_map.into_values().collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_recognised() {
        assert!(looks_like_hub_id("openai/clip-vit-base-patch16"));
        assert!(looks_like_hub_id("facebook/dinov2-small"));
        assert!(!looks_like_hub_id("./models/vit"));
        assert!(!looks_like_hub_id("/abs/path"));
        assert!(!looks_like_hub_id("a/b/c"));
        assert!(!looks_like_hub_id("vit-base"));
    }
}
