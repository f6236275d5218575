//! Frame folders: numbered jpg/png files, one per frame, read with the `image` crate.
//!
//! Takes a folder and either a file-name template with a start index (mmaction2's raw-frame
//! layout: `img_{:05}.jpg` from 1) or nothing (every jpg/png file of the folder, in natural
//! numeric order: `f2.jpg` before `f10.jpg`). Gives the frames at the indices `select`
//! returns (base 0 = the first frame of the sequence, whatever its number in the file name),
//! RGB8 `[H, W, 3]` (grey and RGBA images are converted; alpha is dropped).
//!
//! The sequence length `n`: with a template and an annotation count, that count, and every
//! file of `start..start + count` must exist (a gap is [`Kind::FrameMissing`] naming the
//! file); with a template and no count, the number of consecutive files from `start` (a
//! file of the template numbered beyond that run means a gap); without a template, every
//! image file, where a number missing in the middle of one naming pattern is a gap.
//!
//! A clip is clean only if every frame it could use is whole: every frame file gets a cheap
//! structural check (see [`structure`]), the selected ones are decoded, and with
//! [`DecodeOptions::verify_frames`] (`data check`) every one is decoded. A gap or a broken
//! frame file is an error naming the file, unless [`DecodeOptions::allow_damaged`] lets the
//! clip through with the damage counted in [`VideoInfo::decode_errors`].

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{
    DecodeError, DecodeErrorKind as Kind, DecodeOptions, Decoded, Frame, VideoInfo,
    distinct_sorted, gather, select_checked,
};

/// Extensions (lower case) of the image files a folder listing picks up.
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// See [`super::decode`]; this is its frame-folder half.
pub(super) fn decode(
    dir: &Path,
    template: Option<&str>,
    start: usize,
    count: Option<usize>,
    select: &mut dyn FnMut(usize) -> Vec<usize>,
    opts: &DecodeOptions,
) -> Result<Decoded, DecodeError> {
    let began = Instant::now();
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DecodeError::new(dir, Kind::Missing, "no such frame folder"));
        }
        Err(e) => {
            return Err(DecodeError::new(
                dir,
                Kind::Missing,
                format!("cannot be read: {e}"),
            ));
        }
        Ok(m) if !m.is_dir() => {
            return Err(DecodeError::new(
                dir,
                Kind::NotVideo,
                "is a file, but a folder of frames was expected",
            ));
        }
        Ok(_) => {}
    }
    let mut damage = Damage::default();
    let files = match template {
        Some(t) => templated_files(dir, t, start, count, opts, &mut damage)?,
        None => listed_files(dir, opts, &mut damage)?,
    };
    if files.is_empty() {
        return Err(DecodeError::new(
            dir,
            Kind::NoFrames,
            "the frame count is 0",
        ));
    }

    let indices = select_checked(select, files.len());
    let selected = distinct_sorted(&indices);
    let mut converted = Vec::new();
    let mut next = 0; // position in `selected`
    for (i, file) in files.iter().enumerate() {
        if began.elapsed() >= opts.timeout {
            return Err(DecodeError::new(
                dir,
                Kind::Timeout,
                format!(
                    "gave up after {:.1?} (limit {:?})",
                    began.elapsed(),
                    opts.timeout
                ),
            ));
        }
        // Every frame of the clip must be whole, selected or not: a clip is clean only if
        // every frame it could use decodes.
        let whole = structure(file);
        if let Err(reason) = &whole {
            damage.add(opts, DecodeError::new(file, Kind::Image, reason.clone()))?;
        }
        if selected.get(next) == Some(&i) {
            next += 1;
            converted.push((i, read_image(file)?));
        } else if opts.verify_frames
            && whole.is_ok()
            && let Err(e) = read_image(file)
        {
            damage.add(opts, e)?;
        }
    }
    // The first selected frame's size stands for the folder's: reading frame 0 only for its
    // size would cost a decode.
    let (width, height) = converted
        .first()
        .map_or((0, 0), |(_, f)| (f.width, f.height));
    let info = VideoInfo {
        decoded_frames: files.len(),
        header_frames: count,
        width,
        height,
        // An empty selection (counting only) still names the format, from the first file.
        codec: image_format_name(&files[indices.first().copied().unwrap_or(0)]),
        decode_errors: damage.count,
        messages: damage.messages,
        ..VideoInfo::default()
    };
    Ok(Decoded {
        frames: gather(&indices, converted),
        info,
    })
}

