//! The side-branch feature cache: the frozen backbone's per-level outputs of every clip,
//! computed once and stored on disk, so that side-branch methods (linear probe, M-adapter,
//! EVL), which never backpropagate through the backbone, train for many epochs without
//! decoding video or running the backbone again.
//!
//! # Layout of a cache folder `DIR`
//!
//! ```text
//! DIR/index.json                 {"format": 1, "key": {...}, "shard_size": S,
//!                                 "shards": [{"chunk": k, "file": "shard-00000.safetensors",
//!                                             "entries": [ids...], "sha256": "..."}, ...],
//!                                 "complete": true, "problems": ["...", ...]}
//! DIR/shard-NNNNN.safetensors    for every clip `i` of the shard and view `v`:
//!                                  clip.{i}.view.{v}.levels.{l}  [T, 1+N, C]  f16 or f32
//!                                  clip.{i}.label                [L]          i64
//! ```
//!
//! Shard `k` holds the entries `k*S .. (k+1)*S` of the split's entry list (those that could be
//! read); `i` is the index into that list, `l` a backbone level as
//! [`VideoClassifier::levels_needed`] numbers them.
//!
//! The [`CacheKey`] holds everything that changes the stored numbers: the backbone's SHA-256,
//! the levels, the temporal sampling, the spatial config, the views (`count` augmented
//! training views drawn as the loader draws epochs `0..count` with `seed`, or the test
//! protocol's `temporal x spatial` views), the input size, the dtype, the split and a hash of
//! the entry list. [`FeatureCache::open`] refuses a cache whose key differs from what the run
//! needs, naming the differing fields; the views and dtype are the cache's own choice, and a
//! cache that stores more levels than the run reads serves it (the run reads its own).
//!
//! Extraction ([`extract`]) writes every shard atomically and rewrites the index after each
//! one, so an interrupted extraction resumes: shards the index lists are kept when their
//! SHA-256 still matches, and re-extracted (with a warning) when it does not. Every shard also
//! carries the SHA-256 of each of its tensors (header entry `vidapter_sha256`): opening a cache
//! checks the key, the shards' structure and the labels' checksums, and each level tensor is
//! checked on its first read in a process (so a run hashes the cache once, during its first
//! epoch, not at every epoch); a damaged tensor is an error naming the shard and the tensor.
//! Shards written before these checksums still open, with a warning that they cannot be
//! verified.
//! The entry hash covers the sources' paths, so a moved dataset needs a new cache.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backbone::BackboneId;
use crate::backbone::WeightStore;
use crate::data::loader::{self, ClipSpec, LoaderConfig, Views};
use crate::data::sampling::Sampling;
use crate::data::transform::SpatialConfig;
use crate::data::{Entry, Problem};
use crate::error::{Error, Result};
use crate::methods::{self, Family, VideoClassifier};

/// File name of the index inside a cache folder.
pub const INDEX: &str = "index.json";
/// Version of the layout; a cache of another version is refused.
pub const FORMAT: u32 = 1;

/// How stored levels are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheDtype {
    /// Half precision: half the disk, about 3 significant digits.
    F16,
    /// Single precision: the backbone's numbers exactly.
    F32,
}

impl std::str::FromStr for CacheDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f16" => Ok(CacheDtype::F16),
            "f32" => Ok(CacheDtype::F32),
            _ => Err(format!("`{s}`: expected f16 or f32")),
        }
    }
}

/// Which views of every clip a cache stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CacheViews {
    /// `count` augmented training views: view `v` is what the training loader yields for the
    /// clip in epoch `v` with `seed` (random frame offsets, crop and flip).
    Train {
        /// Views per clip.
        count: usize,
        /// The loader seed (`[train] seed`).
        seed: u64,
    },
    /// The test protocol's fixed views (no randomness), `temporal x spatial` per clip.
    Test {
        /// Temporal views.
        temporal: usize,
        /// Spatial views (1 or 3).
        spatial: usize,
    },
}

