//! The table of bad inputs (RELIABILITY.md), data readers: NIfTI volumes, ADNI tables and atlas
//! label tables. Each test builds one valid file, breaks one thing, and asserts the exact message
//! the user sees (the file, the field / row / line, what was expected) and that the reader
//! returned an error instead of panicking. The messages are printed as `ROW | …` lines
//! (`--nocapture`), which is how the table in RELIABILITY.md was filled.

mod common;

use std::fmt::Debug;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use adni_data::atlas::{load_label_atlas, read_aal_table, read_cerebra_table, read_label_table, read_label_volume};
use adni_data::table::read_adni_table;
use adni_data::volume::{inspect_nifti, read_volume};

use common::write_maybe_gz;

// ------------------------------------------------------------------ helpers

/// Runs `f`, failing the test (with `what`) if it panics instead of returning.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| panic!("{what}: the reader panicked"))
}

/// The message of the error `f` returns, with the temporary folder written `<tmp>`; fails the
/// test when `f` panics or succeeds.
fn refused<T: Debug, E: std::fmt::Display>(dir: &Path, f: impl FnOnce() -> Result<T, E>) -> String {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    match no_panic(&test, f) {
        Ok(v) => panic!("{test}: accepted a bad input: {v:?}"),
        Err(e) => {
            let msg = e.to_string().replace(&dir.display().to_string(), "<tmp>");
            eprintln!("ROW | {test} | {msg}");
            msg
        }
    }
}

/// Asserts that `f` fails with exactly `want` (temporary folder written `<tmp>`).
fn assert_refused<T: Debug, E: std::fmt::Display>(dir: &Path, want: &str, f: impl FnOnce() -> Result<T, E>) {
    assert_eq!(refused(dir, f), want);
}

// ------------------------------------------------------------------ NIfTI fixtures

fn put(b: &mut [u8], at: usize, le: &[u8]) {
    b[at..at + le.len()].copy_from_slice(le);
}

/// A valid little-endian single-file NIfTI-1 image: 2×3×4 int16 voxels 0..24 (file order),
/// pixdim 2 mm, `scl_slope` 1, an sform (diagonal 2, offset (−2, −3, −4)), no qform.
fn nifti1() -> Vec<u8> {
    let mut b = vec![0u8; 352];
    put(&mut b, 0, &348i32.to_le_bytes());
    for (i, d) in [3i16, 2, 3, 4, 1, 1, 1, 1].iter().enumerate() {
        put(&mut b, 40 + 2 * i, &d.to_le_bytes());
    }
    put(&mut b, 70, &4i16.to_le_bytes()); // datatype int16
    put(&mut b, 72, &16i16.to_le_bytes()); // bitpix
    for (i, p) in [1.0f32, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0].iter().enumerate() {
        put(&mut b, 76 + 4 * i, &p.to_le_bytes());
    }
    put(&mut b, 108, &352.0f32.to_le_bytes()); // vox_offset
    put(&mut b, 112, &1.0f32.to_le_bytes()); // scl_slope
    put(&mut b, 254, &1i16.to_le_bytes()); // sform_code
    let srow = [[2.0f32, 0.0, 0.0, -2.0], [0.0, 2.0, 0.0, -3.0], [0.0, 0.0, 2.0, -4.0]];
    for (r, row) in srow.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            put(&mut b, 280 + 16 * r + 4 * c, &v.to_le_bytes());
        }
    }
    put(&mut b, 344, b"n+1\0");
    for v in 0..24i16 {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

/// The valid NIfTI-1 image with a qform (code 1, identity rotation) instead of the sform.
fn nifti1_qform() -> Vec<u8> {
    let mut b = nifti1();
    put(&mut b, 252, &1i16.to_le_bytes()); // qform_code
    put(&mut b, 254, &0i16.to_le_bytes()); // sform_code
    b
}

fn set_i16(b: &mut [u8], at: usize, v: i16) {
    put(b, at, &v.to_le_bytes());
}

fn set_f32(b: &mut [u8], at: usize, v: f32) {
    put(b, at, &v.to_le_bytes());
}

/// A valid little-endian single-file NIfTI-2 image: 2×3×4 int16 voxels, sform diagonal 2.
fn nifti2() -> Vec<u8> {
    let mut b = vec![0u8; 544];
    put(&mut b, 0, &540i32.to_le_bytes());
    put(&mut b, 4, b"n+2\0\r\n\x1a\n");
    put(&mut b, 12, &4i16.to_le_bytes());
    put(&mut b, 14, &16i16.to_le_bytes());
    for (i, d) in [3i64, 2, 3, 4, 1, 1, 1, 1].iter().enumerate() {
        put(&mut b, 16 + 8 * i, &d.to_le_bytes());
    }
    for (i, p) in [1.0f64, 2.0, 2.0, 2.0].iter().enumerate() {
        put(&mut b, 104 + 8 * i, &p.to_le_bytes());
    }
    put(&mut b, 168, &544i64.to_le_bytes());
    put(&mut b, 176, &1.0f64.to_le_bytes());
    put(&mut b, 348, &1i32.to_le_bytes());
    for r in 0..3 {
        put(&mut b, 400 + 32 * r + 8 * r, &2.0f64.to_le_bytes());
    }
    for v in 0..24i16 {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    write_maybe_gz(&p, bytes);
    p
}

#[test]
fn the_valid_fixtures_read() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in
        [("v1.nii", nifti1()), ("v1.nii.gz", nifti1()), ("q.nii", nifti1_qform()), ("v2.nii", nifti2())]
    {
        let p = write_file(dir.path(), name, &bytes);
        let (vol, _, report) = read_volume(&p).unwrap();
        assert_eq!(vol.data.shape(), &[2, 3, 4], "{name}");
        assert_eq!(vol.data[[1, 0, 0]], 1.0, "{name}: file order is Fortran order");
        assert_eq!(vol.affine.voxel_sizes(), [2.0; 3], "{name}");
        assert_eq!(report.non_finite_replaced, 0);
        assert_eq!(inspect_nifti(&p).unwrap().voxels, 24);
    }
}

// ------------------------------------------------------------------ NIfTI: the file

#[test]
fn nifti_truncated_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_file(dir.path(), "full.nii.gz", &nifti1());
    let bytes = fs::read(&good).unwrap();
    let p = dir.path().join("cut.nii.gz");
    fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let want = "<tmp>/cut.nii.gz: not a readable NIfTI-1 or NIfTI-2 file: cannot decompress: incomplete deflate \
                stream (the .gz file is truncated, damaged or not gzip-compressed)";
    assert_refused(dir.path(), want, || read_volume(&p));
    assert_refused(dir.path(), want, || inspect_nifti(&p));
}

