//! RGB conversion of decoded frames, as the `ffmpeg` tool (5.1) does it for
//! `-pix_fmt rgb24`, so that our frames equal the tool's bit for bit (tests/data_decode.rs
//! checks this on every codec):
//! - colour matrix: the frame's tag (BT.709, BT.2020, ...); untagged or unknown -> BT.601
//!   (the `scale` filter's `in_color_matrix=auto`, libavfilter/vf_scale.c);
//! - range: the frame's tag (limited or full); untagged -> libswscale's default for the pixel
//!   format (full for `yuvj*`, limited otherwise);
//! - the same `SWS_BICUBIC` flags as the tool's auto-inserted scaler;
//! - a quarter-turn display matrix turns the frame upright (the tool's autorotate:
//!   `transpose=clock`, `hflip,vflip`, `transpose=cclock`).
//!
//! Takes any pixel format FFmpeg decodes to; gives RGB8 `[H, W, 3]` without padding, at the
//! decoded size (width and height swapped by a 90 or 270 degree turn).

use std::ffi::c_int;

use ffmpeg::ffi;
use ffmpeg::frame;
use ffmpeg_next as ffmpeg;

use super::Frame;

/// Settings a conversion context is built for.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ConvKey {
    format: ffmpeg::format::Pixel,
    width: u32,
    height: u32,
    colorspace: c_int,
    range: c_int,
}

/// YUV (or any pixel format) -> RGB24 with the stream's colour tags; the swscale context is
/// kept while frames keep the same format, size and tags.
#[derive(Default)]
pub(super) struct Converter {
    ctx: Option<(ConvKey, ffmpeg::software::scaling::Context)>,
}

impl Converter {
    /// Converts one frame to RGB8 `[H, W, 3]` (rotated clockwise by `rotation` degrees).
    pub(super) fn convert(&mut self, f: &frame::Video, rotation: u16) -> Result<Frame, String> {
        // SAFETY: reading plain fields of a decoded frame.
        let (colorspace, range) = unsafe {
            (
                (*f.as_ptr()).colorspace as c_int,
                (*f.as_ptr()).color_range as c_int,
            )
        };
        let key = ConvKey {
            format: f.format(),
            width: f.width(),
            height: f.height(),
            colorspace,
            range,
        };
        if self.ctx.as_ref().is_none_or(|(k, _)| *k != key) {
            self.ctx = None;
            let ctx = new_context(key)?;
            self.ctx = Some((key, ctx));
        }
        let (_, ctx) = self.ctx.as_mut().expect("context built above");
        let mut rgb = frame::Video::empty();
        ctx.run(f, &mut rgb)
            .map_err(|e| format!("RGB conversion failed: {e}"))?;
        let (w, h) = (key.width as usize, key.height as usize);
        let stride = rgb.stride(0);
        let src = rgb.data(0);
        let mut data = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            data.extend_from_slice(&src[row * stride..row * stride + w * 3]);
        }
        Ok(rotate(
            Frame {
                width: w,
                height: h,
                data,
            },
            rotation,
        ))
    }
}

