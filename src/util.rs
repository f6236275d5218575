//! Small helpers shared by several modules.

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// DejaVu Sans, compiled in so that text (plots, annotated video) looks the same on every
/// machine, fontconfig or not. Committed as `assets/fonts/DejaVuSans.ttf` under the Bitstream
/// Vera licence with public-domain DejaVu changes (`assets/fonts/LICENSE-DejaVu.txt`); parse
/// it with `ab_glyph::FontRef::try_from_slice`.
pub static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Width of `text` in `font` scaled to `px` pixels (the sum of advances and kerning), with
/// the scaled font's ascent and descent: `(width, ascent, descent)`, descent negative.
pub fn text_metrics(font: &ab_glyph::FontRef<'_>, text: &str, px: f32) -> (f32, f32, f32) {
    use ab_glyph::{Font, ScaleFont};
    let font = font.as_scaled(ab_glyph::PxScale::from(px));
    let mut width = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            width += font.kern(p, id);
        }
        width += font.h_advance(id);
        prev = Some(id);
    }
    (width, font.ascent(), font.descent())
}

/// Writes `data` to `path` atomically: a temporary file in the same folder, flushed to
/// disk, then renamed over `path`. Readers see the old file or the new one, never a part.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// `x` on the autodiff context of `like`: a plain tensor when `like` is plain; otherwise an
/// autodiff tensor with `like`'s gradient-checkpointing strategy (which burn requires every
/// operand of an operation to share), not tracked. Used wherever a value computed off
/// autodiff (frozen features, an optimiser update) re-enters the training graph.
pub fn same_context<const D: usize, const E: usize>(
    x: burn::tensor::Tensor<D>,
    like: &burn::tensor::Tensor<E>,
) -> burn::tensor::Tensor<D> {
    AutodiffContext::of(like).apply(x)
}

/// A tensor's autodiff context (whether it is an autodiff tensor, and its checkpointing
/// strategy), kept so that a value can re-enter it after the tensor itself was consumed.
#[derive(Debug, Clone, Copy)]
pub struct AutodiffContext {
    autodiff: bool,
    strategy: Option<burn::tensor::GradientCheckpointingStrategy>,
}

impl AutodiffContext {
    /// `t`'s context.
    pub fn of<const D: usize>(t: &burn::tensor::Tensor<D>) -> Self {
        Self {
            autodiff: t.is_autodiff(),
            strategy: t.gradient_checkpointing_strategy(),
        }
    }

    /// `x` in this context, not tracked (see [`same_context`]).
    pub fn apply<const D: usize>(self, x: burn::tensor::Tensor<D>) -> burn::tensor::Tensor<D> {
        let x = x.without_autodiff();
        if !self.autodiff {
            return x;
        }
        let x = x.autodiff();
        match self.strategy {
            Some(strategy) => x.with_gradient_checkpointing_strategy(strategy),
            None => x,
        }
    }
}

/// `names` comma-separated, with `last` before the last one, for messages: `["a", "b", "c"]`
/// with `" or "` is `a, b or c`.
pub fn listed(names: &[&str], last: &str) -> String {
    match names.split_last() {
        Some((tail, [])) => tail.to_string(),
        Some((tail, rest)) => format!("{}{last}{tail}", rest.join(", ")),
        None => String::new(),
    }
}

/// The `tracing` target of lines meant for the person running a command: progress at `info`
/// (an epoch's summary, a demo stage, a fold starting) and notes at `warn` (what a command
/// left out and why). Library code emits them with this target instead of printing; the
/// binary prints them plainly on stderr, progress unless `--quiet` (see `app::init_logging`).
pub const PROGRESS: &str = "vidapter::progress";

