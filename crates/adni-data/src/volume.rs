//! 3-D volumes on a world grid: NIfTI-1 and NIfTI-2 reading (`.nii`, `.nii.gz`, any common
//! datatype, either byte order, `scl_slope`/`scl_inter` applied) and NIfTI-1 writing that keeps the
//! source affine. [`inspect_nifti`] summarises any NIfTI, 4-D included; the loaders take 3-D only.
//!
//! Arrays are indexed `[i, j, k]` (the NIfTI x, y, z voxel axes) and stored in standard (C) order.

use std::path::Path;

use ndarray::{Array3, ArrayD, Ix3, ShapeBuilder};
use nifti::{InMemNiftiObject, IntoNdArray, NiftiHeader, NiftiObject};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::fsutil::write_atomically;
use crate::nifti_header::{RawHeader, read_pair_voxels, read_raw, read_raw_header};

/// A 4×4 voxel-to-world (mm) transform, row-major.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Affine(pub [[f64; 4]; 4]);

impl Affine {
    /// The identity transform.
    pub fn identity() -> Self {
        Self::from_scale_offset([1.0; 3], [0.0; 3])
    }

    /// A diagonal transform: world = scale · voxel + offset.
    pub fn from_scale_offset(scale: [f64; 3], offset: [f64; 3]) -> Self {
        let mut m = [[0.0; 4]; 4];
        for a in 0..3 {
            m[a][a] = scale[a];
            m[a][3] = offset[a];
        }
        m[3][3] = 1.0;
        Affine(m)
    }

    /// Maps a (possibly fractional) voxel index to world coordinates.
    pub fn apply(&self, p: [f64; 3]) -> [f64; 3] {
        let m = &self.0;
        let mut out = [0.0; 3];
        for (r, o) in out.iter_mut().enumerate() {
            *o = m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3];
        }
        out
    }

    /// Matrix product `self · other` (apply `other` first).
    pub fn compose(&self, other: &Affine) -> Affine {
        let mut m = [[0.0; 4]; 4];
        for (r, row) in m.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = (0..4).map(|k| self.0[r][k] * other.0[k][c]).sum();
            }
        }
        Affine(m)
    }

    /// The inverse transform, or `None` when the 3×3 part is singular.
    pub fn inverse(&self) -> Option<Affine> {
        let m = &self.0;
        let a = [[m[0][0], m[0][1], m[0][2]], [m[1][0], m[1][1], m[1][2]], [m[2][0], m[2][1], m[2][2]]];
        let det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let inv = [
            [
                (a[1][1] * a[2][2] - a[1][2] * a[2][1]) / det,
                (a[0][2] * a[2][1] - a[0][1] * a[2][2]) / det,
                (a[0][1] * a[1][2] - a[0][2] * a[1][1]) / det,
            ],
            [
                (a[1][2] * a[2][0] - a[1][0] * a[2][2]) / det,
                (a[0][0] * a[2][2] - a[0][2] * a[2][0]) / det,
                (a[0][2] * a[1][0] - a[0][0] * a[1][2]) / det,
            ],
            [
                (a[1][0] * a[2][1] - a[1][1] * a[2][0]) / det,
                (a[0][1] * a[2][0] - a[0][0] * a[2][1]) / det,
                (a[0][0] * a[1][1] - a[0][1] * a[1][0]) / det,
            ],
        ];
        let t = [m[0][3], m[1][3], m[2][3]];
        let mut out = [[0.0; 4]; 4];
        for r in 0..3 {
            for c in 0..3 {
                out[r][c] = inv[r][c];
            }
            out[r][3] = -(inv[r][0] * t[0] + inv[r][1] * t[1] + inv[r][2] * t[2]);
        }
        out[3][3] = 1.0;
        Some(Affine(out))
    }

    /// Voxel sizes in mm: the lengths of the first three columns.
    pub fn voxel_sizes(&self) -> [f64; 3] {
        let m = &self.0;
        let mut v = [0.0; 3];
        for (c, s) in v.iter_mut().enumerate() {
            *s = (m[0][c].powi(2) + m[1][c].powi(2) + m[2][c].powi(2)).sqrt();
        }
        v
    }

    /// Largest absolute difference between two affines' entries.
    pub fn max_abs_diff(&self, other: &Affine) -> f64 {
        let mut d: f64 = 0.0;
        for r in 0..4 {
            for c in 0..4 {
                d = d.max((self.0[r][c] - other.0[r][c]).abs());
            }
        }
        d
    }
}

