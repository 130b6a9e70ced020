//! The image pipeline of the reference, torchvision's default loader bit for bit: decode
//! (JPEG with libjpeg-turbo's decoder and Pillow's settings; PNG; grayscale and CMYK become RGB as
//! Pillow's `convert("RGB")` makes them), resize to S×S exactly as PIL's
//! `Image.resize((S, S), BILINEAR)` (torchvision `Resize((S, S))`): a separable triangle filter
//! whose support grows with the downscale factor (antialiasing), 8-bit fixed-point coefficients
//! with 22 fractional bits, each pass rounded and clipped to u8, the passes in the order of the
//! chosen Pillow release ([`Resize`]: 13 may run the vertical pass first); then
//! `ToTensor` (÷255) and optional ImageNet normalisation.

use crate::error::{FeatureError, Result};
use std::path::Path;

/// ImageNet channel means (torchvision).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

pub use cft_pipeline::{JpegDecode, Normalize, Resize};

/// An 8-bit RGB image, row-major `h × w × 3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// Pixels.
    pub data: Vec<u8>,
}

/// Decodes an image file to RGB exactly as Pillow does. Truncated JPEGs (no end-of-image
/// marker) are errors, not silently grey-filled pictures.
pub fn decode(path: &Path) -> Result<Rgb8> {
    decode_with(path, JpegDecode::Exact, None)
}

/// Decodes an image file; with [`JpegDecode::Reduced`] and a `target` size a JPEG is decoded at
/// the smallest DCT scale that still covers `target` (width, height).
pub fn decode_with(path: &Path, jpeg: JpegDecode, target: Option<(usize, usize)>) -> Result<Rgb8> {
    let bytes = std::fs::read(path).map_err(|e| FeatureError::Io { path: path.to_path_buf(), error: e })?;
    // Pillow's DecompressionBombWarning, from the same header read that refuses a bomb.
    let warn = |w: usize, h: usize| {
        eprintln!(
            "warning: {}: {w} × {h} pixels is above Pillow's MAX_IMAGE_PIXELS ({MAX_IMAGE_PIXELS}); decoding it needs {} MB",
            path.display(),
            w * h * 3 / 1_000_000
        );
    };
    decode_checked(&bytes, jpeg, target, &warn)
        .map_err(|message| FeatureError::Image { path: path.to_path_buf(), message })
}

/// Decodes image bytes exactly as Pillow does; the error is a message without the path.
pub fn decode_bytes(bytes: &[u8]) -> std::result::Result<Rgb8, String> {
    decode_bytes_with(bytes, JpegDecode::Exact, None)
}

/// [`decode_with`] on bytes; the error is a message without the path.
pub fn decode_bytes_with(
    bytes: &[u8],
    jpeg: JpegDecode,
    target: Option<(usize, usize)>,
) -> std::result::Result<Rgb8, String> {
    decode_checked(bytes, jpeg, target, &|_, _| {})
}

/// Decodes with the header's size checked once: refused above twice Pillow's limit, `large`
/// told (width, height) above it.
fn decode_checked(
    bytes: &[u8],
    jpeg: JpegDecode,
    target: Option<(usize, usize)>,
    large: &dyn Fn(usize, usize),
) -> std::result::Result<Rgb8, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let format = image::guess_format(bytes).map_err(|e| format!("not a recognised image: {e}"))?;
    if format == image::ImageFormat::Jpeg {
        let tail = &bytes[bytes.len().saturating_sub(64)..];
        if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Err("truncated JPEG (no end-of-image marker)".into());
        }
        let target = if jpeg == JpegDecode::Reduced { target } else { None };
        return decode_jpeg(bytes, target, large);
    }
    let reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let (w, h) = reader.into_dimensions().map_err(|e| format!("cannot decode: {e}"))?;
    check_pixels(w as usize, h as usize, large)?;
    let img = image::load_from_memory_with_format(bytes, format).map_err(|e| format!("cannot decode: {e}"))?;
    Ok(pil_rgb(img))
}

/// Pillow's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`): images above it get a
/// warning, images above twice it are refused — as Pillow does, before any pixel is decoded.
pub const MAX_IMAGE_PIXELS: usize = 89_478_485;

