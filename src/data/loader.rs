//! The parallel clip loader: decode workers with bounded prefetch, yielding batches
//! `[B, T, 3, S, S]` with labels, in an order fixed by the seed.
//!
//! Reproducibility does not depend on thread scheduling: the epoch's order is a
//! permutation drawn from `(seed, epoch)`, batch `k` is built by worker `k mod W`, and each
//! clip's random choices (frame offsets, crop, flip) come from a generator seeded by
//! `(seed, epoch, entry index)`. The consumer reads batch `k` from worker `k mod W`'s own
//! bounded channel, so batches arrive in order and at most `W * prefetch` are in memory.
//!
//! A clip that cannot be read, or that is damaged (a truncated video, a gap or a broken frame
//! file in a frame folder: a clip is clean only if every frame it could use decodes), is
//! reported as a [`Problem`] and left out of its batch (the batch is smaller), or ends the
//! epoch with an error in strict mode. With [`DecodeOptions::allow_damaged`] (`train.
//! allow_damaged`) a damaged clip is used instead, with a warning naming it.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::decode::{DecodeOptions, decode};
use super::sampling::{Mode, Sampling};
use super::transform::{SpatialConfig, View, clip_to_tensor};
use super::{Entry, Problem};

/// How clips are cut from each entry.
#[derive(Debug, Clone)]
pub struct ClipSpec {
    /// Temporal sampling.
    pub sampling: Sampling,
    /// Spatial transform.
    pub spatial: SpatialConfig,
}

/// Training views (one random view per clip) or the test protocol's fixed views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Views {
    /// One random view per entry.
    Train,
    /// `temporal` clips x `spatial` crops per entry (`spatial` is 1 or 3).
    Test {
        /// Temporal views.
        temporal: usize,
        /// Spatial views: 1 (centre) or 3 (three crops).
        spatial: usize,
    },
}

impl Views {
    /// Views per entry.
    pub fn per_entry(&self) -> usize {
        match *self {
            Views::Train => 1,
            Views::Test { temporal, spatial } => temporal.max(1) * spatial.max(1),
        }
    }
}

/// Loader settings.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Entries per batch.
    pub batch_size: usize,
    /// Decode threads.
    pub workers: usize,
    /// Batches each worker may hold ready.
    pub prefetch: usize,
    /// Seed of everything random.
    pub seed: u64,
    /// Shuffle entries each epoch.
    pub shuffle: bool,
    /// Views per entry.
    pub views: Views,
    /// Stop at the first unreadable clip instead of skipping it.
    pub strict: bool,
    /// Decoder settings (timeout).
    pub decode: DecodeOptions,
}

/// One batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[B * V, T, 3, S, S]` row-major: entry-major, views inner.
    pub clips: Vec<f32>,
    /// The shape of `clips`.
    pub shape: [usize; 5],
    /// Labels per entry (`B` of them; multi-label entries keep all labels).
    pub labels: Vec<Vec<usize>>,
    /// Index of each entry in the dataset's entry list.
    pub entries: Vec<usize>,
    /// Views per entry (`V`).
    pub views: usize,
}

impl Batch {
    /// The clips as a `[B * V, T, 3, S, S]` tensor on `device`.
    pub fn tensor(&self, device: &burn::tensor::Device) -> burn::tensor::Tensor<5> {
        burn::tensor::Tensor::from_data(
            burn::tensor::TensorData::new(self.clips.clone(), self.shape),
            device,
        )
    }
}

/// Everything that went wrong while loading one clip.
type ClipResult = Result<Vec<f32>, Problem>;

/// Loads one entry's views: `V * T * 3 * S * S` floats.
pub fn load_clip(
    entry: &Entry,
    spec: &ClipSpec,
    views: Views,
    rng: &mut StdRng,
    opts: &DecodeOptions,
) -> ClipResult {
    let t = spec.sampling.frames();
    let view_list: Vec<(Mode, View)> = match views {
        Views::Train => vec![(Mode::Train, View::Train)],
        Views::Test { temporal, spatial } => {
            let mut v = Vec::new();
            for tv in 0..temporal.max(1) {
                for sv in 0..spatial.max(1) {
                    let space = if spatial <= 1 {
                        View::Center
                    } else {
                        View::ThreeCrop(sv)
                    };
                    v.push((
                        Mode::Test {
                            view: tv,
                            views: temporal.max(1),
                        },
                        space,
                    ));
                }
            }
            v
        }
    };
    // All views' frame indices are chosen once the true frame count is known; the decoder
    // then converts each needed frame once.
    let mut per_view: Vec<Vec<usize>> = Vec::new();
    let mut select = |n: usize| {
        per_view = view_list
            .iter()
            .map(|(m, _)| spec.sampling.indices(n, *m, &mut *rng))
            .collect();
        per_view.concat()
    };
    let decoded = decode(&entry.source, &mut select, opts).map_err(|e| Problem {
        line: entry.origin.as_ref().map(|o| o.1),
        ..Problem::from(e)
    })?;
    if decoded.info.decode_errors > 0 {
        // Only reachable with `allow_damaged` (the user opted in): used, but never silently.
        let line = entry
            .origin
            .as_ref()
            .map_or(String::new(), |o| format!(" (line {})", o.1));
        tracing::warn!(
            "using damaged clip {}{line} (allow_damaged is on): {}",
            entry.source.path().display(),
            decoded.info.damage()
        );
    }
    let mut out =
        Vec::with_capacity(view_list.len() * t * 3 * spec.spatial.size * spec.spatial.size);
    for (v, (_, space)) in view_list.iter().enumerate() {
        let frames = &decoded.frames[v * t..(v + 1) * t];
        out.extend(clip_to_tensor(frames, &spec.spatial, *space, rng));
    }
    Ok(out)
}