/// Damage found in a folder that [`DecodeOptions::allow_damaged`] lets through.
#[derive(Default)]
struct Damage {
    count: usize,
    messages: Vec<String>,
}

impl Damage {
    /// Refuses the folder with `e`, or (allowed) counts it and keeps the first few messages.
    fn add(&mut self, opts: &DecodeOptions, e: DecodeError) -> Result<(), DecodeError> {
        if !opts.allow_damaged {
            return Err(e);
        }
        self.count += 1;
        if self.messages.len() < 5 {
            self.messages.push(e.to_string());
        }
        Ok(())
    }
}

/// A cheap check that a frame file is a whole JPEG or PNG: the JPEG SOI marker at the start
/// and EOI marker at the end (trailing zero padding allowed), or the PNG signature and the
/// IEND chunk at the end. Two small reads; an image in another format passes (it is checked
/// only by decoding).
fn structure(path: &Path) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    const PNG: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    const IEND: [u8; 8] = [b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?
        .len();
    let mut head = [0u8; 8];
    let n = file
        .read(&mut head)
        .map_err(|e| format!("cannot be read: {e}"))?;
    let head = &head[..n];
    let tail = |file: &mut std::fs::File, k: u64| -> Result<Vec<u8>, String> {
        let k = k.min(len);
        file.seek(SeekFrom::Start(len - k))
            .map_err(|e| format!("cannot be read: {e}"))?;
        let mut buf = Vec::with_capacity(k as usize);
        file.read_to_end(&mut buf)
            .map_err(|e| format!("cannot be read: {e}"))?;
        Ok(buf)
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let t = tail(&mut file, 4096)?;
        let end = t.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        if end < 2 || t[end - 2..end] != [0xFF, 0xD9] {
            return Err(format!(
                "is cut off or corrupt: a JPEG of {len} bytes without its end-of-image marker \
                 (FF D9)"
            ));
        }
        Ok(())
    } else if head == PNG {
        let t = tail(&mut file, 8)?;
        if t != IEND {
            return Err(format!(
                "is cut off or corrupt: a PNG of {len} bytes that does not end with its IEND \
                 chunk"
            ));
        }
        Ok(())
    } else if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        Err(format!(
            "is not a JPEG or PNG image: its {len} bytes start with {}",
            head.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(" ")
        ))
    } else {
        Ok(())
    }
}

/// The frame number in a file name: the last run of digits, with the text around it
/// (`img_00012.jpg` -> (`img_`, 12, 5, `.jpg`): prefix, number, digits, suffix).
fn numbered(name: &str) -> Option<(&str, u64, usize, &str)> {
    let b = name.as_bytes();
    let end = b.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = b[..end]
        .iter()
        .rposition(|c| !c.is_ascii_digit())
        .map_or(0, |p| p + 1);
    let number = name[start..end].parse().ok()?;
    Some((&name[..start], number, end - start, &name[end..]))
}