/// Refuses an image of more than 2 × [`MAX_IMAGE_PIXELS`] pixels (its header's size); above
/// [`MAX_IMAGE_PIXELS`] tells `large`.
fn check_pixels(width: usize, height: usize, large: &dyn Fn(usize, usize)) -> std::result::Result<(), String> {
    let pixels = width.saturating_mul(height);
    if pixels > MAX_IMAGE_PIXELS && pixels <= 2 * MAX_IMAGE_PIXELS {
        large(width, height);
    }
    if pixels > 2 * MAX_IMAGE_PIXELS {
        return Err(format!(
            "{width} × {height} = {pixels} pixels exceeds the limit of {} (twice Pillow's MAX_IMAGE_PIXELS, {MAX_IMAGE_PIXELS}): a decompression bomb? Pillow refuses it too",
            2 * MAX_IMAGE_PIXELS
        ));
    }
    Ok(())
}

/// RGB as Pillow's `convert("RGB")` makes it: alpha dropped (not composited); 16-bit colour
/// samples keep their high byte (Pillow reads them as `RGB;16B`); 16-bit grayscale (Pillow's
/// mode `I;16`) is clipped to 0…255, not rescaled.
fn pil_rgb(img: image::DynamicImage) -> Rgb8 {
    use image::DynamicImage as D;
    let (width, height) = (img.width() as usize, img.height() as usize);
    let data: Vec<u8> = match &img {
        D::ImageRgb16(b) => b.pixels().flat_map(|p| p.0.map(|v| (v >> 8) as u8)).collect(),
        D::ImageRgba16(b) => b.pixels().flat_map(|p| [p.0[0], p.0[1], p.0[2]].map(|v| (v >> 8) as u8)).collect(),
        D::ImageLuma16(b) => b.pixels().flat_map(|p| [p.0[0].min(255) as u8; 3]).collect(),
        D::ImageLumaA16(b) => b.pixels().flat_map(|p| [(p.0[0] >> 8) as u8; 3]).collect(),
        _ => img.to_rgb8().into_raw(),
    };
    Rgb8 { width, height, data }
}

/// The DCT scale numerator `m` (output `⌈size·m/8⌉`) of the smallest decode covering `target`.
fn dct_scale(size: (usize, usize), target: (usize, usize)) -> u8 {
    (1..=8u8)
        .find(|&m| {
            (size.0 * usize::from(m)).div_ceil(8) >= target.0 && (size.1 * usize::from(m)).div_ceil(8) >= target.1
        })
        .unwrap_or(8)
}

/// libjpeg-turbo decoding with Pillow's settings (the library defaults: `JDCT_ISLOW`, fancy
/// upsampling). libjpeg reports fatal errors by unwinding out of its error handler; they are
/// caught here and returned as messages.
fn decode_jpeg(
    bytes: &[u8],
    target: Option<(usize, usize)>,
    large: &dyn Fn(usize, usize),
) -> std::result::Result<Rgb8, String> {
    use mozjpeg::ColorSpace;
    let run = || -> std::io::Result<Rgb8> {
        let mut d = mozjpeg::Decompress::new_mem(bytes)?;
        let (w, h) = d.size();
        check_pixels(w, h, large).map_err(std::io::Error::other)?;
        if let Some(t) = target {
            d.scale(dct_scale(d.size(), t));
        }
        if matches!(d.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK) {
            // Pillow reads 4-channel JPEGs as Adobe (inverted) CMYK, then `convert("RGB")`.
            let mut d = d.to_colorspace(ColorSpace::JCS_CMYK)?;
            let (width, height) = (d.width(), d.height());
            let cmyk: Vec<[u8; 4]> = d.read_scanlines()?;
            d.finish()?;
            if cmyk.len() != width * height {
                return Err(std::io::Error::other(format!("{} of {} rows decoded", cmyk.len() / width.max(1), height)));
            }
            let data = cmyk.iter().flat_map(|&[c, m, y, k]| pil_cmyk_to_rgb([!c, !m, !y, !k])).collect();
            return Ok(Rgb8 { width, height, data });
        }
        let mut d = d.rgb()?;
        let (width, height) = (d.width(), d.height());
        let data: Vec<u8> = d.read_scanlines()?;
        d.finish()?;
        if data.len() != width * height * 3 {
            return Err(std::io::Error::other(format!(
                "{} of {} rows decoded",
                data.len() / (3 * width.max(1)),
                height
            )));
        }
        Ok(Rgb8 { width, height, data })
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(img)) => Ok(img),
        Ok(Err(e)) => Err(format!("cannot decode JPEG: {e}")),
        Err(payload) => Err(match payload.downcast_ref::<String>() {
            Some(m) => format!("cannot decode JPEG: {m}"),
            None => "cannot decode JPEG".into(),
        }),
    }
}