#[test]
fn nifti_gz_name_but_not_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plain.nii.gz");
    fs::write(&p, nifti1()).unwrap();
    let want = "<tmp>/plain.nii.gz: not a readable NIfTI-1 or NIfTI-2 file: cannot decompress: invalid gzip header \
                (the .gz file is truncated, damaged or not gzip-compressed)";
    assert_refused(dir.path(), want, || read_volume(&p));
}

#[test]
fn nifti_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "empty.nii", &[]);
    let want = "<tmp>/empty.nii: not a readable NIfTI-1 or NIfTI-2 file: file holds only 0 bytes, too short for a NIfTI header";
    assert_refused(dir.path(), want, || read_volume(&p));
}

#[test]
fn nifti_text_file_wrong_sizeof_hdr() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "notes.nii", b"this is a text file, not an image\n");
    let want = "<tmp>/notes.nii: not a readable NIfTI-1 or NIfTI-2 file: header field `sizeof_hdr` is 1936287860, \
                expected 348 (NIfTI-1) or 540 (NIfTI-2)";
    assert_refused(dir.path(), want, || read_volume(&p));
}

#[test]
fn nifti_file_ends_inside_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "short.nii", &nifti1()[..200]);
    let want = "<tmp>/short.nii: not a readable NIfTI-1 or NIfTI-2 file: file ends after 200 bytes, inside the \
                348-byte NIfTI-1 header";
    assert_refused(dir.path(), want, || read_volume(&p));
}

#[test]
fn nifti_wrong_magic() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    put(&mut b, 344, b"n+2\0");
    let p = write_file(dir.path(), "magic.nii", &b);
    let want = "<tmp>/magic.nii: not a readable NIfTI-1 or NIfTI-2 file: field `magic` is not the NIfTI-1 magic";
    assert_refused(dir.path(), want, || read_volume(&p));
    assert_refused(dir.path(), want, || inspect_nifti(&p));
}

