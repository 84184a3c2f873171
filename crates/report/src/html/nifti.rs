//! Small NIfTI-1 files (gzip) for the browser viewer: a volume quantised to 8 or 16 bits with
//! `scl_slope` / `scl_inter`, so that the viewer reads values in the map's own units, and label
//! volumes. The grid's affine goes into both the sform and, where it is axis-aligned with positive
//! steps, the qform, so any NIfTI reader places the volume in world coordinates.
//!
//! Written here rather than through [`adni_data::volume`] because the viewer needs the bytes in
//! memory (they are embedded in the page) and needs the scaling fields, which the `nifti`
//! crate's writer leaves at identity.

use std::io::Write as _;

use adni_data::Affine;
use flate2::Compression;
use flate2::write::GzEncoder;
use ndarray::ArrayView3;

use crate::error::{ReportError, Result};

/// NIfTI-1 datatype codes used here.
const DT_UINT8: i16 = 2;
const DT_INT16: i16 = 4;
const DT_UINT16: i16 = 512;

/// A volume encoded for the viewer.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The `.nii.gz` bytes.
    pub bytes: Vec<u8>,
    /// Smallest and largest finite value of the input (0 and 0 when it has none).
    pub min: f64,
    /// See `min`.
    pub max: f64,
    /// One stored step in the input's units (`scl_slope`); the value read back differs from
    /// the input by at most half of it.
    pub step: f64,
    /// Number of stored steps between 0 and the largest magnitude (255 or 32767).
    pub levels: u32,
}

/// Encodes a relevance map so that zero stays exactly zero: non-negative maps as unsigned 8 bit
/// over `[0, max]` (255 levels), maps with negative values as signed 16 bit over
/// `[-m, m]`, `m` the largest magnitude (32767 levels each side). NaN and infinities are
/// stored as 0 and ignored for the range.
pub fn encode_map(data: ArrayView3<f32>, affine: &Affine, description: &str) -> Result<Encoded> {
    let (min, max) = finite_range(data);
    if min >= 0.0 {
        let step = if max > 0.0 { max / 255.0 } else { 1.0 };
        let q: Vec<u8> = data.iter().map(|&v| quantise(v, 0.0, step, 255.0) as u8).collect();
        let bytes = nifti_gz(data.dim(), affine, DT_UINT8, &q, step, 0.0, description)?;
        Ok(Encoded { bytes, min, max, step, levels: 255 })
    } else {
        let m = min.abs().max(max);
        let step = m / 32767.0;
        let q: Vec<u8> = data
            .iter()
            .flat_map(|&v| {
                let x = if v.is_finite() { (f64::from(v) / step).round().clamp(-32767.0, 32767.0) } else { 0.0 };
                (x as i16).to_le_bytes()
            })
            .collect();
        let bytes = nifti_gz(data.dim(), affine, DT_INT16, &q, step, 0.0, description)?;
        Ok(Encoded { bytes, min, max, step, levels: 32767 })
    }
}

/// Encodes a grey image (the template) as unsigned 8 bit over its own `[min, max]`.
pub fn encode_grey(data: ArrayView3<f32>, affine: &Affine, description: &str) -> Result<Encoded> {
    let (min, max) = finite_range(data);
    let step = if max > min { (max - min) / 255.0 } else { 1.0 };
    let q: Vec<u8> = data.iter().map(|&v| quantise(v, min, step, 255.0) as u8).collect();
    let bytes = nifti_gz(data.dim(), affine, DT_UINT8, &q, step, min, description)?;
    Ok(Encoded { bytes, min, max, step, levels: 255 })
}

/// Encodes a label volume of indices `0..n` (0 = background) as unsigned 8 bit when every
/// index fits, else unsigned 16 bit.
pub fn encode_labels(indices: ArrayView3<u16>, affine: &Affine, description: &str) -> Result<Vec<u8>> {
    let top = indices.iter().copied().max().unwrap_or(0);
    if top <= u16::from(u8::MAX) {
        let q: Vec<u8> = indices.iter().map(|&v| v as u8).collect();
        nifti_gz(indices.dim(), affine, DT_UINT8, &q, 1.0, 0.0, description)
    } else {
        let q: Vec<u8> = indices.iter().flat_map(|v| v.to_le_bytes()).collect();
        nifti_gz(indices.dim(), affine, DT_UINT16, &q, 1.0, 0.0, description)
    }
}