/// Files of a templated sequence: `start..start + count` (all must exist), or the run of
/// consecutive existing files from `start` when no count is given.
fn templated_files(
    dir: &Path,
    template: &str,
    start: usize,
    count: Option<usize>,
    opts: &DecodeOptions,
    damage: &mut Damage,
) -> Result<Vec<PathBuf>, DecodeError> {
    let name = |i: usize| {
        format_template(template, i).map_err(|r| DecodeError::new(dir, Kind::Unsupported, r))
    };
    match count {
        Some(count) => {
            let mut files = Vec::with_capacity(count);
            for k in 0..count {
                let file = dir.join(name(start + k)?);
                if !file.is_file() {
                    return Err(DecodeError::new(
                        &file,
                        Kind::FrameMissing,
                        format!(
                            "frame {} of {count} (number {}) is missing; the annotation says \
                             the folder holds {count} frames from {start}",
                            k + 1,
                            start + k
                        ),
                    ));
                }
                files.push(file);
            }
            Ok(files)
        }
        None => {
            let mut files = Vec::new();
            loop {
                let file = dir.join(name(start + files.len())?);
                if !file.is_file() {
                    break;
                }
                files.push(file);
            }
            if files.is_empty() {
                let first = name(start)?;
                // A frequent mix-up: frames numbered from 0 read with mmaction2's start 1, or
                // the reverse.
                let hint = [start.wrapping_sub(1), start + 1]
                    .into_iter()
                    .filter(|&s| s != usize::MAX)
                    .find_map(|s| name(s).ok().filter(|n| dir.join(n).is_file()))
                    .map_or(String::new(), |n| {
                        format!(" (but `{n}` exists: is the start index right?)")
                    });
                return Err(DecodeError::new(
                    dir,
                    Kind::NoFrames,
                    format!("no frame `{first}` (template `{template}`, start {start}){hint}"),
                ));
            }
            // A run that stops at a gap would silently drop every frame after it: look for
            // files of the same template numbered beyond the run.
            let end = start + files.len();
            let later = later_frame(dir, template, end);
            if let Some(later) = later {
                damage.add(
                    opts,
                    DecodeError::new(
                        dir.join(name(end)?),
                        Kind::FrameMissing,
                        format!(
                            "frame number {end} is missing, but `{later}` exists: the sequence \
                             from {start} has a gap after {} frame(s)",
                            files.len()
                        ),
                    ),
                )?;
            }
            Ok(files)
        }
    }
}

/// A file of `dir` named by `template` with a number above `end` (the first found), if any.
fn later_frame(dir: &Path, template: &str, end: usize) -> Option<String> {
    const PROBE: usize = 123_456_789;
    let probe = format_template(template, PROBE).ok()?;
    let at = probe.find(&PROBE.to_string())?;
    let (prefix, suffix) = (&probe[..at], &probe[at + PROBE.to_string().len()..]);
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| {
            n.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(suffix))
                .filter(|d| !d.is_empty() && d.trim_start().bytes().all(|c| c.is_ascii_digit()))
                .and_then(|d| d.trim_start().parse::<usize>().ok())
                .is_some_and(|k| k > end)
        })
}

/// Every jpg/png file of `dir`, in natural order. When every name is one pattern with a
/// number (`img_00001.jpg`, `frame7.png`), a number missing in the middle is a gap.
fn listed_files(
    dir: &Path,
    opts: &DecodeOptions,
    damage: &mut Damage,
) -> Result<Vec<PathBuf>, DecodeError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| DecodeError::new(dir, Kind::Missing, format!("cannot be listed: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .filter(|p| p.is_file())
        .collect();
    if files.is_empty() {
        return Err(DecodeError::new(
            dir,
            Kind::NoFrames,
            "the folder holds no .jpg, .jpeg or .png file",
        ));
    }
    files.sort_by(|a, b| {
        let (a, b) = (
            a.file_name().unwrap_or_default().to_string_lossy(),
            b.file_name().unwrap_or_default().to_string_lossy(),
        );
        natural_cmp(&a, &b)
    });
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let parsed: Option<Vec<_>> = names.iter().map(|n| numbered(n)).collect();
    if let Some(parsed) = parsed
        && parsed
            .iter()
            .all(|p| (p.0, p.3) == (parsed[0].0, parsed[0].3))
    {
        for (k, w) in parsed.windows(2).enumerate() {
            let (a, b) = (w[0].1, w[1].1);
            if b > a + 1 {
                let (prefix, _, digits, suffix) = w[0];
                let missing = format!("{prefix}{:0digits$}{suffix}", a + 1);
                damage.add(
                    opts,
                    DecodeError::new(
                        dir.join(&missing),
                        Kind::FrameMissing,
                        format!(
                            "frame number {} is missing between `{}` and `{}` ({} frame(s) \
                             absent)",
                            a + 1,
                            names[k],
                            names[k + 1],
                            b - a - 1
                        ),
                    ),
                )?;
            }
        }
    }
    Ok(files)
}

/// Reads one frame file as RGB8.
fn read_image(path: &Path) -> Result<Frame, DecodeError> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 => {
            return Err(DecodeError::new(
                path,
                Kind::Empty,
                "the frame file has 0 bytes",
            ));
        }
        Err(e) => {
            return Err(DecodeError::new(
                path,
                Kind::FrameMissing,
                format!("cannot be read: {e}"),
            ));
        }
        Ok(_) => {}
    }
    let image = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| DecodeError::new(path, Kind::Image, format!("cannot be read: {e}")))?
        .decode()
        .map_err(|e| DecodeError::new(path, Kind::Image, format!("does not decode: {e}")))?
        .into_rgb8();
    let (width, height) = (image.width() as usize, image.height() as usize);
    Ok(Frame {
        width,
        height,
        data: image.into_raw(),
    })
}