#[test]
fn nifti_voxels_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let b = nifti1();
    let p = write_file(dir.path(), "cut.nii", &b[..b.len() - 10]);
    let want = "<tmp>/cut.nii: header field `dim` [2, 3, 4] declares 48 bytes of voxels from vox_offset 352, but \
                only 38 bytes follow (truncated file or wrong header)";
    assert_refused(dir.path(), want, || read_volume(&p));
    assert_refused(dir.path(), want, || inspect_nifti(&p));
}

#[test]
fn nifti_vox_offset_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_f32(&mut b, 108, 4096.0);
    let p = write_file(dir.path(), "far.nii", &b);
    let want = "<tmp>/far.nii: header field `vox_offset` is 4096, beyond the end of the data (400 bytes)";
    assert_refused(dir.path(), want, || read_volume(&p));
    assert_refused(dir.path(), want, || inspect_nifti(&p));
}

#[test]
fn nifti_vox_offset_nan() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_f32(&mut b, 108, f32::NAN);
    let p = write_file(dir.path(), "nan_offset.nii", &b);
    let want = "<tmp>/nan_offset.nii: header field `vox_offset` is NaN, expected a non-negative offset";
    assert_refused(dir.path(), want, || read_volume(&p));
}

#[test]
fn nifti_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("absent.nii.gz");
    assert_refused(dir.path(), "<tmp>/absent.nii.gz: file not found", || read_volume(&p));
}

// ------------------------------------------------------------------ NIfTI: the header fields

#[test]
fn nifti_dim0_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_i16(&mut b, 40, 0);
    let p = write_file(dir.path(), "dim0.nii", &b);
    let want = "<tmp>/dim0.nii: header field `dim[0]` is 0, expected 1 to 7";
    assert_refused(dir.path(), want, || read_volume(&p));
    assert_refused(dir.path(), want, || inspect_nifti(&p));
}

#[test]
fn nifti_dim0_eight() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_i16(&mut b, 40, 8);
    let p = write_file(dir.path(), "dim8.nii", &b);
    assert_refused(dir.path(), "<tmp>/dim8.nii: header field `dim[0]` is 8, expected 1 to 7", || read_volume(&p));
}

#[test]
fn nifti_dim_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_i16(&mut b, 44, 0);
    let p = write_file(dir.path(), "dim2.nii", &b);
    let want = "<tmp>/dim2.nii: header field `dim[2]` is 0, expected a positive length";
    assert_refused(dir.path(), want, || read_volume(&p));
}

#[test]
fn nifti_dim_negative() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_i16(&mut b, 42, -5);
    let p = write_file(dir.path(), "neg.nii", &b);
    let want = "<tmp>/neg.nii: header field `dim[1]` is -5, expected a positive length";
    assert_refused(dir.path(), want, || read_volume(&p));
    assert_refused(dir.path(), want, || inspect_nifti(&p));
}

#[test]
fn nifti2_dim_negative() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti2();
    put(&mut b, 40, &(-1i64).to_le_bytes());
    let p = write_file(dir.path(), "neg2.nii.gz", &b);
    let want = "<tmp>/neg2.nii.gz: header field `dim[3]` is -1, expected a positive length";
    assert_refused(dir.path(), want, || read_volume(&p));
}

#[test]
fn nifti_dims_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti2();
    put(&mut b, 24, &i64::MAX.to_le_bytes());
    put(&mut b, 32, &i64::MAX.to_le_bytes());
    let p = write_file(dir.path(), "huge.nii", &b);
    let want = "<tmp>/huge.nii: header field `dim` declares [9223372036854775807, 9223372036854775807, 4] voxels, \
                more than can be addressed";
    assert_refused(dir.path(), want, || read_volume(&p));
}

#[test]
fn nifti_dims_larger_than_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    for (i, d) in [1000i16, 1000, 1000].iter().enumerate() {
        set_i16(&mut b, 42 + 2 * i, *d);
    }
    let p = write_file(dir.path(), "liar.nii.gz", &b);
    let want = "<tmp>/liar.nii.gz: header field `dim` [1000, 1000, 1000] declares 2000000000 bytes of voxels from \
                vox_offset 352, but only 48 bytes follow (truncated file or wrong header)";
    assert_refused(dir.path(), want, || read_volume(&p));
}

#[test]
fn nifti_unknown_datatype() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_i16(&mut b, 70, 17);
    let p = write_file(dir.path(), "dtype.nii", &b);
    let want = "<tmp>/dtype.nii: header field `datatype` is 17 (unknown (17)), which cannot be read as numbers";
    assert_refused(dir.path(), want, || read_volume(&p));
    assert_refused(dir.path(), want, || inspect_nifti(&p));
}