/// The shape and placement of a voxel grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Voxels along i, j, k.
    pub shape: [usize; 3],
    /// Voxel-to-world transform.
    pub affine: Affine,
}

impl Grid {
    /// The ICBM152 2009c 1 mm grid of the study's preprocessed images: 193×229×193,
    /// 1 mm, origin (−96, −132, −78).
    pub fn mni152_1mm() -> Self {
        Grid { shape: [193, 229, 193], affine: Affine::from_scale_offset([1.0; 3], [-96.0, -132.0, -78.0]) }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for a grid without voxels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The grid obtained by keeping every `factor`-th voxel (voxel 0 stays in place):
    /// shape ⌈n / factor⌉, voxel size × factor. 193×229×193 at factor 2 gives 97×115×97.
    pub fn downsampled(&self, factor: usize) -> Grid {
        let f = factor.max(1);
        let shape = self.shape.map(|n| n.div_ceil(f));
        let scale = Affine::from_scale_offset([f as f64; 3], [0.0; 3]);
        Grid { shape, affine: self.affine.compose(&scale) }
    }

    /// Checks that `self` (the grid found in `path`) equals `expected` within `tol` mm.
    pub fn check_matches(&self, expected: &Grid, path: &Path, tol: f64) -> Result<()> {
        if self.shape != expected.shape {
            return Err(DataError::Grid {
                path: path.to_path_buf(),
                message: format!(
                    "grid shape is {:?}, expected {:?} (resample the image onto the expected grid first)",
                    self.shape, expected.shape
                ),
            });
        }
        let d = self.affine.max_abs_diff(&expected.affine);
        if d > tol {
            return Err(DataError::Grid {
                path: path.to_path_buf(),
                message: format!(
                    "affine differs from the expected grid by up to {d:.4} mm (tolerance {tol}): found {:?}, expected {:?}",
                    self.affine.0, expected.affine.0
                ),
            });
        }
        Ok(())
    }
}

/// A scalar 3-D volume with its world placement.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// Voxel values, indexed `[i, j, k]`, standard layout.
    pub data: Array3<f32>,
    /// Voxel-to-world transform.
    pub affine: Affine,
}

impl Volume {
    /// The volume's grid.
    pub fn grid(&self) -> Grid {
        let s = self.data.shape();
        Grid { shape: [s[0], s[1], s[2]], affine: self.affine }
    }
}

/// Header facts of a NIfTI file, as `cargo xtask inspect` shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NiftiInfo {
    /// `NIfTI-1` or `NIfTI-2`.
    pub format: String,
    /// `dim[1..=dim[0]]`.
    pub dims: Vec<usize>,
    /// `pixdim[1..=3]` in the file's units.
    pub pixdim: [f32; 3],
    /// Datatype name (`uint8`, `int16`, `float32`, …).
    pub datatype: String,
    /// `scl_slope` as stored (0 means no scaling).
    pub scl_slope: f32,
    /// `scl_inter` as stored.
    pub scl_inter: f32,
    /// `sform_code`.
    pub sform_code: i16,
    /// `qform_code`.
    pub qform_code: i16,
    /// Which transform gave the affine: `sform`, `qform` or `pixdim`.
    pub affine_source: String,
    /// The voxel-to-world affine.
    pub affine: Affine,
    /// `little` or `big`.
    pub endianness: String,
    /// The `descrip` field.
    pub description: String,
}

/// What loading found besides the voxels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    /// Number of NaN or infinite voxels that were replaced by 0.
    pub non_finite_replaced: usize,
}

pub(crate) fn datatype_name(t: i16) -> String {
    match t {
        2 => "uint8".into(),
        4 => "int16".into(),
        8 => "int32".into(),
        16 => "float32".into(),
        32 => "complex64".into(),
        64 => "float64".into(),
        128 => "rgb24".into(),
        256 => "int8".into(),
        512 => "uint16".into(),
        768 => "uint32".into(),
        1024 => "int64".into(),
        1280 => "uint64".into(),
        1792 => "complex128".into(),
        2304 => "rgba32".into(),
        other => format!("unknown ({other})"),
    }
}

