//! NIfTI-1 and NIfTI-2 headers parsed by hand, either byte order, with a size budget.
//!
//! The `nifti` crate reads NIfTI-1 only and allocates the voxel buffer that a header declares
//! before it knows whether the file holds that many bytes. This module reads the header alone,
//! works out how many bytes the voxels need (checked arithmetic), and compares that with the
//! bytes the file really holds *before* reading or allocating the voxel data. `.nii.gz` files go
//! through the same `flate2` gzip decoder the `nifti` crate uses (chosen by the `.gz` suffix).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use crate::error::{DataError, Result};

/// Bytes of a NIfTI-1 header.
const NIFTI1_HEADER: usize = 348;
/// Bytes of a NIfTI-2 header.
const NIFTI2_HEADER: usize = 540;
/// Bytes read before parsing: the larger header plus the 4-byte extension flag.
const HEAD_BYTES: usize = NIFTI2_HEADER + 4;
/// The most a `.nii.gz` may declare (offset + voxel bytes), 8 GiB: a 1 mm float64 brain is 68 MB,
/// and the decompressed length cannot be checked against anything before it is read.
pub const MAX_GZ_DATA_BYTES: u64 = 8 << 30;

/// A NIfTI-1 or NIfTI-2 header, widened to NIfTI-2's types.
#[derive(Debug, Clone, PartialEq)]
pub struct RawHeader {
    /// 1 or 2.
    pub version: u8,
    /// True when the header (and the voxels) are big-endian.
    pub big_endian: bool,
    /// True for a single `.nii` file (`n+1`, `n+2`); false for a `.hdr`/`.img` pair.
    pub single_file: bool,
    /// `dim[1..=dim[0]]`, each at least 1.
    pub dims: Vec<usize>,
    /// The `datatype` code.
    pub datatype: i16,
    /// `pixdim[0..8]` (`pixdim[0]` holds qfac).
    pub pixdim: [f64; 8],
    /// `vox_offset` as stored.
    pub vox_offset: f64,
    /// `scl_slope` as stored.
    pub scl_slope: f64,
    /// `scl_inter` as stored.
    pub scl_inter: f64,
    /// `qform_code`.
    pub qform_code: i32,
    /// `sform_code`.
    pub sform_code: i32,
    /// `quatern_b`, `quatern_c`, `quatern_d`.
    pub quatern: [f64; 3],
    /// `qoffset_x`, `qoffset_y`, `qoffset_z`.
    pub qoffset: [f64; 3],
    /// `srow_x`, `srow_y`, `srow_z`.
    pub srow: [[f64; 4]; 3],
    /// The `descrip` field up to its first NUL.
    pub description: String,
}

/// Bytes per voxel of a datatype whose values can be read as numbers, or `None`.
pub fn bytes_per_voxel(datatype: i16) -> Option<usize> {
    match datatype {
        2 | 256 => Some(1),
        4 | 512 => Some(2),
        8 | 16 | 768 => Some(4),
        64 | 1024 | 1280 => Some(8),
        _ => None,
    }
}

fn header_err(path: &Path, message: String) -> DataError {
    DataError::Grid { path: path.to_path_buf(), message }
}

/// Little helper that reads fixed-width fields in the header's byte order.
struct Fields<'a> {
    b: &'a [u8],
    big: bool,
}

impl Fields<'_> {
    fn take<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[at..at + N]);
        if self.big {
            a.reverse();
        }
        a
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.take(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.take(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.take(at))
    }
    fn f32(&self, at: usize) -> f64 {
        f32::from_le_bytes(self.take(at)) as f64
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.take(at))
    }
}

