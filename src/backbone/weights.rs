//! Reading safetensors weights: one file or a sharded set (`model.safetensors.index.json`),
//! stored as F32, F16, BF16 or F64, always handed out as `f32`.
//!
//! The store remembers which keys were taken, so that a loader can report tensors that
//! belong to no part of the model instead of silently ignoring them.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// Where one tensor lives.
struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range inside the file's data section.
    start: usize,
    end: usize,
}

/// How a shard's bytes are reached.
enum Source {
    /// Memory-mapped: model weights, read once.
    Map(Mmap),
    /// Positioned reads into owned buffers: the file's pages stay in the OS page cache and
    /// never count as this process's resident memory. For stores read piece by piece over and
    /// over (the feature cache), whose mapped pages would otherwise show as hundreds of MiB of
    /// the training run's peak memory.
    Read(File),
}

/// One opened weight file.
struct Shard {
    path: PathBuf,
    source: Source,
    /// Offset of the data section (8-byte header length + JSON header).
    data_offset: usize,
}

/// A read-only view over all tensors of a checkpoint, single-file or sharded.
pub struct WeightStore {
    /// What error messages name: the file, or the index for sharded checkpoints.
    origin: PathBuf,
    shards: Vec<Shard>,
    entries: HashMap<String, Entry>,
    taken: BTreeSet<String>,
}

impl WeightStore {
    /// Opens `path`: a `.safetensors` file or a `*.safetensors.index.json` index whose
    /// `weight_map` names the shards (relative to the index's folder).
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".json") {
            Self::open_index(path)
        } else {
            let mut store = Self::empty(path);
            store.add_shard(path, None, false)?;
            Ok(store)
        }
    }

    /// Opens one `.safetensors` file for repeated partial reads: tensors are read with
    /// positioned reads instead of through a memory map, so the process's resident set (and
    /// the peak memory `train` reports) holds only what was taken, not the file's pages.
    pub fn open_unmapped(path: &Path) -> Result<Self> {
        let mut store = Self::empty(path);
        store.add_shard(path, None, true)?;
        Ok(store)
    }

    /// A store with no shard yet, whose errors name `origin`.
    fn empty(origin: &Path) -> Self {
        WeightStore {
            origin: origin.to_path_buf(),
            shards: Vec::new(),
            entries: HashMap::new(),
            taken: BTreeSet::new(),
        }
    }

    fn open_index(path: &Path) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: BTreeMap<String, String>,
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let index: Index = serde_json::from_str(&text).map_err(|e| {
            Error::format(
                path,
                format!("not a safetensors index (expected a JSON object with `weight_map`): {e}"),
            )
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut store = Self::empty(path);
        let files: BTreeSet<&String> = index.weight_map.values().collect();
        for file in files {
            let wanted: BTreeSet<&str> = index
                .weight_map
                .iter()
                .filter(|(_, f)| *f == file)
                .map(|(k, _)| k.as_str())
                .collect();
            let shard_path = dir.join(file);
            if !shard_path.exists() {
                return Err(Error::format(
                    path,
                    format!(
                        "the index names shard `{file}`, which does not exist at {}",
                        shard_path.display()
                    ),
                ));
            }
            store.add_shard(&shard_path, Some(&wanted), false)?;
            for key in wanted {
                if !store.entries.contains_key(key) {
                    return Err(Error::format(
                        path,
                        format!(
                            "the index places tensor `{key}` in `{file}`, but that shard does not hold it"
                        ),
                    ));
                }
            }
        }
        Ok(store)
    }

    fn add_shard(
        &mut self,
        path: &Path,
        only: Option<&BTreeSet<&str>>,
        unmapped: bool,
    ) -> Result<()> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and private to this store; a concurrent writer to a
        // weight file is outside what any loader can defend against.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (header_len, meta) = SafeTensors::read_metadata(&map)
            .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
        let data_offset = 8 + header_len;
        let file_idx = self.shards.len();
        for (key, info) in meta.tensors() {
            if only.is_some_and(|o| !o.contains(key.as_str())) {
                continue;
            }
            if self.entries.contains_key(&key) {
                return Err(Error::format(
                    path,
                    format!("tensor `{key}` appears in more than one shard"),
                ));
            }
            self.entries.insert(
                key,
                Entry {
                    file: file_idx,
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: info.data_offsets.0,
                    end: info.data_offsets.1,
                },
            );
        }
        // The header is parsed from the map either way (safetensors checks it against the
        // file's length); an unmapped store then drops the map, whose only touched pages are
        // the header's.
        let source = if unmapped {
            drop(map);
            Source::Read(file)
        } else {
            Source::Map(map)
        };
        self.shards.push(Shard {
            path: path.to_path_buf(),
            source,
            data_offset,
        });
        Ok(())
    }

    /// The file (or index) named in error messages.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Whether the checkpoint holds `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The stored shape of `key`, if present.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.entries.get(key).map(|e| e.shape.as_slice())
    }

    /// All keys, sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// The dtype names present, for `info`.
    pub fn dtypes(&self) -> BTreeSet<String> {
        self.entries
            .values()
            .map(|e| format!("{:?}", e.dtype))
            .collect()
    }

    /// Reads `key` as `f32`, checking that it has `expected` shape (compared by element
    /// layout: a `[1, 1, C]` tensor satisfies `[C]` only if `expected` says so).
    pub fn take(&mut self, key: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let Some(entry) = self.entries.get(key) else {
            return Err(Error::MissingTensor {
                path: self.origin.clone(),
                key: key.to_string(),
                expected: expected.to_vec(),
                hint: self.suggest(key),
            });
        };
        let shard = &self.shards[entry.file];
        if entry.shape != expected {
            return Err(Error::TensorShape {
                path: shard.path.clone(),
                key: key.to_string(),
                got: entry.shape.clone(),
                expected: expected.to_vec(),
            });
        }
        let (start, end) = (
            shard.data_offset + entry.start,
            shard.data_offset + entry.end,
        );
        let bytes: Cow<[u8]> = match &shard.source {
            Source::Map(map) => Cow::Borrowed(&map[start..end]),
            Source::Read(file) => {
                let mut buf = vec![0u8; end - start];
                file.read_exact_at(&mut buf, start as u64)
                    .map_err(|e| Error::io(&shard.path, e))?;
                Cow::Owned(buf)
            }
        };
        let values = decode(&bytes, entry.dtype).ok_or_else(|| Error::TensorDtype {
            path: shard.path.clone(),
            key: key.to_string(),
            got: format!("{:?}", entry.dtype),
        })?;
        self.taken.insert(key.to_string());
        Ok(values)
    }

    /// Marks `key` as accounted for without reading it (buffers the model does not need).
    pub fn skip(&mut self, key: &str) {
        if self.entries.contains_key(key) {
            self.taken.insert(key.to_string());
        }
    }

    /// Keys starting with `prefix` that nobody took.
    pub fn untaken_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .entries
            .keys()
            .filter(|k| k.starts_with(prefix) && !self.taken.contains(*k))
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// A " (did you mean ...?)" hint: the stored key sharing the longest suffix with `key`.
    fn suggest(&self, key: &str) -> String {
        let tail = |k: &str| {
            k.chars()
                .rev()
                .zip(key.chars().rev())
                .take_while(|(a, b)| a == b)
                .count()
        };
        self.entries
            .keys()
            .map(|k| (tail(k), k))
            .filter(|(n, _)| *n >= 6)
            .max()
            .map(|(_, k)| format!(" (the file has `{k}`; is this a different layout or prefix?)"))
            .unwrap_or_default()
    }
}