/// The voxel-to-world affine a NIfTI-1 header describes: sform when `sform_code > 0`, else
/// qform when `qform_code > 0`, else the ANALYZE fallback from `pixdim`.
pub fn header_affine(h: &NiftiHeader) -> (Affine, &'static str) {
    let srow = [h.srow_x, h.srow_y, h.srow_z].map(|r| r.map(|v| v as f64));
    let quatern = [h.quatern_b, h.quatern_c, h.quatern_d].map(|v| v as f64);
    let qoffset = [h.quatern_x, h.quatern_y, h.quatern_z].map(|v| v as f64);
    let pixdim = h.pixdim.map(|v| v as f64);
    affine_from_fields(h.sform_code as i32, &srow, h.qform_code as i32, quatern, qoffset, &pixdim)
}

/// As [`header_affine`], for a header of either NIfTI version.
fn raw_affine(h: &RawHeader) -> (Affine, &'static str) {
    affine_from_fields(h.sform_code, &h.srow, h.qform_code, h.quatern, h.qoffset, &h.pixdim)
}

fn affine_from_fields(
    sform_code: i32,
    srow: &[[f64; 4]; 3],
    qform_code: i32,
    quatern: [f64; 3],
    qoffset: [f64; 3],
    pixdim: &[f64; 8],
) -> (Affine, &'static str) {
    if sform_code > 0 {
        let mut m = [[0.0; 4]; 4];
        m[..3].copy_from_slice(srow);
        m[3][3] = 1.0;
        return (Affine(m), "sform");
    }
    let px = [pixdim[1], pixdim[2], pixdim[3]];
    if qform_code > 0 {
        // pixdim 0 is read as 1, as nibabel's header check does ("setting 0 dims to 1").
        let px = px.map(|v| if v == 0.0 { 1.0 } else { v });
        let [b, c, d] = quatern;
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let qfac = if pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let r = [
            [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
            [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
            [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ];
        let scale = [px[0], px[1], qfac * px[2]];
        let mut m = [[0.0; 4]; 4];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = r[i][j] * scale[j];
            }
            m[i][3] = qoffset[i];
        }
        m[3][3] = 1.0;
        return (Affine(m), "qform");
    }
    let s = px.map(|v| if v > 0.0 { v } else { 1.0 });
    (Affine::from_scale_offset(s, [0.0; 3]), "pixdim")
}

fn nifti_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Nifti { path: path.to_path_buf(), message: e.to_string() }
}

fn info_from_raw(h: &RawHeader) -> NiftiInfo {
    let (affine, source) = raw_affine(h);
    NiftiInfo {
        format: format!("NIfTI-{}", h.version),
        dims: h.dims.clone(),
        pixdim: [h.pixdim[1] as f32, h.pixdim[2] as f32, h.pixdim[3] as f32],
        datatype: datatype_name(h.datatype),
        scl_slope: h.scl_slope as f32,
        scl_inter: h.scl_inter as f32,
        sform_code: h.sform_code.clamp(i16::MIN as i32, i16::MAX as i32) as i16,
        qform_code: h.qform_code.clamp(i16::MIN as i32, i16::MAX as i32) as i16,
        affine_source: source.to_string(),
        affine,
        endianness: if h.big_endian { "big" } else { "little" }.to_string(),
        description: h.description.clone(),
    }
}

fn check_exists(path: &Path) -> Result<()> {
    if !path.exists() {
        return Err(DataError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "file not found")));
    }
    Ok(())
}

/// Reads only the header of a NIfTI-1 or NIfTI-2 file.
pub fn read_header(path: &Path) -> Result<NiftiInfo> {
    check_exists(path)?;
    Ok(info_from_raw(&read_raw_header(path)?))
}

