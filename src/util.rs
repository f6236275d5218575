//! Small helpers shared by several modules.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

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
    let x = x.without_autodiff();
    if !like.is_autodiff() {
        return x;
    }
    let x = x.autodiff();
    match like.gradient_checkpointing_strategy() {
        Some(strategy) => x.with_gradient_checkpointing_strategy(strategy),
        None => x,
    }
}

/// A progress bar with `template` over `len` steps, or a hidden one when `show` is false
/// (`--quiet`, tests), so callers draw unconditionally.
pub fn progress_bar(len: u64, template: &str, show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    bar
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