/// Little-endian bytes of `dtype` to `f32`; `None` for dtypes we do not read.
fn decode(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunk of 8")) as f32)
            .collect(),
        _ => return None,
    })
}

/// Writes `f32` tensors to a safetensors file (used by `extract` and fixtures).
///
/// The file is written to a temporary name in the same folder and renamed into place, so
/// a killed process never leaves a half-written file under the final name.
pub fn write_f32(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), b)
                .expect("shape and byte length agree by construction");
            (name.clone(), view)
        })
        .collect();
    let data = safetensors::serialize(views, None)
        .map_err(|e| Error::format(path, format!("cannot serialise tensors: {e}")))?;
    crate::util::write_atomic(path, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unmapped store (the feature cache's) hands out exactly what a mapped one does, and
    /// the same shape errors.
    #[test]
    fn unmapped_reads_match_mapped_reads() {
        let dir = crate::util::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let a: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = vec![1.25, -7.0, 3.5];
        write_f32(
            &path,
            &[
                ("a".into(), vec![2, 3, 4], a.clone()),
                ("b".into(), vec![3], b.clone()),
            ],
        )
        .unwrap();
        let mut mapped = WeightStore::open(&path).unwrap();
        let mut unmapped = WeightStore::open_unmapped(&path).unwrap();
        for (key, shape, want) in [("a", vec![2, 3, 4], &a), ("b", vec![3], &b)] {
            assert_eq!(&mapped.take(key, &shape).unwrap(), want);
            assert_eq!(&unmapped.take(key, &shape).unwrap(), want);
        }
        // Reading twice (as the cache does, epoch after epoch) gives the same values.
        assert_eq!(unmapped.take("b", &[3]).unwrap(), b);
        let err = unmapped.take("a", &[24]).unwrap_err().to_string();
        assert!(
            err.contains("t.safetensors") && err.contains("`a`"),
            "{err}"
        );
    }
}