/// Reads a 3-D NIfTI-1 or NIfTI-2 volume as `f32` with scaling applied; NaN and ±Inf become 0
/// (counted in the report). A 4-D file with a single time point is accepted; more time points
/// are refused (use [`inspect_nifti`] to summarise such a file).
pub fn read_volume(path: &Path) -> Result<(Volume, NiftiInfo, LoadReport)> {
    check_exists(path)?;
    let header = read_raw_header(path)?;
    let info = info_from_raw(&header);
    let dims = &info.dims;
    // Checked: NIfTI-2 lengths are 64-bit, and their product can overflow (found by fuzzing).
    let extra = dims.iter().skip(3).try_fold(1usize, |n, &d| n.checked_mul(d));
    if dims.len() < 3 || extra != Some(1) {
        return Err(DataError::Grid {
            path: path.to_path_buf(),
            message: format!(
                "expected a 3-D volume, found dimensions {dims:?} (the model and preprocessing take one 3-D \
                 image per file; split a 4-D series into 3-D files first)"
            ),
        });
    }
    header.check_affine_fields(path)?;
    let shape = [dims[0], dims[1], dims[2]];
    let (header, mut bytes) = read_raw(path)?;
    let mut data = if header.version == 2 {
        let mut values = Vec::with_capacity(shape.iter().product());
        let (offset, n) = header.data_span(path)?;
        let (s, i) = header.scaling().unwrap_or((1.0, 0.0));
        header.for_each_value(&bytes[offset..offset + n], |v| values.push((v * s + i) as f32));
        Array3::from_shape_vec(shape.f(), values).map_err(|e| nifti_err(path, e))?.as_standard_layout().into_owned()
    } else {
        if header.scaling().is_none() && bytes.len() >= 116 {
            // `scl_slope` NaN or infinite means no scaling (NIfTI, nibabel), but the `nifti` crate
            // would multiply every voxel by it; 0.0 reads the same in either byte order.
            bytes[112..116].fill(0);
        }
        // The `nifti` crate gets the header and the voxels only (magic `n+1`, no extension flag):
        // it would parse extensions with sizes taken from the file (a 2 GiB reservation from a
        // few bytes), read the voxels from byte 352 whatever `vox_offset` says, and reserve a
        // pair's declared size before opening its .img. Found by fuzzing (`fuzz/`, target `nifti`).
        let pair;
        let voxels: &[u8] = if header.single_file {
            let (offset, n) = header.data_span(path)?;
            &bytes[offset..offset + n]
        } else {
            pair = read_pair_voxels(path, &header)?;
            &pair
        };
        let mut clean = Vec::with_capacity(352 + voxels.len());
        clean.extend_from_slice(&bytes[..344]);
        clean.extend_from_slice(b"n+1\0\0\0\0\0");
        // The crate sizes the voxels by `bitpix`, the values by `datatype`; make them agree.
        let bitpix = crate::nifti_header::bytes_per_voxel(header.datatype).unwrap_or(0) as i16 * 8;
        clean[72..74].copy_from_slice(&if header.big_endian { bitpix.to_be_bytes() } else { bitpix.to_le_bytes() });
        clean.extend_from_slice(voxels);
        let obj = InMemNiftiObject::from_reader(std::io::Cursor::new(clean)).map_err(|e| nifti_err(path, e))?;
        let arr: ArrayD<f32> = obj.into_volume().into_ndarray::<f32>().map_err(|e| nifti_err(path, e))?;
        // The reader returns the voxels in NIfTI (Fortran) order; a row-major reshape of that
        // layout is refused by ndarray, so drop the trailing unit axes in column-major order,
        // which keeps every voxel at its [i, j, k] index.
        let arr = arr
            .into_shape_with_order((ndarray::IxDyn(&shape), ndarray::Order::ColumnMajor))
            .map_err(|e| nifti_err(path, e))?
            .into_dimensionality::<Ix3>()
            .map_err(|e| nifti_err(path, e))?;
        arr.as_standard_layout().into_owned()
    };
    let mut report = LoadReport::default();
    data.iter_mut().for_each(|v| {
        if !v.is_finite() {
            *v = 0.0;
            report.non_finite_replaced += 1;
        }
    });
    Ok((Volume { data, affine: info.affine }, info, report))
}

/// What `cargo xtask inspect` shows: the header and statistics over every voxel of every volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    /// Header facts.
    pub info: NiftiInfo,
    /// Min, max, mean and non-zero count over all voxels (4-D: all volumes), scaling applied,
    /// non-finite values counted as 0.
    pub stats: VolumeStats,
    /// Number of voxels (product of all dimensions).
    pub voxels: usize,
    /// Number of NaN or infinite voxels (counted as 0 in the statistics).
    pub non_finite: usize,
}