#[test]
fn nifti_complex_datatype() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_i16(&mut b, 70, 32);
    let p = write_file(dir.path(), "complex.nii", &b);
    let want = "<tmp>/complex.nii: header field `datatype` is 32 (complex64), which cannot be read as numbers";
    assert_refused(dir.path(), want, || read_volume(&p));
}

#[test]
fn nifti_pixdim_nan_with_qform() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1_qform();
    set_f32(&mut b, 80, f32::NAN); // pixdim[1]
    let p = write_file(dir.path(), "pixnan.nii", &b);
    let want = "<tmp>/pixnan.nii: header field `pixdim[1]` is NaN, expected a finite voxel size (the affine comes \
                from the qform, which needs it)";
    assert_refused(dir.path(), want, || read_volume(&p));
}

#[test]
fn nifti_pixdim_inf_without_transform() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_i16(&mut b, 254, 0); // no sform, no qform: the affine comes from pixdim
    set_f32(&mut b, 88, f32::INFINITY); // pixdim[3]
    let p = write_file(dir.path(), "pixinf.nii", &b);
    let want = "<tmp>/pixinf.nii: header field `pixdim[3]` is inf, expected a finite voxel size (the affine comes \
                from pixdim, which needs it)";
    assert_refused(dir.path(), want, || read_volume(&p));
}

/// pixdim 0 under a qform: read as 1 mm, as nibabel's header check does ("pixdim[1,2,3] should be
/// non-zero; setting 0 dims to 1"), instead of a singular affine.
#[test]
fn nifti_pixdim_zero_reads_as_one_like_nibabel() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1_qform();
    set_f32(&mut b, 84, 0.0); // pixdim[2]
    let p = write_file(dir.path(), "pixzero.nii", &b);
    let (vol, _, _) = no_panic("pixdim 0", || read_volume(&p)).unwrap();
    assert_eq!(vol.affine.voxel_sizes(), [2.0, 1.0, 2.0]);
    assert!(vol.affine.inverse().is_some());
}

#[test]
fn nifti_srow_nan_with_sform() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_f32(&mut b, 296 + 12, f32::NAN); // srow_y[3]
    let p = write_file(dir.path(), "srow.nii", &b);
    let want = "<tmp>/srow.nii: header field `srow_y[3]` is NaN, expected a finite number (the affine comes from the \
                sform, which needs it)";
    assert_refused(dir.path(), want, || read_volume(&p));
}

/// `scl_slope` NaN (or 0) means "no scaling" in the NIfTI standard and in nibabel; both versions
/// read the stored values unscaled (the `nifti` crate alone would multiply every voxel by NaN).
#[test]
fn nifti_scl_slope_nan_means_no_scaling() {
    let dir = tempfile::tempdir().unwrap();
    for (name, mut b, at) in [("v1.nii", nifti1(), 112), ("v1.nii.gz", nifti1(), 112), ("v2.nii", nifti2(), 0)] {
        if at == 112 {
            set_f32(&mut b, 112, f32::NAN);
            set_f32(&mut b, 116, 5.0);
        } else {
            put(&mut b, 176, &f64::NAN.to_le_bytes());
        }
        let p = write_file(dir.path(), name, &b);
        let (vol, _, report) = no_panic(name, || read_volume(&p)).unwrap();
        assert_eq!(report.non_finite_replaced, 0, "{name}");
        assert_eq!(vol.data[[1, 2, 3]], 23.0, "{name}: unscaled");
        let stats = inspect_nifti(&p).unwrap().stats;
        assert_eq!((stats.min, stats.max), (0.0, 23.0), "{name}");
    }
}

#[test]
fn nifti_scl_slope_zero_means_no_scaling() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_f32(&mut b, 112, 0.0);
    set_f32(&mut b, 116, 5.0);
    let p = write_file(dir.path(), "slope0.nii", &b);
    let (vol, _, _) = no_panic("slope 0", || read_volume(&p)).unwrap();
    assert_eq!(vol.data[[1, 2, 3]], 23.0);
}

#[test]
fn nifti_scl_inter_nan_with_a_slope() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_f32(&mut b, 112, 2.0);
    set_f32(&mut b, 116, f32::NAN);
    let p = write_file(dir.path(), "inter.nii", &b);
    let want = "<tmp>/inter.nii: header field `scl_inter` is NaN while `scl_slope` is 2: the scaling is undefined \
                (expected a finite intercept)";
    assert_refused(dir.path(), want, || read_volume(&p));
    assert_refused(dir.path(), want, || inspect_nifti(&p));
}