/// A progress bar with `template` over `len` steps, or a hidden one when `show` is false
/// (`--quiet`, tests), so callers draw unconditionally. When stderr is a terminal the bar
/// redraws in place; otherwise (a log file, CI) its state is printed as a plain line every
/// [`LOG_INTERVAL`], so long stages are never silent in a log.
pub fn progress_bar(len: u64, template: &str, show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let target = if std::io::stderr().is_terminal() {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::term_like_with_hz(Box::new(LogLines::default()), 1)
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    bar
}

/// How often a progress bar prints its state when stderr is not a terminal.
pub const LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// A progress bar's draw target for logs: each redraw is one line on stderr, at most one per
/// [`LOG_INTERVAL`], the first one interval after the bar was made (so a stage shorter than
/// that, which its caller reports when done, adds no line), with cursor movements ignored.
#[derive(Debug)]
struct LogLines {
    last: std::sync::Mutex<std::time::Instant>,
}

impl Default for LogLines {
    fn default() -> Self {
        LogLines {
            last: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }
}

impl LogLines {
    fn emit(&self, line: &str) -> std::io::Result<()> {
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= LOG_INTERVAL {
            *last = std::time::Instant::now();
            writeln!(std::io::stderr(), "{line}")?;
        }
        Ok(())
    }
}

impl indicatif::TermLike for LogLines {
    fn width(&self) -> u16 {
        120
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.emit(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.emit(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `/proc/self/status` memory field of this process (`VmRSS`, `VmHWM`, ...) in bytes;
/// `None` off Linux.
pub fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A fresh folder under the system's temporary directory, removed with everything in it when
/// dropped. Tests and scratch work use it; it is ours rather than the `tempfile` crate's
/// because that crate, as a dev-dependency, turned on features of crates burn shares (fastrand's
/// `std`), so `cargo test --release` and `cargo build --release` compiled burn twice.
#[derive(Debug)]
pub struct TempDir {
    path: std::path::PathBuf,
}

impl TempDir {
    /// Creates `vidapter-<pid>-<n>-<nanos>` under [`std::env::temp_dir`].
    pub fn new() -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("vidapter-{}-{n}-{nanos}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A new [`TempDir`].
pub fn tempdir() -> std::io::Result<TempDir> {
    TempDir::new()
}

/// The folder that relative paths in the TOML file `file` resolve against: the file's own
/// folder, made absolute (against the working directory when `file` is relative), so that
/// every path read from a config, and every path vidapter then records (run folders,
/// checkpoints, cache keys, reports), means the same from any working directory.
pub fn config_dir(file: &Path) -> std::path::PathBuf {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    // `absolute` keeps `.` components as written ("/cwd/."); drop them for readable paths.
    dir.components().collect()
}

/// The safetensors header entry in which vidapter's own files (checkpoints, feature-cache
/// shards) store each tensor's SHA-256: a JSON object, tensor name -> hex digest. The
/// safetensors structure alone does not notice flipped bytes inside a tensor.
pub const TENSOR_SUMS: &str = "vidapter_sha256";

/// Tensor name -> hex SHA-256 of its bytes, as stored under [`TENSOR_SUMS`].
pub type TensorSums = std::collections::BTreeMap<String, String>;

/// Lower-case hex of `bytes` (a digest).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// The first 12 hex digits of a digest, for messages.
pub fn short_digest(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The [`TENSOR_SUMS`] header entry for `tensors` (name, bytes).
pub fn tensor_sums_entry<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> (String, String) {
    let sums: TensorSums = tensors
        .into_iter()
        .map(|(name, bytes)| (name.to_string(), sha256_hex(bytes)))
        .collect();
    (
        TENSOR_SUMS.to_string(),
        serde_json::to_string(&sums).expect("checksums serialise"),
    )
}

/// The [`TENSOR_SUMS`] of a safetensors header's metadata; `None` for a file written before
/// vidapter stored them, an error naming `path` when the entry is not what it should be.
pub fn read_tensor_sums(
    metadata: &Option<std::collections::HashMap<String, String>>,
    path: &Path,
) -> Result<Option<TensorSums>> {
    match metadata.as_ref().and_then(|m| m.get(TENSOR_SUMS)) {
        Some(json) => serde_json::from_str(json).map(Some).map_err(|e| {
            Error::format(
                path,
                format!("the `{TENSOR_SUMS}` header entry is not a JSON object of digests: {e}"),
            )
        }),
        None => Ok(None),
    }
}

/// Checks tensor `name`'s `bytes` against `sums`, refusing an absent or different digest with
/// an error naming `path` and the tensor; `remedy` says what to do about it.
pub fn check_tensor_sum(
    sums: &TensorSums,
    name: &str,
    bytes: &[u8],
    path: &Path,
    remedy: &str,
) -> Result<()> {
    let Some(want) = sums.get(name) else {
        return Err(Error::format(
            path,
            format!("tensor `{name}` has no checksum in the header: the file was altered"),
        ));
    };
    let got = sha256_hex(bytes);
    if &got != want {
        return Err(Error::format(
            path,
            format!(
                "tensor `{name}` is damaged: its bytes hash to {}, the file recorded {}; {remedy}",
                &got[..16],
                &want[..want.len().min(16)]
            ),
        ));
    }
    Ok(())
}

/// Peak resident set size of this process so far (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM")
}

/// Makes glibc's malloc keep freed memory for reuse instead of returning it to the kernel at
/// once: large blocks come from the heap rather than one `mmap` each, and the heap is not
/// trimmed below 1 GiB of free space. Call it first thing in `main`, before other threads.
///
/// Why: a forward pass allocates every activation afresh (ViT-B's MLP output is 19 MiB per
/// 8-frame clip), and by default each such block is a new `mmap` whose pages the kernel
/// faults in and zeroes on first touch, then unmaps on free: measured, the `[1576, 768] x
/// [768, 3072]` product took 53 ms with a fresh output against 40 ms reusing one, and the
/// whole ViT-B forward 2.76 s against 2.02 s with this setting (`BENCHMARKS.md`, "CPU speed").
/// The cost is memory held after a peak: training peaks rose by 1-8% in the same runs.
///
/// Left alone when `GLIBC_TUNABLES` already sets a malloc tunable (the user's choice), and on
/// other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let user_set = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."));
        if !user_set {
            const KEEP: libc::c_int = 1 << 30;
            // SAFETY: mallopt only changes allocator parameters; called before any other
            // thread exists.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, KEEP);
                libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_sentences() {
        assert_eq!(listed(&["a", "b", "c"], " and "), "a, b and c");
        assert_eq!(listed(&["a", "b"], " or "), "a or b");
        assert_eq!(listed(&["a"], " or "), "a");
        assert_eq!(listed(&[], " or "), "");
    }
}