/// `jpeg` / `png` from a frame file's extension.
fn image_format_name(path: &Path) -> String {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
    {
        Some(e) if e == "jpg" || e == "jpeg" => "jpeg".into(),
        Some(e) => e,
        None => "image".into(),
    }
}

/// Compares file names with runs of digits compared as numbers (`f2` < `f10`); ties (`f01`
/// vs `f1`) fall back to plain string order so that the order is total.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    while let (Some(&cx), Some(&cy)) = (x.first(), y.first()) {
        if cx.is_ascii_digit() && cy.is_ascii_digit() {
            let dx = x.iter().take_while(|c| c.is_ascii_digit()).count();
            let dy = y.iter().take_while(|c| c.is_ascii_digit()).count();
            let trim = |d: &[u8]| -> usize { d.iter().take_while(|&&c| c == b'0').count() };
            let (nx, ny) = (&x[trim(&x[..dx])..dx], &y[trim(&y[..dy])..dy]);
            let ord = nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny));
            if ord != Ordering::Equal {
                return ord;
            }
            (x, y) = (&x[dx..], &y[dy..]);
        } else {
            if cx != cy {
                return cx.cmp(&cy);
            }
            (x, y) = (&x[1..], &y[1..]);
        }
    }
    x.len().cmp(&y.len()).then_with(|| a.cmp(b))
}

/// Formats a frame-file template with a frame number.
///
/// Takes a template with exactly one placeholder: Python style `{}`, `{:05}`, `{:05d}`, `{:d}`,
/// `{:5}` (space padded), optionally with argument index 0 (`{0:05d}`); `{{` and `}}` are
/// literal braces. The C style `%05d` / `%d` of FFmpeg image sequences is accepted too.
/// Gives the file name, e.g. `format_template("img_{:05}.jpg", 7) == Ok("img_00007.jpg")`;
/// an error message when the template has no, several, or an unsupported placeholder.
pub fn format_template(template: &str, index: usize) -> Result<String, String> {
    if !template.contains('{') && template.contains('%') {
        return format_printf(template, index);
    }
    let mut out = String::with_capacity(template.len() + 8);
    let mut placeholders = 0;
    let mut chars = template.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().is_some_and(|&(_, n)| n == '{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().is_some_and(|&(_, n)| n == '}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let rest = &template[at + 1..];
                let Some(end) = rest.find('}') else {
                    return Err(format!(
                        "template `{template}`: `{{` at byte {at} is never closed"
                    ));
                };
                out.push_str(
                    &format_spec(&rest[..end], index)
                        .map_err(|r| format!("template `{template}`: {r}"))?,
                );
                placeholders += 1;
                for _ in 0..=rest[..end].chars().count() {
                    chars.next();
                }
            }
            '}' => {
                return Err(format!(
                    "template `{template}`: unmatched `}}` at byte {at} (write `}}}}`)"
                ));
            }
            c => out.push(c),
        }
    }
    match placeholders {
        1 => Ok(out),
        0 => Err(format!(
            "template `{template}` has no `{{}}` placeholder for the frame number"
        )),
        n => Err(format!(
            "template `{template}` has {n} placeholders; exactly one is needed"
        )),
    }
}