#[test]
fn nifti_4d_where_3d_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_i16(&mut b, 40, 4);
    set_i16(&mut b, 46, 2); // dim[3] = 2 … file holds 2×3×2×2
    set_i16(&mut b, 48, 2); // dim[4] = 2 time points
    let p = write_file(dir.path(), "series.nii.gz", &b);
    let want = "<tmp>/series.nii.gz: expected a 3-D volume, found dimensions [2, 3, 2, 2] (the model and \
                preprocessing take one 3-D image per file; split a 4-D series into 3-D files first)";
    assert_refused(dir.path(), want, || read_volume(&p));
    // `cargo xtask inspect` summarises the same file.
    let got = no_panic("inspect 4-D", || inspect_nifti(&p)).unwrap();
    assert_eq!((got.info.dims.clone(), got.voxels), (vec![2, 3, 2, 2], 24));
}

#[test]
fn nifti_2d_where_3d_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_i16(&mut b, 40, 2);
    let p = write_file(dir.path(), "slice.nii", &b);
    let want = "<tmp>/slice.nii: expected a 3-D volume, found dimensions [2, 3] (the model and preprocessing take \
                one 3-D image per file; split a 4-D series into 3-D files first)";
    assert_refused(dir.path(), want, || read_volume(&p));
}

#[test]
fn nifti_hdr_without_its_img() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    put(&mut b, 344, b"ni1\0");
    b.truncate(348);
    let p = write_file(dir.path(), "pair.hdr", &b);
    let want = "<tmp>/pair.hdr: not a readable NIfTI-1 or NIfTI-2 file: Volume file not found (a `ni1` header reads \
                its voxels from the .img file beside it)";
    assert_refused(dir.path(), want, || read_volume(&p));
}

// ------------------------------------------------------------------ label volumes

#[test]
fn label_volume_with_fractional_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = nifti1();
    set_f32(&mut b, 112, 0.5); // scl_slope 0.5: voxel 1 reads 0.5
    let p = write_file(dir.path(), "labels.nii.gz", &b);
    let want = "<tmp>/labels.nii.gz: voxel (1, 0, 0) holds 0.5, expected a whole-number label value";
    assert_refused(dir.path(), want, || read_label_volume(&p));
}

// ------------------------------------------------------------------ ADNI tables

const HEADER_15T: &str = "RID,PTID,VISCODE,DX,EXAMDATE,Image.ID,Scan.Date,Sequence,Visit,Month_bl,Screen.Diagnosis,Study.ID,Series.ID,label_three_fold,label_CN_AD,label_CN_MCI,label_MCI_AD";

/// A valid 1.5 T table of three scans.
fn table_rows() -> Vec<String> {
    vec![
        HEADER_15T.to_string(),
        "3,011_S_0003,bl,Dementia,2005-09-12,32237,9/1/05,MPR; N3,Screening,0,AD,2120,1432,2,1,N/A,1".into(),
        "3,011_S_0003,m12,Dementia,2006-09-12,35576,9/12/06,MPR; N3,Month 12,11.97,AD,2121,1433,2,1,N/A,1".into(),
        "5,011_S_0005,bl,CN,2005-09-07,32240,9/7/05,MPR; N3,Screening,0,NL,2130,1440,0,0,0,N/A".into(),
    ]
}

/// The valid table with field `column` of data row `row` (1-based, the header is row 1) set to
/// `value`, written to `<dir>/adni.csv`.
fn table_with(dir: &Path, row: usize, column: &str, value: &str) -> PathBuf {
    let mut rows = table_rows();
    let col = HEADER_15T.split(',').position(|c| c == column).unwrap();
    let mut fields: Vec<String> = rows[row - 1].split(',').map(str::to_owned).collect();
    fields[col] = value.to_owned();
    rows[row - 1] = fields.join(",");
    write_text(dir, "adni.csv", &(rows.join("\n") + "\n"))
}