/// Summarises any NIfTI-1 or NIfTI-2 file, of any dimensionality, without building a volume:
/// the values are streamed from the file's bytes, whose length is checked against the header
/// before they are read.
pub fn inspect_nifti(path: &Path) -> Result<Inspection> {
    check_exists(path)?;
    let (header, bytes) = read_raw(path)?;
    if !header.single_file {
        // A .hdr/.img pair: the 3-D loader knows where the .img lies.
        let (vol, info, report) = read_volume(path)?;
        let stats = volume_stats(&vol.data);
        return Ok(Inspection { info, stats, voxels: vol.data.len(), non_finite: report.non_finite_replaced });
    }
    let info = info_from_raw(&header);
    let (offset, n) = header.data_span(path)?;
    let (s, i) = header.scaling().unwrap_or((1.0, 0.0));
    let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    let (mut voxels, mut nonzero, mut non_finite) = (0usize, 0usize, 0usize);
    header.for_each_value(&bytes[offset..offset + n], |v| {
        let mut v = v * s + i;
        if !v.is_finite() {
            v = 0.0;
            non_finite += 1;
        }
        min = min.min(v);
        max = max.max(v);
        sum += v;
        voxels += 1;
        if v != 0.0 {
            nonzero += 1;
        }
    });
    let stats = VolumeStats { min, max, mean: sum / voxels.max(1) as f64, nonzero };
    Ok(Inspection { info, stats, voxels, non_finite })
}

/// Reads a volume and checks it lies on `expected` (shape and affine within 1e-3 mm).
pub fn read_volume_on_grid(path: &Path, expected: &Grid) -> Result<(Volume, LoadReport)> {
    let (v, _, r) = read_volume(path)?;
    v.grid().check_matches(expected, path, 1e-3)?;
    Ok((v, r))
}

/// The on-disk element type for [`write_volume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputType {
    /// Unsigned 8-bit (values rounded and clamped).
    Uint8,
    /// Signed 16-bit (values rounded and clamped).
    Int16,
    /// Signed 32-bit (values rounded and clamped).
    Int32,
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
}

/// Byte order of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ByteOrder {
    /// The machine's own order.
    #[default]
    Native,
    /// Little-endian.
    Little,
    /// Big-endian.
    Big,
}

fn header_for(affine: &Affine, byte_order: ByteOrder, description: &str) -> NiftiHeader {
    let mut h = NiftiHeader::default();
    let m = &affine.0;
    h.srow_x = m[0].map(|v| v as f32);
    h.srow_y = m[1].map(|v| v as f32);
    h.srow_z = m[2].map(|v| v as f32);
    h.sform_code = 2; // aligned to another file / template
    let vs = affine.voxel_sizes();
    h.pixdim = [1.0, vs[0] as f32, vs[1] as f32, vs[2] as f32, 1.0, 1.0, 1.0, 1.0];
    // For axis-aligned affines with positive scales also set an equivalent qform.
    let diag = (0..3).all(|r| (0..3).all(|c| r == c || m[r][c] == 0.0)) && (0..3).all(|a| m[a][a] > 0.0);
    if diag {
        h.qform_code = 2;
        h.quatern_b = 0.0;
        h.quatern_c = 0.0;
        h.quatern_d = 0.0;
        h.quatern_x = m[0][3] as f32;
        h.quatern_y = m[1][3] as f32;
        h.quatern_z = m[2][3] as f32;
    } else {
        h.qform_code = 0;
    }
    h.xyzt_units = 2 | 8; // mm, s
    let mut d = description.as_bytes().to_vec();
    d.truncate(79);
    d.resize(80, 0);
    h.descrip = d;
    h.endianness = match byte_order {
        ByteOrder::Native => nifti::Endianness::native(),
        ByteOrder::Little => nifti::Endianness::Little,
        ByteOrder::Big => nifti::Endianness::Big,
    };
    h
}

/// Checks that `path` names a single-file NIfTI output: a name ending in `.nii` or `.nii.gz`.
/// The NIfTI writer picks its format from the ending and would write another (`.hdr` + `.img`
/// pairs, or a `.nii` beside a name without one), so anything else is refused before any work.
pub fn check_nifti_output_path(path: &Path) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        Ok(())
    } else {
        Err(DataError::OutputName {
            path: path.to_path_buf(),
            message: "not a NIfTI output file name: expected a name ending in .nii or .nii.gz".into(),
        })
    }
}