/// Parses the header at the start of `head` (the first bytes of the decompressed file).
pub fn parse_header(path: &Path, head: &[u8]) -> Result<RawHeader> {
    let not_nifti = |message: String| DataError::Nifti { path: path.to_path_buf(), message };
    if head.len() < 4 {
        return Err(not_nifti(format!("file holds only {} bytes, too short for a NIfTI header", head.len())));
    }
    let first = [head[0], head[1], head[2], head[3]];
    let (version, big) = match (i32::from_le_bytes(first), i32::from_be_bytes(first)) {
        (348, _) => (1, false),
        (_, 348) => (1, true),
        (540, _) => (2, false),
        (_, 540) => (2, true),
        (le, _) => {
            return Err(not_nifti(format!(
                "header field `sizeof_hdr` is {le}, expected 348 (NIfTI-1) or 540 (NIfTI-2)"
            )));
        }
    };
    let size = if version == 1 { NIFTI1_HEADER } else { NIFTI2_HEADER };
    if head.len() < size {
        return Err(not_nifti(format!(
            "file ends after {} bytes, inside the {size}-byte NIfTI-{version} header",
            head.len()
        )));
    }
    let f = Fields { b: head, big };
    let (magic, single_file) = if version == 1 {
        let m = &head[344..348];
        (m == b"n+1\0" || m == b"ni1\0", m == b"n+1\0")
    } else {
        let m = &head[4..12];
        (m == b"n+2\0\r\n\x1a\n" || m == b"ni2\0\r\n\x1a\n", m == b"n+2\0\r\n\x1a\n")
    };
    if !magic {
        return Err(not_nifti(format!("field `magic` is not the NIfTI-{version} magic")));
    }
    let dim: Vec<i64> = if version == 1 {
        (0..8).map(|i| f.i16(40 + 2 * i) as i64).collect()
    } else {
        (0..8).map(|i| f.i64(16 + 8 * i)).collect()
    };
    if !(1..=7).contains(&dim[0]) {
        return Err(header_err(path, format!("header field `dim[0]` is {}, expected 1 to 7", dim[0])));
    }
    let mut dims = Vec::with_capacity(7);
    for (i, &d) in dim.iter().enumerate().take(dim[0] as usize + 1).skip(1) {
        let d = usize::try_from(d)
            .ok()
            .filter(|&d| d >= 1)
            .ok_or_else(|| header_err(path, format!("header field `dim[{i}]` is {d}, expected a positive length")))?;
        dims.push(d);
    }
    let h = if version == 1 {
        RawHeader {
            version,
            big_endian: big,
            single_file,
            dims,
            datatype: f.i16(70),
            pixdim: std::array::from_fn(|i| f.f32(76 + 4 * i)),
            vox_offset: f.f32(108),
            scl_slope: f.f32(112),
            scl_inter: f.f32(116),
            qform_code: f.i16(252) as i32,
            sform_code: f.i16(254) as i32,
            quatern: std::array::from_fn(|i| f.f32(256 + 4 * i)),
            qoffset: std::array::from_fn(|i| f.f32(268 + 4 * i)),
            srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f32(280 + 16 * r + 4 * c))),
            description: c_string(&head[148..228]),
        }
    } else {
        RawHeader {
            version,
            big_endian: big,
            single_file,
            dims,
            datatype: f.i16(12),
            pixdim: std::array::from_fn(|i| f.f64(104 + 8 * i)),
            vox_offset: f.i64(168) as f64,
            scl_slope: f.f64(176),
            scl_inter: f.f64(184),
            qform_code: f.i32(344),
            sform_code: f.i32(348),
            quatern: std::array::from_fn(|i| f.f64(352 + 8 * i)),
            qoffset: std::array::from_fn(|i| f.f64(376 + 8 * i)),
            srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f64(400 + 32 * r + 8 * c))),
            description: c_string(&head[240..320]),
        }
    };
    // nibabel: a valid slope with a NaN or infinite intercept is an error ("Valid slope but invalid
    // intercept"); a slope of 0 or NaN means no scaling, whatever the intercept.
    if h.scaling().is_some() && !h.scl_inter.is_finite() {
        return Err(header_err(
            path,
            format!(
                "header field `scl_inter` is {} while `scl_slope` is {}: the scaling is undefined (expected a finite intercept)",
                h.scl_inter, h.scl_slope
            ),
        ));
    }
    Ok(h)
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim().to_string()
}