impl CacheViews {
    /// Views per clip.
    pub fn count(&self) -> usize {
        match *self {
            CacheViews::Train { count, .. } => count.max(1),
            CacheViews::Test { temporal, spatial } => temporal.max(1) * spatial.max(1),
        }
    }
}

/// Everything that changes the numbers a cache stores (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheKey {
    /// SHA-256 of the backbone's weight files ([`BackboneId::sha256`]).
    pub backbone_sha256: String,
    /// Backbone levels stored, ascending ([`VideoClassifier::levels_needed`]).
    pub levels: Vec<usize>,
    /// Temporal sampling (frames per clip included).
    pub sampling: Sampling,
    /// Spatial transform (crop, normalisation, flip).
    pub spatial: SpatialConfig,
    /// Views per clip.
    pub views: CacheViews,
    /// Input side in pixels.
    pub input_size: usize,
    /// Stored precision.
    pub dtype: CacheDtype,
    /// Split name (`train`, `val`, `test`).
    pub split: String,
    /// Number of entries in the split.
    pub entries: usize,
    /// SHA-256 over the entries' sources and labels, in order.
    pub entries_sha256: String,
}

impl CacheKey {
    /// The key of a cache of `entries` (split `split`) for `model` on `backbone`.
    ///
    /// # Errors
    /// [`Error::Input`] when the model's method trains inside the backbone (no levels to
    /// store).
    pub fn new(
        backbone: &BackboneId,
        model: &VideoClassifier,
        spec: &ClipSpec,
        views: CacheViews,
        dtype: CacheDtype,
        split: &str,
        entries: &[Entry],
    ) -> Result<Self> {
        let levels = model.levels_needed();
        if levels.is_empty() {
            return Err(Error::Input(format!(
                "a feature cache only serves side-branch methods ({}); \
                 this method trains inside the backbone",
                methods::names_of(Some(Family::SideBranch), ", ")
            )));
        }
        Ok(CacheKey {
            backbone_sha256: backbone.sha256.clone(),
            levels,
            sampling: spec.sampling,
            spatial: spec.spatial.clone(),
            views,
            input_size: spec.spatial.size,
            dtype,
            split: split.to_string(),
            entries: entries.len(),
            entries_sha256: entries_sha256(entries),
        })
    }

    /// `field: cache has A, needed B` for every field that differs from `needed`.
    pub fn differences(&self, needed: &CacheKey) -> Vec<String> {
        let a = serde_json::to_value(self).expect("key serialises");
        let b = serde_json::to_value(needed).expect("key serialises");
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            return Vec::new();
        };
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(v))
            .map(|(k, v)| {
                let short = |x: &serde_json::Value| {
                    let s = x.to_string();
                    if s.len() > 80 {
                        format!("{}...", &s[..77])
                    } else {
                        s
                    }
                };
                format!(
                    "{k} (cache has {}, needed {})",
                    short(v),
                    short(b.get(k).unwrap_or(&serde_json::Value::Null))
                )
            })
            .collect()
    }
}

/// SHA-256 over each entry's source and labels, in order (where an entry was declared does
/// not change its numbers and is left out).
pub fn entries_sha256(entries: &[Entry]) -> String {
    let mut h = Sha256::new();
    for e in entries {
        h.update(format!("{:?}\t{:?}\n", e.source, e.labels).as_bytes());
    }
    crate::util::hex(&h.finalize())
}

/// One shard as the index lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// Which chunk of the entry list (`chunk * shard_size ..`).
    pub chunk: usize,
    /// File name inside the cache folder.
    pub file: String,
    /// Entry indices stored (the chunk's readable entries).
    pub entries: Vec<usize>,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
}

/// The `index.json` of a cache folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheIndex {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// What the stored numbers depend on.
    pub key: CacheKey,
    /// Entries per shard.
    pub shard_size: usize,
    /// Shards written so far, by chunk.
    pub shards: Vec<ShardRecord>,
    /// Whether every chunk has its shard.
    pub complete: bool,
    /// Clips that could not be read (left out of the cache).
    pub problems: Vec<String>,
}