/// A swscale context for `key` -> RGB24 at the same size, with the colour details the
/// `ffmpeg` tool's scale filter sets (see the module docs).
fn new_context(key: ConvKey) -> Result<ffmpeg::software::scaling::Context, String> {
    use ffmpeg::software::scaling::{Context, Flags};
    let mut ctx = Context::get(
        key.format,
        key.width,
        key.height,
        ffmpeg::format::Pixel::RGB24,
        key.width,
        key.height,
        Flags::BICUBIC,
    )
    .map_err(|e| format!("cannot convert pixel format {:?} to RGB: {e}", key.format))?;
    // vf_scale.c (5.1): inv_table = sws_getCoefficients(frame colorspace, unknown -> BT.470BG),
    // table = inv_table, in_full from the frame's range when tagged, the rest unchanged.
    let matrix = if (1..=10).contains(&key.colorspace) && key.colorspace != 8 {
        key.colorspace
    } else {
        ffi::AVColorSpace::AVCOL_SPC_BT470BG as c_int
    };
    // SAFETY: `ctx` is a live, initialised context; the pointers written are only used for
    // the duration of the calls, and the coefficient table is static in libswscale.
    unsafe {
        let sws = ctx.as_mut_ptr();
        let (mut inv, mut table) = (std::ptr::null_mut(), std::ptr::null_mut());
        let (mut src_full, mut dst_full, mut brightness, mut contrast, mut saturation) =
            (0, 0, 0, 0, 0);
        let got = ffi::sws_getColorspaceDetails(
            sws,
            &mut inv,
            &mut src_full,
            &mut table,
            &mut dst_full,
            &mut brightness,
            &mut contrast,
            &mut saturation,
        );
        if got >= 0 {
            let coefficients = ffi::sws_getCoefficients(matrix);
            if key.range == ffi::AVColorRange::AVCOL_RANGE_JPEG as c_int {
                src_full = 1;
            } else if key.range == ffi::AVColorRange::AVCOL_RANGE_MPEG as c_int {
                src_full = 0;
            }
            ffi::sws_setColorspaceDetails(
                sws,
                coefficients,
                src_full,
                coefficients,
                dst_full,
                brightness,
                contrast,
                saturation,
            );
        }
    }
    Ok(ctx)
}

/// Rotates an RGB8 frame clockwise by 0, 90, 180 or 270 degrees (the `transpose=clock`,
/// `hflip,vflip` and `transpose=cclock` filters of the tool's autorotate).
pub(super) fn rotate(f: Frame, degrees: u16) -> Frame {
    let (w, h) = (f.width, f.height);
    let px = |r: usize, c: usize| &f.data[(r * w + c) * 3..(r * w + c) * 3 + 3];
    match degrees {
        90 | 270 => {
            // Output is h wide, w high.
            let mut data = Vec::with_capacity(f.data.len());
            for r in 0..w {
                for c in 0..h {
                    let src = if degrees == 90 {
                        px(h - 1 - c, r)
                    } else {
                        px(c, w - 1 - r)
                    };
                    data.extend_from_slice(src);
                }
            }
            Frame {
                width: h,
                height: w,
                data,
            }
        }
        180 => {
            let mut data = Vec::with_capacity(f.data.len());
            for r in 0..h {
                for c in 0..w {
                    data.extend_from_slice(px(h - 1 - r, w - 1 - c));
                }
            }
            Frame {
                width: w,
                height: h,
                data,
            }
        }
        _ => f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 wide, 2 high; pixel value = 10 * row + col in every channel.
    fn grid() -> Frame {
        let mut data = Vec::new();
        for r in 0..2u8 {
            for c in 0..3u8 {
                data.extend_from_slice(&[10 * r + c; 3]);
            }
        }
        Frame {
            width: 3,
            height: 2,
            data,
        }
    }

    fn values(f: &Frame) -> Vec<u8> {
        f.data.chunks(3).map(|p| p[0]).collect()
    }

    #[test]
    fn rotate_clockwise_puts_bottom_left_at_top_left() {
        // 00 01 02      10 00
        // 10 11 12  ->  11 01
        //               12 02
        let f = rotate(grid(), 90);
        assert_eq!((f.width, f.height), (2, 3));
        assert_eq!(values(&f), vec![10, 0, 11, 1, 12, 2]);
    }

    #[test]
    fn rotate_counter_clockwise_puts_top_right_at_top_left() {
        let f = rotate(grid(), 270);
        assert_eq!((f.width, f.height), (2, 3));
        assert_eq!(values(&f), vec![2, 12, 1, 11, 0, 10]);
    }

    #[test]
    fn rotate_half_turn_reverses_pixels() {
        let f = rotate(grid(), 180);
        assert_eq!((f.width, f.height), (3, 2));
        assert_eq!(values(&f), vec![12, 11, 10, 2, 1, 0]);
        assert_eq!(rotate(grid(), 0), grid());
    }
}