/// Pillow's `cmyk2rgb` (Convert.c): `255 − k − c·(255 − k)/255` per channel, in its rounding.
fn pil_cmyk_to_rgb([c, m, y, k]: [u8; 4]) -> [u8; 3] {
    let nk = 255 - i32::from(k);
    let muldiv255 = |a: u8| {
        let t = i32::from(a) * nk + 128;
        ((t >> 8) + t) >> 8
    };
    [c, m, y].map(|v| (nk - muldiv255(v)).clamp(0, 255) as u8)
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's coefficients for one axis: per output pixel, the first input pixel and the fixed-point
/// weights.
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0, widened when shrinking
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = (((center + support + 0.5) as i64).min(in_size as i64) as usize).saturating_sub(xmin);
            let mut k: Vec<f64> = (0..xmax)
                .map(|x| {
                    let t = ((x + xmin) as f64 - center + 0.5) * ss;
                    let t = t.abs();
                    if t < 1.0 {
                        1.0 - t
                    } else {
                        0.0
                    }
                })
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                for v in &mut k {
                    *v /= ww;
                }
            }
            let fixed = k
                .iter()
                .map(|&v| {
                    let s = v * f64::from(1u32 << PRECISION_BITS);
                    if v < 0.0 {
                        (-0.5 + s) as i32
                    } else {
                        (0.5 + s) as i32
                    }
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes to `out_w × out_h` like today's Pillow (13) bilinear `resize`; see
/// [`resize_bilinear_as`].
pub fn resize_bilinear(img: &Rgb8, out_w: usize, out_h: usize) -> Rgb8 {
    resize_bilinear_as(img, out_w, out_h, Resize::Pillow13)
}

/// Resizes to `out_w × out_h` like PIL's bilinear `resize` of the given release: the same
/// coefficients, the same 32-bit integer accumulation (`int ss` in Pillow's `Resample.c`; it
/// cannot overflow, the coefficients sum to 2²²), the same pass order, each pass rounded and
/// clipped to u8. A pass whose size does not change is skipped, as Pillow skips it.
pub fn resize_bilinear_as(img: &Rgb8, out_w: usize, out_h: usize, pillow: Resize) -> Rgb8 {
    let (w, h) = (img.width, img.height);
    if pillow.vertical_first((w, h), (out_w, out_h)) {
        let tall = if out_h != h { vertical_pass(img, out_h) } else { img.clone() };
        if out_w != w {
            horizontal_pass(&tall, out_w)
        } else {
            tall
        }
    } else {
        let wide = if out_w != w { horizontal_pass(img, out_w) } else { img.clone() };
        if out_h != h {
            vertical_pass(&wide, out_h)
        } else {
            wide
        }
    }
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Pillow's horizontal pass: every row to `out_w` pixels.
fn horizontal_pass(img: &Rgb8, out_w: usize) -> Rgb8 {
    let (w, h) = (img.width, img.height);
    let cx = coefficients(w, out_w);
    let mut out = vec![0u8; h * out_w * 3];
    for (row, out_row) in img.data.chunks_exact(w * 3).zip(out.chunks_exact_mut(out_w * 3)) {
        for ((xmin, k), px) in cx.iter().zip(out_row.chunks_exact_mut(3)) {
            let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
            for (src, &kv) in row[xmin * 3..].chunks_exact(3).zip(k) {
                s0 += i32::from(src[0]) * kv;
                s1 += i32::from(src[1]) * kv;
                s2 += i32::from(src[2]) * kv;
            }
            px.copy_from_slice(&[clip8(s0), clip8(s1), clip8(s2)]);
        }
    }
    Rgb8 { width: out_w, height: h, data: out }
}

/// Pillow's vertical pass: every column to `out_h` pixels, accumulated row by row.
fn vertical_pass(img: &Rgb8, out_h: usize) -> Rgb8 {
    let cy = coefficients(img.height, out_h);
    let stride = img.width * 3;
    let mut out = vec![0u8; out_h * stride];
    let mut acc = vec![0i32; stride];
    for ((ymin, k), out_row) in cy.iter().zip(out.chunks_exact_mut(stride)) {
        acc.fill(HALF);
        for (i, &kv) in k.iter().enumerate() {
            let src = &img.data[(ymin + i) * stride..(ymin + i + 1) * stride];
            for (a, &v) in acc.iter_mut().zip(src) {
                *a += i32::from(v) * kv;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    Rgb8 { width: img.width, height: out_h, data: out }
}

/// `ToTensor` (+ normalisation): CHW f32 values of an image.
pub fn to_chw(img: &Rgb8, norm: Normalize) -> Vec<f32> {
    let plane = img.width * img.height;
    let mut out = vec![0.0f32; 3 * plane];
    for (p, px) in img.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let v = f32::from(px[c]) / 255.0;
            out[c * plane + p] = match norm {
                Normalize::None => v,
                Normalize::Imagenet => (v - IMAGENET_MEAN[c]) / IMAGENET_STD[c],
            };
        }
    }
    out
}

/// Decode, resize to `size × size` as the given Pillow release does, `ToTensor`, normalise:
/// one network input (CHW).
pub fn load_input(path: &Path, size: usize, norm: Normalize, jpeg: JpegDecode, pillow: Resize) -> Result<Vec<f32>> {
    let img = decode_with(path, jpeg, Some((size, size)))?;
    Ok(to_chw(&resize_bilinear_as(&img, size, size, pillow), norm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_unchanged_and_constant_images_stay_constant() {
        let img = Rgb8 { width: 5, height: 3, data: (0..45).map(|v| v as u8).collect() };
        assert_eq!(resize_bilinear(&img, 5, 3), img);
        let flat = Rgb8 { width: 37, height: 23, data: vec![200; 37 * 23 * 3] };
        let r = resize_bilinear(&flat, 8, 11);
        assert!(r.data.iter().all(|&v| v == 200));
    }

    #[test]
    fn coefficients_sum_to_one_in_fixed_point() {
        for (i, o) in [(100, 7), (7, 100), (448, 448), (2828, 448)] {
            for (_, k) in coefficients(i, o) {
                let s: i64 = k.iter().map(|&v| i64::from(v)).sum();
                assert!((s - (1 << PRECISION_BITS)).abs() <= k.len() as i64, "{i}->{o}: {s}");
            }
        }
    }

    #[test]
    fn bad_bytes_are_reported() {
        assert!(decode_bytes(&[]).unwrap_err().contains("empty"));
        assert!(decode_bytes(b"hello world").unwrap_err().contains("not a recognised image"));
        // A JPEG header followed by garbage: libjpeg's fatal error comes back as a message.
        let mut bad = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x03, 0x00];
        bad.extend_from_slice(&[0x42; 40]);
        bad.extend_from_slice(&[0xFF, 0xD9]);
        let e = decode_bytes(&bad).unwrap_err();
        assert!(e.starts_with("cannot decode JPEG"), "{e}");
    }

    #[test]
    fn dct_scale_is_the_smallest_covering_one() {
        assert_eq!(dct_scale((640, 480), (224, 224)), 4); // 320×240
        assert_eq!(dct_scale((640, 480), (448, 448)), 8);
        assert_eq!(dct_scale((4000, 3000), (224, 224)), 1); // 500×375
        assert_eq!(dct_scale((64, 64), (448, 448)), 8); // upscaling: full size
    }

    #[test]
    fn cmyk_conversion_follows_pillow() {
        assert_eq!(pil_cmyk_to_rgb([0, 0, 0, 0]), [255, 255, 255]);
        assert_eq!(pil_cmyk_to_rgb([255, 255, 255, 255]), [0, 0, 0]);
        assert_eq!(pil_cmyk_to_rgb([255, 0, 0, 0]), [0, 255, 255]);
        // nk = 155, 100·155 + 128 = 15628, (61 + 15628) >> 8 = 61: 155 − 61.
        assert_eq!(pil_cmyk_to_rgb([100, 0, 0, 100]), [94, 155, 155]);
    }
}