impl CacheIndex {
    /// Reads `DIR/index.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(INDEX);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let index: CacheIndex = serde_json::from_str(&text).map_err(|e| {
            Error::format(&path, format!("not a feature-cache index ({e}); expected `format`, `key`, `shard_size`, `shards`, `complete`"))
        })?;
        if index.format != FORMAT {
            return Err(Error::format(
                &path,
                format!(
                    "cache layout version {} (this build reads {FORMAT}); extract the cache again",
                    index.format
                ),
            ));
        }
        Ok(index)
    }

    fn write(&self, dir: &Path) -> Result<()> {
        crate::util::write_atomic(
            &dir.join(INDEX),
            serde_json::to_string_pretty(self)
                .expect("index serialises")
                .as_bytes(),
        )
    }
}

/// SHA-256 of a file's bytes.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(crate::util::sha256_hex(&bytes))
}

/// Settings of an extraction beyond the key.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Clips per backbone forward pass.
    pub batch_size: usize,
    /// Decode threads.
    pub workers: usize,
    /// Entries per shard.
    pub shard_size: usize,
    /// Stop at the first unreadable or damaged clip instead of leaving it out.
    pub strict: bool,
    /// Store damaged clips (truncated videos, frame folders with a gap or a broken frame
    /// file) with a warning naming each, instead of leaving them out (`train.allow_damaged`).
    pub allow_damaged: bool,
    /// Show a progress bar.
    pub progress: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            batch_size: 8,
            workers: 2,
            shard_size: 64,
            strict: false,
            allow_damaged: false,
            progress: false,
        }
    }
}

/// What an extraction did.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractReport {
    /// The cache folder.
    pub dir: PathBuf,
    /// Shards in the cache.
    pub shards: usize,
    /// Shards kept from an earlier, interrupted extraction.
    pub reused: usize,
    /// Shards computed now.
    pub extracted: usize,
    /// Shards found corrupt (checksum or missing file) and re-extracted, with the reason.
    pub corrupt: Vec<String>,
    /// Clips stored.
    pub clips: usize,
    /// Clips left out as unreadable.
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for ExtractReport {
    /// One line: the folder, clips and shards, and what was extracted, kept, redone and left
    /// out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "feature cache {}: {} clips in {} shards ({} extracted, {} kept from before, {} re-extracted as corrupt, {} clips unreadable)",
            self.dir.display(),
            self.clips,
            self.shards,
            self.extracted,
            self.reused,
            self.corrupt.len(),
            self.problems.len()
        )
    }
}

fn shard_name(chunk: usize) -> String {
    format!("shard-{chunk:05}.safetensors")
}

