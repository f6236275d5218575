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
//! file); with a template and no count, the number of consecutive files from `start`.

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
    let files = match template {
        Some(t) => templated_files(dir, t, start, count)?,
        None => listed_files(dir)?,
    };
    if files.is_empty() {
        return Err(DecodeError::new(
            dir,
            Kind::NoFrames,
            "the frame count is 0",
        ));
    }

    let indices = select_checked(select, files.len());
    let mut converted = Vec::new();
    for i in distinct_sorted(&indices) {
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
        converted.push((i, read_image(&files[i])?));
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
        ..VideoInfo::default()
    };
    Ok(Decoded {
        frames: gather(&indices, converted),
        info,
    })
}

/// Files of a templated sequence: `start..start + count` (all must exist), or the run of
/// consecutive existing files from `start` when no count is given.
fn templated_files(
    dir: &Path,
    template: &str,
    start: usize,
    count: Option<usize>,
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
            Ok(files)
        }
    }
}

/// Every jpg/png file of `dir`, in natural order.
fn listed_files(dir: &Path) -> Result<Vec<PathBuf>, DecodeError> {
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