fn write_text(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_volume_written_under_a_name_that_is_not_nifti_is_refused_and_leaves_nothing() {
    use adni_data::volume::{OutputType, write_volume};
    let dir = tempfile::tempdir().unwrap();
    let vol = adni_data::Volume { data: ndarray::Array3::zeros((2, 3, 4)), affine: adni_data::Affine::identity() };
    let folder = dir.path().join("folder");
    fs::create_dir(&folder).unwrap();
    for name in ["map.txt", "map", "map.hdr", "folder", "map.NII.GZ"] {
        let want = format!("<tmp>/{name}: not a NIfTI output file name: expected a name ending in .nii or .nii.gz");
        assert_refused(dir.path(), &want, || write_volume(&dir.path().join(name), &vol, OutputType::Float32));
    }
    let mut left: Vec<String> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["folder"]);
    assert_eq!(fs::read_dir(&folder).unwrap().count(), 0);
    // Both endings work, also after other dots in the name (the writer's own naming drops them).
    for name in ["map.nii", "map.nii.gz", "sub.01.nii", "occlusion.s12.nii.gz"] {
        write_volume(&dir.path().join(name), &vol, OutputType::Float32).unwrap();
        assert_eq!(read_volume(&dir.path().join(name)).unwrap().0.data.dim(), (2, 3, 4));
    }
    let mut left: Vec<String> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["folder", "map.nii", "map.nii.gz", "occlusion.s12.nii.gz", "sub.01.nii"]);
}

#[test]
fn the_valid_table_reads() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_text(dir.path(), "adni.csv", &(table_rows().join("\n") + "\n"));
    assert_eq!(read_adni_table(&p).unwrap().len(), 3);
}

#[test]
fn blank_lines_in_a_table_are_skipped_and_rows_keep_their_file_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let rows = table_rows();
    // A trailing empty line (CRLF too), one of spaces and one between rows, as editors leave them.
    for text in [rows.join("\n") + "\n\n", rows.join("\r\n") + "\r\n\r\n", rows.join("\n") + "\n   \n"] {
        let p = write_text(dir.path(), "adni.csv", &text);
        assert_eq!(read_adni_table(&p).unwrap().len(), 3, "{text:?}");
    }
    let gap = format!("{}\n{}\n\n{}\n{}\n", rows[0], rows[1], rows[2], rows[3]);
    let p = write_text(dir.path(), "adni.csv", &gap);
    assert_eq!(read_adni_table(&p).unwrap().len(), 3);
    // An error after the blank line names the row's line in the file (5, not 4).
    let bad = gap.replace("\n5,011_S_0005,", "\n5.5,011_S_0005,");
    let p = write_text(dir.path(), "adni.csv", &bad);
    let want = "<tmp>/adni.csv: row 5, column `RID`: expected an integer, got `5.5`";
    assert_refused(dir.path(), want, || read_adni_table(&p));
    let p = write_text(dir.path(), "adni.csv", "\n \n");
    let want = format!("<tmp>/adni.csv: empty file, expected a header row `{HEADER_15T}`");
    assert_refused(dir.path(), &want, || read_adni_table(&p));
}

#[test]
fn an_extra_column_whose_quoted_name_holds_a_comma_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = table_rows()
        .into_iter()
        .enumerate()
        .map(|(i, r)| format!("{r},{}", if i == 0 { "\"DX, at screening\"" } else { "AD" }))
        .collect();
    let p = write_text(dir.path(), "adni.csv", &(rows.join("\n") + "\n"));
    assert_eq!(read_adni_table(&p).unwrap().len(), 3);
}

#[test]
fn table_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_text(dir.path(), "adni.csv", "");
    let want = format!("<tmp>/adni.csv: empty file, expected a header row `{HEADER_15T}`");
    assert_refused(dir.path(), &want, || read_adni_table(&p));
}

#[test]
fn table_missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let text = table_rows().join("\n").replace(",Visit,", ",Visite,");
    let p = write_text(dir.path(), "adni.csv", &text);
    let want = "<tmp>/adni.csv: missing column `Visit` (a 1.5 T table has the 17 columns RID … label_MCI_AD)";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