/// Extracts (or resumes extracting) the cache of `entries` under `key` into `dir`, running
/// `model`'s frozen backbone ([`VideoClassifier::frozen_levels`]) on the loader's clips.
/// `key` must come from [`CacheKey::new`] for the same model, spec and entries.
///
/// # Errors
/// [`Error::Input`] when `dir` holds a cache with another key (naming the fields), or a clip
/// is unreadable in strict mode; I/O errors naming the file.
pub fn extract(
    model: &VideoClassifier,
    key: &CacheKey,
    entries: Arc<Vec<Entry>>,
    spec: &ClipSpec,
    dir: &Path,
    opts: &ExtractOptions,
    device: &Device,
) -> Result<ExtractReport> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if model.levels_needed() != key.levels {
        return Err(Error::Input(format!(
            "the model reads levels {:?} but the cache key names {:?}",
            model.levels_needed(),
            key.levels
        )));
    }
    let shard_size = opts.shard_size.max(1);
    let mut index = if dir.join(INDEX).exists() {
        let old = CacheIndex::read(dir)?;
        let diff = old.key.differences(key);
        if !diff.is_empty() {
            return Err(Error::Input(format!(
                "{} holds a cache made with other settings, differing in: {}; extract into another folder or delete it",
                dir.display(),
                diff.join("; ")
            )));
        }
        old
    } else {
        CacheIndex {
            format: FORMAT,
            key: key.clone(),
            shard_size,
            shards: Vec::new(),
            complete: false,
            problems: Vec::new(),
        }
    };
    // Temporary files of a write that was killed midway (see `util::write_atomic`).
    if let Ok(listing) = std::fs::read_dir(dir) {
        for e in listing.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".shard-") && name.contains(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // A resumed extraction keeps the shard size it started with, so chunks line up.
    let shard_size = index.shard_size.max(1);
    let n = entries.len();
    let chunks = n.div_ceil(shard_size);
    let mut report = ExtractReport {
        dir: dir.to_path_buf(),
        shards: chunks,
        reused: 0,
        extracted: 0,
        corrupt: Vec::new(),
        clips: 0,
        problems: Vec::new(),
    };
    // Check what an earlier run left: keep only shards whose bytes still match.
    let mut kept: BTreeMap<usize, ShardRecord> = BTreeMap::new();
    for rec in std::mem::take(&mut index.shards) {
        let path = dir.join(&rec.file);
        let reason = if !path.exists() {
            Some("the file is missing".to_string())
        } else {
            let sha = file_sha256(&path)?;
            (sha != rec.sha256).then(|| {
                format!(
                    "SHA-256 {} does not match the index's {}",
                    &sha[..12],
                    &rec.sha256[..rec.sha256.len().min(12)]
                )
            })
        };
        match reason {
            Some(r) => {
                let msg = format!("{}: {r}; re-extracting it", path.display());
                tracing::warn!("{msg}");
                report.corrupt.push(msg);
            }
            None => {
                kept.insert(rec.chunk, rec);
            }
        }
    }
    index.complete = false;
    let bar = crate::util::progress_bar(
        n as u64,
        "extract {bar:25} {pos}/{len} clips  {per_sec}  ETA {eta}  {msg}",
        opts.progress,
    );
    let spec = Arc::new(spec.clone());
    for chunk in 0..chunks {
        let ids: Vec<usize> = (chunk * shard_size..((chunk + 1) * shard_size).min(n)).collect();
        if let Some(rec) = kept.remove(&chunk) {
            report.reused += 1;
            report.clips += rec.entries.len();
            index.shards.push(rec);
            bar.inc(ids.len() as u64);
            continue;
        }
        let (bytes, stored, problems) =
            extract_chunk(model, key, &entries, &spec, &ids, opts, device)?;
        let file = shard_name(chunk);
        crate::util::write_atomic(&dir.join(&file), &bytes)?;
        index
            .problems
            .extend(problems.iter().map(ToString::to_string));
        report.problems.extend(problems);
        report.clips += stored.len();
        report.extracted += 1;
        index.shards.push(ShardRecord {
            chunk,
            file,
            entries: stored,
            sha256: crate::util::sha256_hex(&bytes),
        });
        index.shards.sort_by_key(|r| r.chunk);
        // The index after every shard: an interruption loses at most the shard in progress.
        index.write(dir)?;
        bar.inc(ids.len() as u64);
    }
    bar.finish_and_clear();
    index.shards.sort_by_key(|r| r.chunk);
    index.complete = true;
    index.write(dir)?;
    Ok(report)
}