impl RawHeader {
    /// Number of voxels over all dimensions, refused when it overflows.
    pub fn voxel_count(&self, path: &Path) -> Result<usize> {
        self.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| {
            header_err(path, format!("header field `dim` declares {:?} voxels, more than can be addressed", self.dims))
        })
    }

    /// Where the voxels start and how many bytes they need, in checked arithmetic; a single file's
    /// offset below the header and extension flag is read as that minimum, as nibabel does.
    pub fn data_span(&self, path: &Path) -> Result<(usize, usize)> {
        let bpv = bytes_per_voxel(self.datatype).ok_or_else(|| {
            header_err(
                path,
                format!(
                    "header field `datatype` is {} ({}), which cannot be read as numbers",
                    self.datatype,
                    crate::volume::datatype_name(self.datatype)
                ),
            )
        })?;
        let n = self.voxel_count(path)?;
        let bytes = n.checked_mul(bpv).ok_or_else(|| {
            header_err(path, format!("header field `dim` declares {:?} voxels of {bpv} bytes, too many", self.dims))
        })?;
        let o = self.vox_offset;
        if !o.is_finite() || o < 0.0 || o > usize::MAX as f64 / 2.0 {
            return Err(header_err(path, format!("header field `vox_offset` is {o}, expected a non-negative offset")));
        }
        let min = if self.version == 1 { NIFTI1_HEADER + 4 } else { NIFTI2_HEADER + 4 };
        let offset = if self.single_file { (o as usize).max(min) } else { o as usize };
        Ok((offset, bytes))
    }

    /// Refuses a header whose voxels do not fit in `available` bytes of (decompressed) file.
    pub fn check_fits(&self, path: &Path, available: u64) -> Result<(usize, usize)> {
        let (offset, bytes) = self.data_span(path)?;
        if offset as u64 > available {
            return Err(header_err(
                path,
                format!("header field `vox_offset` is {offset}, beyond the end of the data ({available} bytes)"),
            ));
        }
        if bytes as u64 > available - offset as u64 {
            return Err(header_err(
                path,
                format!(
                    "header field `dim` {:?} declares {bytes} bytes of voxels from vox_offset {offset}, \
                     but only {} bytes follow (truncated file or wrong header)",
                    self.dims,
                    available - offset as u64
                ),
            ));
        }
        Ok((offset, bytes))
    }

    /// Refuses a NaN or infinite value in the fields the affine is built from: `srow_*` when
    /// `sform_code > 0`, else the quaternion, offsets and `pixdim[1..=3]` when `qform_code > 0`,
    /// else `pixdim[1..=3]`. A NaN affine would pass every grid check unnoticed.
    pub fn check_affine_fields(&self, path: &Path) -> Result<()> {
        let bad = |field: String, v: f64, source: &str| {
            header_err(
                path,
                format!(
                    "header field `{field}` is {v}, expected a finite {} (the affine comes from {source}, which needs it)",
                    if field.starts_with("pixdim") { "voxel size" } else { "number" }
                ),
            )
        };
        let pixdim = |source: &str| match (1..=3).find(|&i| !self.pixdim[i].is_finite()) {
            Some(i) => Err(bad(format!("pixdim[{i}]"), self.pixdim[i], source)),
            None => Ok(()),
        };
        if self.sform_code > 0 {
            for (r, row) in self.srow.iter().enumerate() {
                if let Some(c) = (0..4).find(|&c| !row[c].is_finite()) {
                    return Err(bad(format!("srow_{}[{c}]", ["x", "y", "z"][r]), row[c], "the sform"));
                }
            }
            return Ok(());
        }
        if self.qform_code > 0 {
            let named =
                [("quatern_b", self.quatern[0]), ("quatern_c", self.quatern[1]), ("quatern_d", self.quatern[2])];
            let offsets =
                [("qoffset_x", self.qoffset[0]), ("qoffset_y", self.qoffset[1]), ("qoffset_z", self.qoffset[2])];
            if let Some((field, v)) = named.into_iter().chain(offsets).find(|(_, v)| !v.is_finite()) {
                return Err(bad(field.to_string(), v, "the qform"));
            }
            return pixdim("the qform");
        }
        pixdim("pixdim")
    }

    /// The scaling to apply: `scl_slope` 0 or not finite means none (NIfTI and nibabel).
    pub fn scaling(&self) -> Option<(f64, f64)> {
        let s = self.scl_slope;
        if s == 0.0 || !s.is_finite() {
            return None;
        }
        let i = if self.scl_inter.is_finite() { self.scl_inter } else { 0.0 };
        Some((s, i))
    }

    /// Calls `f` with each stored voxel value (unscaled), in file (Fortran) order.
    pub fn for_each_value(&self, data: &[u8], mut f: impl FnMut(f64)) {
        let big = self.big_endian;
        macro_rules! each {
            ($t:ty, $n:expr) => {
                for c in data.chunks_exact($n) {
                    let a: [u8; $n] = c.try_into().expect("chunk of the datatype's width");
                    f(if big { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) } as f64);
                }
            };
        }
        match self.datatype {
            2 => each!(u8, 1),
            256 => each!(i8, 1),
            4 => each!(i16, 2),
            512 => each!(u16, 2),
            8 => each!(i32, 4),
            768 => each!(u32, 4),
            16 => each!(f32, 4),
            64 => each!(f64, 8),
            1024 => each!(i64, 8),
            1280 => each!(u64, 8),
            _ => {}
        }
    }
}

fn open_stream(path: &Path) -> Result<Box<dyn Read>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let gz = path.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".gz"));
    Ok(if gz { Box::new(GzDecoder::new(BufReader::new(file))) } else { Box::new(BufReader::new(file)) })
}

fn read_err(path: &Path, e: std::io::Error) -> DataError {
    let gz = path.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".gz"));
    let message = if gz {
        format!("cannot decompress: {e} (the .gz file is truncated, damaged or not gzip-compressed)")
    } else {
        e.to_string()
    };
    DataError::Nifti { path: path.to_path_buf(), message }
}