/// One Python placeholder's inside: `[0][:[0][width][d]]`.
fn format_spec(spec: &str, index: usize) -> Result<String, String> {
    let (arg, fmt) = spec.split_once(':').unwrap_or((spec, ""));
    if !(arg.is_empty() || arg == "0") {
        return Err(format!(
            "placeholder `{{{spec}}}` names argument `{arg}`; only the frame number \
             (`{{}}` or `{{0}}`) exists"
        ));
    }
    let fmt = fmt.strip_suffix('d').unwrap_or(fmt);
    let (zero, width) = match fmt.strip_prefix('0') {
        Some(w) if !w.is_empty() => (true, w),
        _ => (false, fmt),
    };
    let width: usize = if width.is_empty() {
        0
    } else {
        width.parse().map_err(|_| {
            format!(
                "placeholder `{{{spec}}}`: only the forms `{{}}`, `{{:05}}`, `{{:05d}}` and \
                 `{{:5}}` are supported"
            )
        })?
    };
    Ok(if zero {
        format!("{index:0width$}")
    } else {
        format!("{index:>width$}")
    })
}

/// A C-style template with one `%d` / `%0Nd` (`%%` is a literal `%`).
fn format_printf(template: &str, index: usize) -> Result<String, String> {
    let mut out = String::new();
    let mut placeholders = 0;
    let mut rest = template;
    while let Some(p) = rest.find('%') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        if let Some(r) = after.strip_prefix('%') {
            out.push('%');
            rest = r;
            continue;
        }
        let Some(d) = after.find('d') else {
            return Err(format!(
                "template `{template}`: `%` must be followed by `d`, `0Nd` or `%`"
            ));
        };
        out.push_str(
            &format_spec(&format!(":{}", &after[..d]), index)
                .map_err(|r| format!("template `{template}`: {r}"))?,
        );
        placeholders += 1;
        rest = &after[d + 1..];
    }
    out.push_str(rest);
    match placeholders {
        1 => Ok(out),
        n => Err(format!(
            "template `{template}` has {n} placeholders; exactly one is needed"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_templates_format_like_python() {
        assert_eq!(
            format_template("img_{:05}.jpg", 7).unwrap(),
            "img_00007.jpg"
        );
        assert_eq!(
            format_template("img_{:05d}.jpg", 123456).unwrap(),
            "img_123456.jpg"
        );
        assert_eq!(format_template("{}.png", 42).unwrap(), "42.png");
        assert_eq!(format_template("{0:03d}.png", 4).unwrap(), "004.png");
        assert_eq!(format_template("f{:3}.png", 4).unwrap(), "f  4.png");
        assert_eq!(format_template("{{x}}_{:d}.jpg", 9).unwrap(), "{x}_9.jpg");
    }

    #[test]
    fn printf_templates_format_like_ffmpeg() {
        assert_eq!(format_template("img_%05d.jpg", 7).unwrap(), "img_00007.jpg");
        assert_eq!(format_template("%d.png", 3).unwrap(), "3.png");
        assert_eq!(format_template("100%%_%02d.png", 3).unwrap(), "100%_03.png");
    }

    #[test]
    fn bad_templates_are_rejected_with_the_template_named() {
        for t in [
            "img.jpg",
            "{}_{}.jpg",
            "{name}.jpg",
            "{:x}.jpg",
            "img_{:05.jpg",
            "a}.jpg",
        ] {
            let e = format_template(t, 1).unwrap_err();
            assert!(e.contains(t), "{e}");
        }
    }

    #[test]
    fn natural_order_compares_numbers_by_value() {
        let mut names = vec![
            "f10.jpg", "f2.jpg", "f1.jpg", "f02.jpg", "e99.jpg", "f1a.jpg",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            vec![
                "e99.jpg", "f1.jpg", "f1a.jpg", "f02.jpg", "f2.jpg", "f10.jpg"
            ]
        );
    }
}