/// One shard's bytes: every view of the entries `ids`, and which of them were stored.
fn extract_chunk(
    model: &VideoClassifier,
    key: &CacheKey,
    entries: &Arc<Vec<Entry>>,
    spec: &Arc<ClipSpec>,
    ids: &[usize],
    opts: &ExtractOptions,
    device: &Device,
) -> Result<(Vec<u8>, Vec<usize>, Vec<Problem>)> {
    // (loader views, loader epoch, which cached view the loader's view j of a clip is).
    let passes: Vec<(Views, u64, usize)> = match key.views {
        CacheViews::Train { count, .. } => (0..count.max(1))
            .map(|v| (Views::Train, v as u64, v))
            .collect(),
        CacheViews::Test { temporal, spatial } => {
            vec![(Views::Test { temporal, spatial }, 0, 0)]
        }
    };
    let seed = match key.views {
        CacheViews::Train { seed, .. } => seed,
        CacheViews::Test { .. } => 0,
    };
    let t = spec.sampling.frames();
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>, safetensors::Dtype)> = BTreeMap::new();
    let mut views_of: HashMap<usize, usize> = HashMap::new();
    let mut problems = Vec::new();
    for (views, epoch, first_view) in passes {
        let cfg = LoaderConfig {
            batch_size: opts.batch_size.max(1),
            workers: opts.workers.max(1),
            prefetch: 2,
            seed,
            shuffle: false,
            views,
            strict: opts.strict,
            decode: crate::data::decode::DecodeOptions {
                allow_damaged: opts.allow_damaged,
                ..Default::default()
            },
        };
        let mut batches =
            loader::epoch_with_order(entries.clone(), ids.to_vec(), spec.clone(), &cfg, epoch);
        for batch in batches.by_ref() {
            let batch = batch.map_err(|p| Error::UnreadableClip(p.to_string()))?;
            if batch.entries.is_empty() {
                continue;
            }
            let levels = model.frozen_levels(batch.tensor(device));
            for (lv, x) in key.levels.iter().zip(levels) {
                let [bt, tokens, c] = x.dims();
                let values = x
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .map_err(|e| Error::Input(format!("reading back backbone levels: {e:?}")))?;
                let per_clip = t * tokens * c;
                for j in 0..bt / t {
                    let id = batch.entries[j / batch.views];
                    let view = first_view + j % batch.views;
                    let slice = &values[j * per_clip..(j + 1) * per_clip];
                    let (dtype, bytes) = encode(slice, key.dtype);
                    tensors.insert(
                        format!("clip.{id}.view.{view}.levels.{lv}"),
                        (vec![t, tokens, c], bytes, dtype),
                    );
                }
            }
            for (e, &id) in batch.entries.iter().enumerate() {
                *views_of.entry(id).or_default() += batch.views;
                let labels: Vec<u8> = batch.labels[e]
                    .iter()
                    .flat_map(|&l| (l as i64).to_le_bytes())
                    .collect();
                tensors.insert(
                    format!("clip.{id}.label"),
                    (vec![batch.labels[e].len()], labels, safetensors::Dtype::I64),
                );
            }
        }
        problems.extend(batches.problems());
    }
    // A clip unreadable in one view (a flaky file) is left out entirely: every stored clip
    // has every view.
    let want = key.views.count();
    let stored: Vec<usize> = ids
        .iter()
        .copied()
        .filter(|id| views_of.get(id) == Some(&want))
        .collect();
    tensors.retain(|name, _| {
        let id: usize = name
            .split('.')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(usize::MAX);
        stored.contains(&id)
    });
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, (shape, bytes, dtype))| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .expect("shape and byte length agree by construction");
            (name.clone(), view)
        })
        .collect();
    let meta = HashMap::from([crate::util::tensor_sums_entry(
        tensors
            .iter()
            .map(|(name, (_, bytes, _))| (name.as_str(), bytes.as_slice())),
    )]);
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::Input(format!("cannot serialise a cache shard: {e}")))?;
    Ok((bytes, stored, problems))
}