/// An epoch in progress: iterate to get batches in order.
pub struct Epoch {
    receivers: Vec<Receiver<Result<Batch, Problem>>>,
    next: usize,
    total: usize,
    handles: Vec<JoinHandle<()>>,
    problems: Arc<Mutex<Vec<Problem>>>,
}

impl Epoch {
    /// Number of batches in the epoch.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether the epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Clips skipped so far (unreadable), with reasons.
    pub fn problems(&self) -> Vec<Problem> {
        self.problems.lock().expect("problem list poisoned").clone()
    }
}

impl Iterator for Epoch {
    type Item = Result<Batch, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.total {
            return None;
        }
        let w = self.next % self.receivers.len();
        self.next += 1;
        // A closed channel means the worker stopped early, after a strict-mode error.
        self.receivers[w].recv().ok()
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        // Closing the receivers makes blocked workers' sends fail, so they exit.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The order in which epoch `epoch` visits `n` entries: a permutation drawn from
/// `(seed, epoch)` when shuffling, else `0..n`. A feature cache replays it so that training
/// from stored features sees the batches live training would.
pub fn epoch_order(n: usize, cfg: &LoaderConfig, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if cfg.shuffle {
        order.shuffle(&mut StdRng::seed_from_u64(mix(cfg.seed, epoch, u64::MAX)));
    }
    order
}

/// Starts loading epoch `epoch` of `entries`.
pub fn epoch(
    entries: Arc<Vec<Entry>>,
    spec: Arc<ClipSpec>,
    cfg: &LoaderConfig,
    epoch: u64,
) -> Epoch {
    let order = epoch_order(entries.len(), cfg, epoch);
    epoch_with_order(entries, order, spec, cfg, epoch)
}

/// Loads the entries `order` (indices into `entries`, in that order, batched by
/// `cfg.batch_size`) as epoch `epoch` would: each clip's random choices still come from
/// `(seed, epoch, entry index)`, so a subset loads exactly as it would inside the full epoch.
/// `cfg.shuffle` is not applied to `order`.
pub fn epoch_with_order(
    entries: Arc<Vec<Entry>>,
    order: Vec<usize>,
    spec: Arc<ClipSpec>,
    cfg: &LoaderConfig,
    epoch: u64,
) -> Epoch {
    let bs = cfg.batch_size.max(1);
    let batches: Vec<Vec<usize>> = order.chunks(bs).map(<[usize]>::to_vec).collect();
    let total = batches.len();
    let workers = cfg.workers.clamp(1, total.max(1));
    let problems = Arc::new(Mutex::new(Vec::new()));
    let batches = Arc::new(batches);
    let mut receivers = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for w in 0..workers {
        let (tx, rx) = sync_channel(cfg.prefetch.max(1));
        receivers.push(rx);
        let ctx = Worker {
            entries: entries.clone(),
            spec: spec.clone(),
            batches: batches.clone(),
            problems: problems.clone(),
            cfg: cfg.clone(),
            epoch,
        };
        handles.push(std::thread::spawn(move || ctx.run(w, workers, tx)));
    }
    Epoch {
        receivers,
        next: 0,
        total,
        handles,
        problems,
    }
}

struct Worker {
    entries: Arc<Vec<Entry>>,
    spec: Arc<ClipSpec>,
    batches: Arc<Vec<Vec<usize>>>,
    problems: Arc<Mutex<Vec<Problem>>>,
    cfg: LoaderConfig,
    epoch: u64,
}

impl Worker {
    fn run(self, w: usize, workers: usize, tx: SyncSender<Result<Batch, Problem>>) {
        for k in (w..self.batches.len()).step_by(workers) {
            let item = self.batch(&self.batches[k]);
            let stop = item.is_err();
            if tx.send(item).is_err() || stop {
                return;
            }
        }
    }

    fn batch(&self, ids: &[usize]) -> Result<Batch, Problem> {
        let t = self.spec.sampling.frames();
        let s = self.spec.spatial.size;
        let v = self.cfg.views.per_entry();
        let mut clips = Vec::with_capacity(ids.len() * v * t * 3 * s * s);
        let mut labels = Vec::with_capacity(ids.len());
        let mut entries = Vec::with_capacity(ids.len());
        for &i in ids {
            let entry = &self.entries[i];
            let mut rng = StdRng::seed_from_u64(mix(self.cfg.seed, self.epoch, i as u64));
            match load_clip(
                entry,
                &self.spec,
                self.cfg.views,
                &mut rng,
                &self.cfg.decode,
            ) {
                Ok(x) => {
                    clips.extend(x);
                    labels.push(entry.labels.clone());
                    entries.push(i);
                }
                Err(p) if self.cfg.strict => return Err(p),
                Err(p) => {
                    tracing::warn!("skipping {p}");
                    self.problems.lock().expect("problem list poisoned").push(p);
                }
            }
        }
        let n = entries.len() * v;
        Ok(Batch {
            clips,
            shape: [n, t, 3, s, s],
            labels,
            entries,
            views: v,
        })
    }
}

/// A 64-bit mix of the seed, epoch and stream (SplitMix64 finaliser), so nearby inputs
/// give unrelated generator seeds.
fn mix(seed: u64, epoch: u64, stream: u64) -> u64 {
    let mut z = seed
        ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ stream.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
