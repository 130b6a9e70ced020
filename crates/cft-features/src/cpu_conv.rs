//! A 3×3, stride-1, padding-1 convolution for the CPU without an im2col matrix ("implicit
//! GEMM"): the input is zero-padded in one copy to `[c, h + 3, w + 2]` per image, and for each
//! of the nine kernel taps `(dy, dx)` one GEMM accumulates `W[:, :, dy, dx] · X` where `X` is
//! the padded plane read from offset `dy·(w + 2) + dx` as a `[c, h·(w + 2)]` matrix whose rows
//! are the channel planes. The output is computed over the padded width and its two extra
//! columns are dropped. candle's CPU route builds a `[h·w, 9c]` im2col copy of every input (nine
//! times the input's size) and transposes the product back to NCHW; this reads the input once.
//! The GEMM is the `gemm` crate's, the one candle's CPU matmul uses.

use candle_core::{DType, Result, Storage, Tensor};

/// `conv2d(x, w, padding 1, stride 1)` for f32 `x: [n, c, h, w]` and `w: [o, c, 3, 3]` on the
/// CPU; `None` when the arguments are not of that kind (the caller falls back to candle).
pub fn conv3x3_same(x: &Tensor, weight: &Tensor) -> Result<Option<Tensor>> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return Ok(None);
    }
    let (n, c, h, w) = x.dims4()?;
    let (o, ci, kh, kw) = weight.dims4()?;
    if (ci, kh, kw) != (c, 3, 3) {
        return Ok(None);
    }
    let wp = w + 2;
    // One row of slack at the bottom: the last tap reads two elements past the padded plane.
    let plane = (h + 3) * wp;
    let xs = padded(x, n * c, h, w)?;
    let (w_storage, w_layout) = weight.storage_and_layout();
    let ws = match (&*w_storage, w_layout.contiguous_offsets()) {
        (Storage::Cpu(s), Some((start, end))) => &s.as_slice::<f32>()?[start..end],
        _ => return Ok(None),
    };
    let cols = h * wp;
    let mut out = vec![0f32; n * o * cols];
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    for b in 0..n {
        let src = &xs[b * c * plane..(b + 1) * c * plane];
        let dst = &mut out[b * o * cols..(b + 1) * o * cols];
        for tap in 0..9 {
            let (dy, dx) = (tap / 3, tap % 3);
            let offset = dy * wp + dx;
            // The rhs matrix: k = c rows (channel planes, `plane` apart), `cols` columns from
            // `offset`; its last element is at (c − 1)·plane + offset + cols − 1 < c·plane.
            debug_assert!((c - 1) * plane + offset + cols <= src.len());
            // SAFETY: every pointer, stride and extent stays inside its slice: `dst` is o × cols
            // (row stride cols), the lhs is `ws` read as o × c with strides (9c, 9) from `tap`
            // (last element (o − 1)·9c + 9(c − 1) + tap < 9oc), the rhs as shown above; the
            // three do not overlap and nothing else accesses them during the call.
            #[allow(unsafe_code)]
            unsafe {
                gemm::gemm(
                    o,
                    cols,
                    c,
                    dst.as_mut_ptr(),
                    1,
                    cols as isize,
                    tap > 0,
                    ws.as_ptr().add(tap),
                    9,
                    (9 * c) as isize,
                    src.as_ptr().add(offset),
                    1,
                    plane as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
        }
    }
    let y = Tensor::from_vec(out, (n, o, h, wp), x.device())?;
    Ok(Some(y.narrow(3, 0, w)?.contiguous()?))
}

/// The `planes` planes of `x` (`h × w` each) zero-padded to `(h + 3) × (w + 2)` (one column
/// each side, one row on top, two below), read in place from `x`'s storage: one copy.
fn padded(x: &Tensor, planes: usize, h: usize, w: usize) -> Result<Vec<f32>> {
    let x = x.contiguous()?;
    let (storage, layout) = x.storage_and_layout();
    let src = match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(s), Some((start, end))) => &s.as_slice::<f32>()?[start..end],
        _ => candle_core::bail!("conv3x3_same: a contiguous CPU f32 tensor was expected"),
    };
    let wp = w + 2;
    let plane = (h + 3) * wp;
    let mut out = vec![0f32; planes * plane];
    for (dst, src) in out.chunks_exact_mut(plane).zip(src.chunks_exact(h * w)) {
        for (drow, srow) in dst[wp..].chunks_exact_mut(wp).zip(src.chunks_exact(w)) {
            drow[1..=w].copy_from_slice(srow);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_candles_convolution() {
        let dev = Device::Cpu;
        for (n, c, h, w, o) in [(2, 5, 7, 9, 4), (1, 1, 1, 1, 1), (3, 16, 12, 5, 8), (1, 3, 2, 13, 33)] {
            let x = Tensor::randn(0f32, 1.0, (n, c, h, w), &dev).unwrap();
            let k = Tensor::randn(0f32, 1.0, (o, c, 3, 3), &dev).unwrap();
            let want = x.conv2d(&k, 1, 1, 1, 1).unwrap();
            let got = conv3x3_same(&x, &k).unwrap().unwrap();
            assert_eq!(got.dims(), want.dims());
            let err = (got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(err <= 1e-5 * scale.max(1.0), "{n}x{c}x{h}x{w} -> {o}: max |Δ| {err} (scale {scale})");
        }
    }

    #[test]
    fn other_kinds_fall_back() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 2, 4, 4), DType::F32, &dev).unwrap();
        assert!(conv3x3_same(&x, &Tensor::zeros((3, 2, 1, 1), DType::F32, &dev).unwrap()).unwrap().is_none());
        assert!(conv3x3_same(
            &x.to_dtype(DType::F16).unwrap(),
            &Tensor::zeros((3, 2, 3, 3), DType::F16, &dev).unwrap()
        )
        .unwrap()
        .is_none());
    }
}
