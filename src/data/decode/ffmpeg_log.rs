//! FFmpeg initialisation and its log: FFmpeg never writes to stderr; its warnings and errors
//! go to `tracing` (target `vidapter::ffmpeg`, level debug) and, while a decode (or an encode
//! of `data::synth`) runs on the current thread, into its [`Capture`] so they can be quoted
//! in its report.
//!
//! Why a callback rather than `av_log_set_level(QUIET)`: FFmpeg's own words ("moov atom not
//! found", "partial file") are the most useful part of a report on a damaged file.

use std::cell::RefCell;
use std::ffi::CStr;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;
use std::ffi::{c_char, c_int, c_void};

/// Messages kept per decode; the first ones say what went wrong, later ones repeat it.
const MAX_MESSAGES: usize = 6;

thread_local! {
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Initialises FFmpeg once per process and routes its log away from stderr.
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // In FFmpeg >= 5 this only registers error strings; it cannot fail in practice, and
        // if it did, opening a file would report the real problem.
        let _ = ffmpeg::init();
        install(ffi::av_log_format_line2, ffi::av_log_set_callback);
        unsafe { ffi::av_log_set_level(ffi::AV_LOG_WARNING) };
    });
}

/// Collects FFmpeg's warnings and errors logged on this thread until dropped.
pub(crate) struct Capture(());

impl Capture {
    /// Starts collecting (replacing any capture already running on this thread).
    pub(crate) fn start() -> Capture {
        CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
        Capture(())
    }

    /// The messages collected so far.
    pub(crate) fn messages(&self) -> Vec<String> {
        CAPTURED.with(|c| c.borrow().clone().unwrap_or_default())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = CAPTURED.try_with(|c| c.borrow_mut().take());
    }
}

/// `av_log_format_line2`, stored as an address for the callback (see [`install`]).
static FORMAT_LINE: AtomicUsize = AtomicUsize::new(0);

/// The type of `av_log_format_line2` for a given `va_list` representation `V`.
type FormatLine<V> = unsafe extern "C" fn(
    *mut c_void,
    c_int,
    *const c_char,
    V,
    *mut c_char,
    c_int,
    *mut c_int,
) -> c_int;

/// The type of `av_log_set_callback` for a given `va_list` representation `V`.
type SetCallback<V> =
    unsafe extern "C" fn(Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_char, V)>);

/// Installs [`callback`]. The `va_list` argument is passed by a different type on each
/// platform (a pointer on x86-64, a struct on AArch64); taking it as the type parameter `V`,
/// inferred from the bindings' own `av_log_format_line2` and `av_log_set_callback`, makes
/// the callback's signature match on every platform without naming it.
fn install<V: 'static>(format_line: FormatLine<V>, set_callback: SetCallback<V>) {
    FORMAT_LINE.store(format_line as usize, Ordering::SeqCst);
    // SAFETY: `callback::<V>` has the signature FFmpeg calls, and is thread-safe.
    unsafe { set_callback(Some(callback::<V>)) };
}

/// FFmpeg's log callback: formats warnings and errors, sends them to `tracing` and to the
/// current thread's capture. Must not panic (it is called from C).
unsafe extern "C" fn callback<V>(avcl: *mut c_void, level: c_int, fmt: *const c_char, vl: V) {
    if level > ffi::AV_LOG_WARNING || fmt.is_null() {
        return;
    }
    let addr = FORMAT_LINE.load(Ordering::SeqCst);
    if addr == 0 {
        return;
    }
    // SAFETY: `addr` was stored from a `FormatLine<V>` in `install`, the only writer.
    let format_line: FormatLine<V> = unsafe { std::mem::transmute::<usize, FormatLine<V>>(addr) };
    let mut line = [0 as c_char; 1024];
    let mut print_prefix: c_int = 0; // no "[name @ 0x...]": we add the name ourselves
    // SAFETY: FFmpeg hands us a valid format string and va_list; the buffer size is passed.
    unsafe {
        format_line(
            avcl,
            level,
            fmt,
            vl,
            line.as_mut_ptr(),
            line.len() as c_int,
            &mut print_prefix,
        )
    };
    let text = unsafe { CStr::from_ptr(line.as_ptr()) }.to_string_lossy();
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    let message = match unsafe { item_name(avcl) } {
        Some(name) => format!("{name}: {text}"),
        None => text.to_string(),
    };
    tracing::debug!(target: "vidapter::ffmpeg", "{message}");
    let _ = CAPTURED.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut()
            && let Some(list) = c.as_mut()
            && list.len() < MAX_MESSAGES
            && list.last() != Some(&message)
        {
            list.push(message);
        }
    });
}

/// The name FFmpeg gives the object that logged (`mov,mp4,m4a,3gp,3g2,mj2`, `h264`, ...).
///
/// # Safety
/// `avcl` is null or points to a struct whose first field is an `AVClass` pointer (FFmpeg's
/// logging convention).
unsafe fn item_name(avcl: *mut c_void) -> Option<String> {
    if avcl.is_null() {
        return None;
    }
    unsafe {
        let class = *(avcl as *const *const ffi::AVClass);
        if class.is_null() {
            return None;
        }
        let name = (*class).item_name?(avcl);
        if name.is_null() {
            return None;
        }
        Some(CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}