fn encode(values: &[f32], dtype: CacheDtype) -> (safetensors::Dtype, Vec<u8>) {
    match dtype {
        CacheDtype::F32 => (
            safetensors::Dtype::F32,
            values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        CacheDtype::F16 => (
            safetensors::Dtype::F16,
            values
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect(),
        ),
    }
}

/// What to do about a damaged shard.
const REEXTRACT: &str = "run `vidapter extract` again (it re-extracts damaged shards)";

/// An opened, complete cache: levels and labels of stored clips by entry index.
pub struct FeatureCache {
    dir: PathBuf,
    index: CacheIndex,
    /// One store per shard, in index order.
    shards: Vec<WeightStore>,
    /// Per shard: each tensor's SHA-256 (`None`: a shard written before checksums).
    sums: Vec<ShardSums>,
    /// Level tensors already verified in this process (each is hashed on its first read).
    verified: std::collections::HashSet<String>,
    /// Entry index -> position in `shards`.
    shard_of: HashMap<usize, usize>,
    /// `[T, 1+N, C]` of every stored level tensor.
    shape: [usize; 3],
    /// The levels this run reads, ascending: the key's, or a subset of them.
    read: Vec<usize>,
    /// Labels by entry index.
    labels: HashMap<usize, Vec<usize>>,
}

impl FeatureCache {
    /// Opens the cache in `dir` for a run that needs `needed`. The views and dtype are the
    /// cache's own (any serves), and so are the levels when they include every level the run
    /// reads (an EVL cache of levels 0..=L serves an M-adapter reading 1..=L and the probe's
    /// L); every other field must match.
    ///
    /// # Errors
    /// [`Error::Input`] naming the differing fields, or when the extraction did not finish;
    /// format errors naming the index or a shard.
    pub fn open(dir: &Path, needed: &CacheKey) -> Result<Self> {
        let index = CacheIndex::read(dir)?;
        let mut needed = needed.clone();
        needed.views = index.key.views;
        needed.dtype = index.key.dtype;
        let read = needed.levels.clone();
        if read.iter().all(|l| index.key.levels.contains(l)) {
            needed.levels.clone_from(&index.key.levels);
        }
        let diff = index.key.differences(&needed);
        if !diff.is_empty() {
            return Err(Error::StaleCache {
                index: dir.join(INDEX),
                reason: format!(
                    "this feature cache was made for other settings than this run needs, differing in: {}; extract it again with this run's config",
                    diff.join("; ")
                ),
            });
        }
        if !index.complete {
            return Err(Error::StaleCache {
                index: dir.join(INDEX),
                reason: format!(
                    "the extraction did not finish ({} shards written); run `vidapter extract` again to resume it",
                    index.shards.len()
                ),
            });
        }
        let mut shards = Vec::with_capacity(index.shards.len());
        let mut sums = Vec::with_capacity(index.shards.len());
        let mut shard_of = HashMap::new();
        let mut labels = HashMap::new();
        let mut unverified = 0;
        for (s, rec) in index.shards.iter().enumerate() {
            let path = dir.join(&rec.file);
            for &id in &rec.entries {
                shard_of.insert(id, s);
            }
            let (shard_labels, shard_sums) = read_labels(&path, &rec.entries)?;
            labels.extend(shard_labels);
            unverified += usize::from(shard_sums.is_none());
            sums.push(shard_sums);
            shards.push(WeightStore::open_unmapped(&path)?);
        }
        if unverified > 0 {
            tracing::warn!(
                "{}: {unverified} shard(s) written before shards carried tensor checksums; \
                 their tensors cannot be verified (extract the cache again to add them)",
                dir.display()
            );
        }
        let t = index.key.sampling.frames();
        let shape = shards
            .iter()
            .zip(&index.shards)
            .find_map(|(st, rec)| {
                let id = rec.entries.first()?;
                st.shape(&format!(
                    "clip.{id}.view.0.levels.{}",
                    index.key.levels.first()?
                ))
                .map(<[usize]>::to_vec)
            })
            .unwrap_or_else(|| vec![t, 0, 0]);
        Ok(FeatureCache {
            dir: dir.to_path_buf(),
            shards,
            sums,
            verified: Default::default(),
            shard_of,
            shape: [shape[0], shape[1], shape[2]],
            read,
            index,
            labels,
        })
    }

    /// The key the cache was made with.
    pub fn key(&self) -> &CacheKey {
        &self.index.key
    }

    /// Views stored per clip.
    pub fn views(&self) -> usize {
        self.index.key.views.count()
    }

    /// Whether entry `id` is stored (clips unreadable at extraction are not).
    pub fn contains(&self, id: usize) -> bool {
        self.shard_of.contains_key(&id)
    }

    /// Clips left out at extraction, as the index reports them.
    pub fn problems(&self) -> &[String] {
        &self.index.problems
    }

    /// Labels of entry `id`, as stored.
    pub fn labels(&self, id: usize) -> Option<&[usize]> {
        self.labels.get(&id).map(Vec::as_slice)
    }

    fn store(&mut self, id: usize) -> Result<&mut WeightStore> {
        let s = *self.shard_of.get(&id).ok_or_else(|| {
            Error::Input(format!(
                "entry {id} is not in the feature cache {}",
                self.dir.display()
            ))
        })?;
        Ok(&mut self.shards[s])
    }

    /// The stored levels of entries `ids` in view `view`, one tensor per level the run reads,
    /// clips in the order of `ids`: what [`VideoClassifier::forward_from_levels`] takes.
    ///
    /// # Shapes
    /// - returns: each `[len(ids)*T, 1+N, C]`
    pub fn levels(
        &mut self,
        ids: &[usize],
        view: usize,
        device: &Device,
    ) -> Result<Vec<Tensor<3>>> {
        let [t, tokens, c] = self.shape;
        let views = self.views();
        if view >= views {
            return Err(Error::Input(format!(
                "view {view} asked of a cache holding {views} view(s) per clip"
            )));
        }
        let levels = self.read.clone();
        let mut out = Vec::with_capacity(levels.len());
        for lv in levels {
            let mut values = Vec::with_capacity(ids.len() * t * tokens * c);
            for &id in ids {
                let name = format!("clip.{id}.view.{view}.levels.{lv}");
                let store = self.store(id)?;
                let got = store.take(&name, &[t, tokens, c])?;
                self.verify(id, &name, &got)?;
                values.extend(got);
            }
            out.push(Tensor::from_data(
                TensorData::new(values, [ids.len() * t, tokens, c]),
                device,
            ));
        }
        Ok(out)
    }

    /// Checks level tensor `name` of entry `id` (its `values` as read) against its shard's
    /// checksum, on its first read in this process. The stored bytes are the values encoded in
    /// the cache's dtype, which decoding and encoding again reproduce exactly.
    fn verify(&mut self, id: usize, name: &str, values: &[f32]) -> Result<()> {
        if self.verified.contains(name) {
            return Ok(());
        }
        let s = self.shard_of[&id];
        if let Some(sums) = &self.sums[s] {
            let path = self.dir.join(&self.index.shards[s].file);
            let (_, bytes) = encode(values, self.index.key.dtype);
            crate::util::check_tensor_sum(sums, name, &bytes, &path, REEXTRACT)?;
        }
        self.verified.insert(name.to_string());
        Ok(())
    }

    /// Frames per clip (`T`).
    pub fn frames(&self) -> usize {
        self.shape[0]
    }
}

/// Per-tensor checksums of a shard, and the labels read from it.
type ShardSums = Option<crate::util::TensorSums>;

/// The `clip.{i}.label` tensors (i64 `[L]`) of `ids` in the shard at `path` (each checked
/// against its checksum), and the shard's per-tensor checksums (`None` for a shard written
/// before them).
fn read_labels(path: &Path, ids: &[usize]) -> Result<(HashMap<usize, Vec<usize>>, ShardSums)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: read-only map of a shard nobody writes while it is open (extraction replaces
    // shards by renaming, which leaves this map's file intact).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&map)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&map)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
    let sums: ShardSums = crate::util::read_tensor_sums(header.metadata(), path)?;
    let mut out = HashMap::new();
    for &id in ids {
        let name = format!("clip.{id}.label");
        let view = st.tensor(&name).map_err(|e| {
            Error::format(
                path,
                format!("tensor `{name}` (the index lists entry {id} here): {e}"),
            )
        })?;
        if view.dtype() != safetensors::Dtype::I64 || view.shape().len() != 1 {
            return Err(Error::format(
                path,
                format!(
                    "`{name}` should be i64 [L], found {:?} {:?}",
                    view.dtype(),
                    view.shape()
                ),
            ));
        }
        if let Some(sums) = &sums {
            crate::util::check_tensor_sum(sums, &name, view.data(), path, REEXTRACT)?;
        }
        let labels = view
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
            .collect();
        out.insert(id, labels);
    }
    Ok((out, sums))
}