/// Writes any array of a NIfTI element type with the given affine, atomically, to a `.nii` or
/// `.nii.gz` file ([`check_nifti_output_path`]).
pub fn write_array<T>(path: &Path, data: &Array3<T>, affine: &Affine, byte_order: ByteOrder) -> Result<()>
where
    T: nifti::DataElement + bytemuck::Pod,
{
    check_nifti_output_path(path)?;
    let header = header_for(affine, byte_order, "adni-relevance");
    write_atomically(path, |tmp| {
        // The writer names its file by replacing `tmp`'s extension, which also drops an earlier
        // dot's part ("sub.01.nii" → "sub.nii"): write where it writes, then move that onto `tmp`.
        let mut written = tmp.to_path_buf();
        written.set_extension("");
        let gz = tmp.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".gz"));
        let written = written.with_extension(if gz { "nii.gz" } else { "nii" });
        let result =
            nifti::writer::WriterOptions::new(tmp).reference_header(&header).write_nifti(data).map_err(|e| match e {
                // A full disk, a read-only folder, a file-size limit: name the file, say the cause.
                nifti::NiftiError::Io(io) => DataError::io(path, io),
                e => nifti_err(path, e),
            });
        if written != tmp {
            match &result {
                Ok(()) => std::fs::rename(&written, tmp).map_err(|e| DataError::io(path, e))?,
                Err(_) => {
                    let _ = std::fs::remove_file(&written);
                }
            }
        }
        result
    })
}

/// Writes a volume as NIfTI-1 (`.nii` or `.nii.gz` by extension) with its affine, atomically,
/// converting to `dtype` (integers are rounded and clamped to the type's range).
pub fn write_volume(path: &Path, vol: &Volume, dtype: OutputType) -> Result<()> {
    write_volume_with(path, vol, dtype, ByteOrder::Native)
}

/// As [`write_volume`], with a chosen byte order.
pub fn write_volume_with(path: &Path, vol: &Volume, dtype: OutputType, byte_order: ByteOrder) -> Result<()> {
    match dtype {
        OutputType::Float32 => write_array(path, &vol.data, &vol.affine, byte_order),
        OutputType::Float64 => write_array(path, &vol.data.mapv(|v| v as f64), &vol.affine, byte_order),
        OutputType::Uint8 => {
            write_array(path, &vol.data.mapv(|v| v.round().clamp(0.0, 255.0) as u8), &vol.affine, byte_order)
        }
        OutputType::Int16 => write_array(
            path,
            &vol.data.mapv(|v| v.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16),
            &vol.affine,
            byte_order,
        ),
        OutputType::Int32 => write_array(
            path,
            &vol.data.mapv(|v| (v.round() as f64).clamp(i32::MIN as f64, i32::MAX as f64) as i32),
            &vol.affine,
            byte_order,
        ),
    }
}

/// Writes an integer label volume (e.g. an atlas placed on a new grid) as int32.
pub fn write_labels(path: &Path, labels: &Array3<i32>, affine: &Affine) -> Result<()> {
    write_array(path, labels, affine, ByteOrder::Native)
}

/// Reads an integer label volume (any datatype; values are rounded to the nearest integer).
pub fn read_labels(path: &Path) -> Result<(Array3<i32>, Affine)> {
    let (v, _, _) = read_volume(path)?;
    Ok((v.data.mapv(|x| x.round() as i32), v.affine))
}

/// Summary statistics of a volume (finite values only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VolumeStats {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean value.
    pub mean: f64,
    /// Number of non-zero voxels.
    pub nonzero: usize,
}

/// Min, max, mean and non-zero count of a volume.
pub fn volume_stats(data: &Array3<f32>) -> VolumeStats {
    let mut min = f64::INFINITY;
    let mut max = f64::NEG_INFINITY;
    let mut sum = 0.0f64;
    let mut nonzero = 0;
    for &v in data.iter() {
        let v = v as f64;
        min = min.min(v);
        max = max.max(v);
        sum += v;
        if v != 0.0 {
            nonzero += 1;
        }
    }
    let n = data.len().max(1) as f64;
    VolumeStats { min, max, mean: sum / n, nonzero }
}