#[test]
fn table_duplicated_column() {
    let dir = tempfile::tempdir().unwrap();
    // A second `DX` column at the end, holding another diagnosis.
    let rows: Vec<String> = table_rows()
        .into_iter()
        .enumerate()
        .map(|(i, r)| format!("{r},{}", if i == 0 { "DX" } else { "CN" }))
        .collect();
    let text = rows.join("\n") + "\n";
    let p = write_text(dir.path(), "adni.csv", &text);
    let want = "<tmp>/adni.csv: column `DX` appears twice in the header (columns 4 and 18), expected each column once";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

#[test]
fn table_bad_scan_date() {
    let dir = tempfile::tempdir().unwrap();
    let p = table_with(dir.path(), 3, "Scan.Date", "13/1/06");
    let want = "<tmp>/adni.csv: row 3, column `Scan.Date`: expected a date M/D/YY without zero padding (e.g. \
                9/12/06), got `13/1/06`";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

#[test]
fn table_bad_examdate() {
    let dir = tempfile::tempdir().unwrap();
    let p = table_with(dir.path(), 2, "EXAMDATE", "2005-02-30");
    let want = "<tmp>/adni.csv: row 2, column `EXAMDATE`: expected an ISO date YYYY-MM-DD (e.g. 2006-09-12), got \
                `2005-02-30`";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

#[test]
fn table_duplicate_image_id() {
    let dir = tempfile::tempdir().unwrap();
    let p = table_with(dir.path(), 4, "Image.ID", "32237");
    let want = "<tmp>/adni.csv: rows 2 and 4 have the same Image.ID `32237`, expected each Image.ID once";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

#[test]
fn table_unknown_diagnosis() {
    let dir = tempfile::tempdir().unwrap();
    let p = table_with(dir.path(), 2, "DX", "AD");
    let want = "<tmp>/adni.csv: row 2, column `DX`: expected CN, MCI or Dementia, got `AD`";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

#[test]
fn table_non_integer_rid() {
    let dir = tempfile::tempdir().unwrap();
    let p = table_with(dir.path(), 4, "RID", "5.5");
    let want = "<tmp>/adni.csv: row 4, column `RID`: expected an integer, got `5.5`";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

#[test]
fn table_month_bl_nan() {
    let dir = tempfile::tempdir().unwrap();
    let p = table_with(dir.path(), 3, "Month_bl", "NaN");
    let want = "<tmp>/adni.csv: row 3, column `Month_bl`: expected a finite number, got `NaN`";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

#[test]
fn table_malformed_ptid() {
    let dir = tempfile::tempdir().unwrap();
    let p = table_with(dir.path(), 2, "PTID", "11_S_0003");
    let want = "<tmp>/adni.csv: row 2, column `PTID`: expected a patient id NNN_S_NNNN (e.g. 011_S_0003), got \
                `11_S_0003`";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

#[test]
fn table_label_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let p = table_with(dir.path(), 4, "label_CN_AD", "3");
    let want = "<tmp>/adni.csv: row 4, column `label_CN_AD`: expected a label 0, 1, 2 or N/A, got `3`";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

#[test]
fn table_empty_visit() {
    let dir = tempfile::tempdir().unwrap();
    let p = table_with(dir.path(), 3, "Visit", " ");
    let want = "<tmp>/adni.csv: row 3, column `Visit`: expected a non-empty value, got ` `";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

#[test]
fn table_ragged_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = table_rows();
    rows.push("7,011_S_0007,bl".into());
    let p = write_text(dir.path(), "adni.csv", &(rows.join("\n") + "\n"));
    let want = "<tmp>/adni.csv: row 5, column `DX`: expected CN, MCI or Dementia, got ``";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

#[test]
fn table_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = table_rows().join("\n").into_bytes();
    bytes.extend_from_slice(b"\n5,011_S_0009,bl,CN,2005-09-07,32299,9/7/05,\xff\xfe,Screening,0,NL,1,1,0,0,0,N/A\n");
    let p = dir.path().join("adni.csv");
    fs::write(&p, bytes).unwrap();
    let want = "<tmp>/adni.csv: not a well-formed CSV table: invalid utf-8 sequence";
    assert_refused(dir.path(), want, || read_adni_table(&p));
}

/// A table with a header and no rows is a valid, empty table for the reader (tables.rs); the
/// commands refuse the empty cohort it gives (xtask/tests/bad_inputs.rs).
#[test]
fn table_header_only_is_an_empty_table() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_text(dir.path(), "adni.csv", &format!("{HEADER_15T}\n"));
    assert!(no_panic("header only", || read_adni_table(&p)).unwrap().is_empty());
}

// ------------------------------------------------------------------ atlas label tables

const CEREBRA: &str = "Mindboggle ID,Label Name,RH Label,LH Labels,Notes,Dice Kappa\n\
                       2,Caudal Anterior Cingulate,1,52,,0.9\n\
                       3,Caudal Middle Frontal,2,53,,0.9\n";

#[test]
fn the_valid_label_tables_read() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read_cerebra_table(&write_text(dir.path(), "c.csv", CEREBRA)).unwrap().len(), 4);
    assert_eq!(
        read_aal_table(&write_text(dir.path(), "a.txt", "1 Precentral_L 2001\n2 Precentral_R 2002\n")).unwrap().len(),
        2
    );
    assert_eq!(
        read_label_table(&write_text(dir.path(), "l.csv", "label,name\n1,Left-A\n2,Right-A\n")).unwrap().len(),
        2
    );
}

#[test]
fn cerebra_missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_text(dir.path(), "CerebrA_LabelDetails.csv", &CEREBRA.replace("LH Labels", "LH"));
    let want = "<tmp>/CerebrA_LabelDetails.csv: line 1: header [\"Mindboggle ID\", \"Label Name\", \"RH Label\", \
                \"LH\", \"Notes\", \"Dice Kappa\"] lacks a column; expected `Label Name`, `RH Label` and `LH Labels`";
    assert_refused(dir.path(), want, || read_cerebra_table(&p));
}

#[test]
fn cerebra_non_integer_label() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_text(dir.path(), "CerebrA_LabelDetails.csv", &CEREBRA.replace(",2,53,", ",2,fifty,"));
    let want = "<tmp>/CerebrA_LabelDetails.csv: line 3: column `LH Labels`: expected an integer label value, found \
                `fifty`";
    assert_refused(dir.path(), want, || read_cerebra_table(&p));
}

#[test]
fn cerebra_label_given_twice() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_text(dir.path(), "CerebrA_LabelDetails.csv", &CEREBRA.replace(",2,53,", ",2,52,"));
    let want = "<tmp>/CerebrA_LabelDetails.csv: line 3: label value 52 was already given on line 2";
    assert_refused(dir.path(), want, || read_cerebra_table(&p));
}

#[test]
fn cerebra_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_text(dir.path(), "CerebrA_LabelDetails.csv", "\n");
    let want = "<tmp>/CerebrA_LabelDetails.csv: the table is empty, expected a header `Mindboggle ID,Label Name,RH \
                Label,LH Labels,…`";
    assert_refused(dir.path(), want, || read_cerebra_table(&p));
}

#[test]
fn aal_line_without_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_text(dir.path(), "AAL.txt", "1 Precentral_L 2001\n2\n");
    let want = "<tmp>/AAL.txt: line 2: expected `<label> <name>`, found `2`";
    assert_refused(dir.path(), want, || read_aal_table(&p));
}