fn finite_range(data: ArrayView3<f32>) -> (f64, f64) {
    let (lo, hi) = data
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if lo > hi { (0.0, 0.0) } else { (f64::from(lo), f64::from(hi)) }
}

fn quantise(v: f32, offset: f64, step: f64, top: f64) -> f64 {
    if v.is_finite() { ((f64::from(v) - offset) / step).round().clamp(0.0, top) } else { 0.0 }
}

/// A NIfTI-1 single file (header, empty extension, voxels in Fortran order: `i` fastest),
/// little-endian, gzip-compressed. `voxels` holds the values in the array's logical `[i, j, k]`
/// order (C order: `k` fastest), as `ndarray` iterates them; they are reordered here.
fn nifti_gz(
    dim: (usize, usize, usize),
    affine: &Affine,
    datatype: i16,
    voxels: &[u8],
    slope: f64,
    inter: f64,
    description: &str,
) -> Result<Vec<u8>> {
    let (nx, ny, nz) = dim;
    let bytes_per = match datatype {
        DT_UINT8 => 1,
        _ => 2,
    };
    if voxels.len() != nx * ny * nz * bytes_per {
        return Err(ReportError::Shape(format!(
            "viewer volume: {} bytes for a {nx}×{ny}×{nz} grid of {bytes_per}-byte voxels",
            voxels.len()
        )));
    }
    if [nx, ny, nz].iter().any(|&n| n == 0 || n > i16::MAX as usize) {
        return Err(ReportError::Shape(format!("viewer volume: grid {nx}×{ny}×{nz} cannot be written as NIfTI-1")));
    }
    let mut h = [0u8; 352];
    let put_i16 = |h: &mut [u8; 352], at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut [u8; 352], at: usize, v: f64| h[at..at + 4].copy_from_slice(&(v as f32).to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (n, d) in [3, nx as i16, ny as i16, nz as i16, 1, 1, 1, 1].into_iter().enumerate() {
        put_i16(&mut h, 40 + 2 * n, d);
    }
    put_i16(&mut h, 70, datatype);
    put_i16(&mut h, 72, 8 * bytes_per as i16);
    let m = &affine.0;
    let vs = affine.voxel_sizes();
    for (n, p) in [1.0, vs[0], vs[1], vs[2], 1.0, 1.0, 1.0, 1.0].into_iter().enumerate() {
        put_f32(&mut h, 76 + 4 * n, p);
    }
    put_f32(&mut h, 108, 352.0); // vox_offset
    put_f32(&mut h, 112, slope);
    put_f32(&mut h, 116, inter);
    h[123] = 2 | 8; // mm, s
    let d = description.as_bytes();
    let n = d.len().min(79);
    h[148..148 + n].copy_from_slice(&d[..n]);
    let axis_aligned = (0..3).all(|r| (0..3).all(|c| r == c || m[r][c] == 0.0)) && (0..3).all(|a| m[a][a] > 0.0);
    if axis_aligned {
        put_i16(&mut h, 252, 2); // qform: aligned to a template; quaternion 0 = no rotation
        for (n, v) in [0.0, 0.0, 0.0, m[0][3], m[1][3], m[2][3]].into_iter().enumerate() {
            put_f32(&mut h, 256 + 4 * n, v);
        }
    }
    put_i16(&mut h, 254, 2); // sform: aligned to a template
    for (r, row) in m.iter().take(3).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            put_f32(&mut h, 280 + 16 * r + 4 * c, v);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");

    // C order (k fastest) → NIfTI order (i fastest)
    let mut data = vec![0u8; voxels.len()];
    for i in 0..nx {
        for j in 0..ny {
            for k in 0..nz {
                let src = ((i * ny + j) * nz + k) * bytes_per;
                let dst = ((k * ny + j) * nx + i) * bytes_per;
                data[dst..dst + bytes_per].copy_from_slice(&voxels[src..src + bytes_per]);
            }
        }
    }
    let mut gz = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::best());
    gz.write_all(&h)
        .and_then(|()| gz.write_all(&data))
        .map_err(|e| ReportError::Shape(format!("viewer volume: gzip failed: {e}")))?;
    gz.finish().map_err(|e| ReportError::Shape(format!("viewer volume: gzip failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use adni_data::volume::read_volume;
    use ndarray::Array3;

    fn affine() -> Affine {
        Affine::from_scale_offset([2.0, 2.0, 2.0], [-96.0, -132.0, -78.0])
    }

    fn ramp(shape: (usize, usize, usize), f: impl Fn(usize, usize, usize) -> f32) -> Array3<f32> {
        Array3::from_shape_fn(shape, |(i, j, k)| f(i, j, k))
    }

    /// Writes `bytes` to a temporary `.nii.gz` and reads it back with the project's reader
    /// (which applies `scl_slope` / `scl_inter`).
    fn read_back(bytes: &[u8]) -> (Array3<f32>, Affine) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.nii.gz");
        std::fs::write(&p, bytes).unwrap();
        let (v, _, _) = read_volume(&p).unwrap();
        (v.data, v.affine)
    }

    #[test]
    fn a_non_negative_map_reads_back_within_half_a_step_with_its_affine() {
        let map = ramp((5, 6, 7), |i, j, k| (i as f32 * 0.37 + j as f32 * 1.1 + k as f32 * 0.05) * 1e-4);
        let e = encode_map(map.view(), &affine(), "test").unwrap();
        assert_eq!(e.levels, 255);
        assert!((e.max - f64::from(map[[4, 5, 6]])).abs() < 1e-12 && e.min == 0.0);
        let (back, a) = read_back(&e.bytes);
        assert_eq!(back.dim(), (5, 6, 7));
        assert!(a.max_abs_diff(&affine()) < 1e-6, "{:?}", a.0);
        for (x, y) in map.iter().zip(back.iter()) {
            assert!((f64::from(*x) - f64::from(*y)).abs() <= e.step / 2.0 + 1e-9, "{x} vs {y}");
        }
        // zero stays zero, the maximum stays the maximum
        assert_eq!(back[[0, 0, 0]], 0.0);
        assert!((f64::from(back[[4, 5, 6]]) - e.max).abs() < e.max * 1e-6);
    }

    #[test]
    fn a_signed_map_uses_sixteen_bits_symmetric_about_zero() {
        let map = ramp((4, 3, 2), |i, j, k| i as f32 - 1.5 + j as f32 * 0.25 - k as f32);
        let e = encode_map(map.view(), &affine(), "signed").unwrap();
        assert_eq!(e.levels, 32767);
        assert!(e.min < 0.0);
        let (back, _) = read_back(&e.bytes);
        for (x, y) in map.iter().zip(back.iter()) {
            assert!((x - y).abs() as f64 <= e.step / 2.0 + 1e-6, "{x} vs {y}");
        }
    }

    #[test]
    fn an_all_zero_map_and_non_finite_values_are_stored_as_zero() {
        let mut map = Array3::<f32>::zeros((3, 3, 3));
        let e = encode_map(map.view(), &affine(), "zero").unwrap();
        assert_eq!((e.min, e.max), (0.0, 0.0));
        assert!(read_back(&e.bytes).0.iter().all(|&v| v == 0.0));
        map[[1, 1, 1]] = f32::NAN;
        map[[0, 1, 2]] = 2.0;
        let e = encode_map(map.view(), &affine(), "nan").unwrap();
        let (back, _) = read_back(&e.bytes);
        assert_eq!((back[[1, 1, 1]], back[[0, 1, 2]]), (0.0, 2.0));
    }

    #[test]
    fn grey_images_keep_their_offset() {
        let img = ramp((4, 4, 4), |i, j, k| 10.0 + (i + 2 * j + 3 * k) as f32);
        let e = encode_grey(img.view(), &affine(), "grey").unwrap();
        let (back, _) = read_back(&e.bytes);
        for (x, y) in img.iter().zip(back.iter()) {
            assert!((x - y).abs() as f64 <= e.step / 2.0 + 1e-4, "{x} vs {y}");
        }
    }

    #[test]
    fn labels_read_back_exactly_in_eight_and_sixteen_bits() {
        for top in [200u16, 700] {
            let idx = Array3::from_shape_fn((3, 4, 5), |(i, j, k)| ((i * 20 + j * 5 + k) as u16 * 11) % (top + 1));
            let bytes = encode_labels(idx.view(), &affine(), "labels").unwrap();
            let (back, _) = read_back(&bytes);
            assert!(idx.iter().zip(back.iter()).all(|(&a, &b)| f32::from(a) == b), "top {top}");
        }
    }
}