/// Reads and parses only the header.
pub fn read_raw_header(path: &Path) -> Result<RawHeader> {
    let mut head = Vec::with_capacity(HEAD_BYTES);
    open_stream(path)?.take(HEAD_BYTES as u64).read_to_end(&mut head).map_err(|e| read_err(path, e))?;
    parse_header(path, &head)
}

/// The voxel bytes of a `.hdr`/`.img` pair: the `.img.gz` or else the `.img` beside `path` (where
/// the `nifti` crate looks), under the same size budget as [`read_raw`]: the declared
/// `vox_offset` + voxel bytes checked against the `.img`'s length, or capped for `.img.gz`.
pub fn read_pair_voxels(path: &Path, h: &RawHeader) -> Result<Vec<u8>> {
    let mut base = path.to_path_buf();
    if base.extension().is_some_and(|e| e == "gz") {
        base.set_extension("");
    }
    let img_gz = base.with_extension("img.gz");
    let img = if img_gz.exists() { img_gz } else { base.with_extension("img") };
    if !img.exists() {
        return Err(DataError::Nifti {
            path: path.to_path_buf(),
            message: "Volume file not found (a `ni1` header reads its voxels from the .img file beside it)".into(),
        });
    }
    let (offset, n) = h.data_span(&img)?;
    let end = offset
        .checked_add(n)
        .ok_or_else(|| header_err(&img, "header field `vox_offset` plus the voxel bytes overflow".into()))?;
    if img.extension().is_some_and(|e| e == "gz") {
        if end as u64 > MAX_GZ_DATA_BYTES {
            return Err(header_err(
                &img,
                format!("header declares {end} bytes of voxels, more than the 8 GiB a .gz may decompress to"),
            ));
        }
    } else {
        let len = std::fs::metadata(&img).map_err(|e| DataError::io(&img, e))?.len();
        h.check_fits(&img, len)?;
    }
    let mut bytes = Vec::new();
    open_stream(&img)?.take(end as u64).read_to_end(&mut bytes).map_err(|e| read_err(&img, e))?;
    h.check_fits(&img, bytes.len() as u64)?;
    Ok(bytes.split_off(offset))
}

/// Reads the header and, for a single file, the bytes up to the end of the voxels. The voxel
/// byte count the header declares is checked against the file's real length (plain files) or
/// grows only as decompressed data arrives (`.gz`), so a lying header allocates nothing large.
/// For a `.hdr`/`.img` pair only the header bytes come back.
///
/// Size budget: a plain file's declared `vox_offset` + voxel bytes must fit in its real length,
/// checked before anything is read. A `.gz` file's decompressed length is unknown up front, so its
/// declared end may not exceed [`MAX_GZ_DATA_BYTES`] and the buffer grows only with the data that
/// really decompresses (`take(declared end)`), never pre-allocated from the header.
pub fn read_raw(path: &Path) -> Result<(RawHeader, Vec<u8>)> {
    let mut stream = open_stream(path)?;
    let mut bytes = Vec::with_capacity(HEAD_BYTES);
    stream.by_ref().take(HEAD_BYTES as u64).read_to_end(&mut bytes).map_err(|e| read_err(path, e))?;
    let h = parse_header(path, &bytes)?;
    if !h.single_file {
        return Ok((h, bytes));
    }
    let (offset, n) = h.data_span(path)?;
    let is_gz = path.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".gz"));
    if !is_gz {
        let len = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?.len();
        h.check_fits(path, len)?;
    }
    let end = offset
        .checked_add(n)
        .ok_or_else(|| header_err(path, "header field `vox_offset` plus the voxel bytes overflow".into()))?;
    if is_gz && offset as u64 > MAX_GZ_DATA_BYTES {
        return Err(header_err(
            path,
            format!("header field `vox_offset` is {offset}, beyond the 8 GiB a .nii.gz may decompress to"),
        ));
    }
    if is_gz && end as u64 > MAX_GZ_DATA_BYTES {
        return Err(header_err(
            path,
            format!(
                "header field `dim` {:?} declares {end} bytes of header and voxels, more than the \
                 {MAX_GZ_DATA_BYTES} bytes (8 GiB) a .nii.gz may decompress to",
                h.dims
            ),
        ));
    }
    let rest = end.saturating_sub(bytes.len()) as u64;
    stream.take(rest).read_to_end(&mut bytes).map_err(|e| read_err(path, e))?;
    h.check_fits(path, bytes.len() as u64)?;
    bytes.truncate(end);
    Ok((h, bytes))
}