#[test]
fn aal_label_zero() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_text(dir.path(), "AAL.txt", "1 Precentral_L 2001\n0 Background 0\n");
    let want = "<tmp>/AAL.txt: line 2: label value 0 is not positive";
    assert_refused(dir.path(), want, || read_aal_table(&p));
}

#[test]
fn label_table_unclosed_quote() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_text(dir.path(), "labels.csv", "label,name\n1,\"Left-A\n2,Right-A\n");
    let want = "<tmp>/labels.csv: line 2: a quoted field is not closed on this line";
    assert_refused(dir.path(), want, || read_label_table(&p));
}

#[test]
fn label_table_empty() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_text(dir.path(), "labels.csv", "label,name\n");
    let want = "<tmp>/labels.csv: no `label,name` lines found";
    assert_refused(dir.path(), want, || read_label_table(&p));
}

#[test]
fn label_table_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("labels.csv");
    fs::write(&p, b"label,name\n1,Hippocampus\n2,\xe9\n").unwrap();
    let want = "<tmp>/labels.csv: not UTF-8 text (byte 27): expected a label table";
    assert_refused(dir.path(), want, || read_label_table(&p));
}

#[test]
fn atlas_volume_label_missing_from_the_table() {
    let dir = tempfile::tempdir().unwrap();
    // The valid image holds 0..24; the table names 1..=20 only.
    let nii = write_file(dir.path(), "atlas.nii.gz", &nifti1());
    let table: String = (1..=20).map(|l| format!("{l},Region_{l}\n")).collect();
    let csv = write_text(dir.path(), "labels.csv", &format!("label,name\n{table}"));
    let want = "<tmp>/atlas.nii.gz: 3 label value(s) occur in the volume but not in the region table: 21, 22, 23 \
                (the table and the volume do not belong together) (table <tmp>/labels.csv)";
    assert_refused(dir.path(), want, || load_label_atlas("test", &nii, &csv));
}
