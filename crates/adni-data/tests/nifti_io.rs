//! NIfTI-1 reading and writing: every datatype the project writes, `.nii` and `.nii.gz`, both
//! byte orders, scaling, non-finite values, affines (sform, qform, pixdim), grid checks, and
//! broken files. Fixtures are made here, in temporary folders.

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use adni_data::volume::{
    Affine, ByteOrder, Grid, OutputType, Volume, read_header, read_labels, read_volume, read_volume_on_grid,
    write_array, write_labels, write_volume, write_volume_with,
};
use flate2::read::GzDecoder;
use ndarray::{Array3, Array4};
use nifti::{NiftiHeader, writer::WriterOptions};

use common::write_maybe_gz;

/// A non-cubic shape, so that an axis mix-up cannot go unnoticed.
const SHAPE: (usize, usize, usize) = (5, 4, 3);

fn grid_of(affine: Affine) -> Grid {
    Grid { shape: [SHAPE.0, SHAPE.1, SHAPE.2], affine }
}

fn mni_like() -> Affine {
    Affine::from_scale_offset([1.0; 3], [-96.0, -132.0, -78.0])
}

/// Rotation about z by 30° then about x by 10°, voxel sizes 1.5, 2, 2.5, and an offset.
fn oblique() -> Affine {
    let (a, b) = (30f64.to_radians(), 10f64.to_radians());
    let rz = [[a.cos(), -a.sin(), 0.0], [a.sin(), a.cos(), 0.0], [0.0, 0.0, 1.0]];
    let rx = [[1.0, 0.0, 0.0], [0.0, b.cos(), -b.sin()], [0.0, b.sin(), b.cos()]];
    let s = [1.5, 2.0, 2.5];
    let mut m = [[0.0; 4]; 4];
    for r in 0..3 {
        for c in 0..3 {
            let rot: f64 = (0..3).map(|k| rx[r][k] * rz[k][c]).sum();
            m[r][c] = rot * s[c];
        }
    }
    m[0][3] = -80.5;
    m[1][3] = 12.25;
    m[2][3] = 40.0;
    m[3][3] = 1.0;
    Affine(m)
}

fn read_maybe_gz(path: &Path) -> Vec<u8> {
    let raw = fs::read(path).unwrap();
    if path.to_string_lossy().ends_with(".gz") {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
        out
    } else {
        raw
    }
}

/// The byte order a file was written in, from `sizeof_hdr` (348).
fn file_is_big_endian(path: &Path) -> bool {
    let b = read_maybe_gz(path);
    match [b[0], b[1], b[2], b[3]] {
        [0, 0, 1, 92] => true,
        [92, 1, 0, 0] => false,
        other => panic!("{}: sizeof_hdr bytes {other:?} are not 348", path.display()),
    }
}

/// Overwrites a 4-byte float of the header in the file's own byte order.
fn patch_f32(path: &Path, offset: usize, value: f32) {
    let big = file_is_big_endian(path);
    let mut bytes = read_maybe_gz(path);
    let v = if big { value.to_be_bytes() } else { value.to_le_bytes() };
    bytes[offset..offset + 4].copy_from_slice(&v);
    write_maybe_gz(path, &bytes);
}

fn names(dir: &Path, stem: &str) -> Vec<PathBuf> {
    vec![dir.join(format!("{stem}.nii")), dir.join(format!("{stem}.nii.gz"))]
}

const ORDERS: [(ByteOrder, &str); 2] = [(ByteOrder::Little, "little"), (ByteOrder::Big, "big")];

/// Writes `data` as every file kind and byte order, reads each back and compares with
/// `expected` and the datatype name.
fn round_trip<T>(data: &Array3<T>, expected: &Array3<f32>, datatype: &str)
where
    T: nifti::DataElement + bytemuck::Pod,
{
    let dir = tempfile::tempdir().unwrap();
    let affine = mni_like();
    for (order, order_name) in ORDERS {
        for path in names(dir.path(), &format!("{datatype}_{order_name}")) {
            write_array(&path, data, &affine, order).unwrap();
            assert_eq!(file_is_big_endian(&path), order == ByteOrder::Big, "{}", path.display());
            let (vol, info, report) = read_volume(&path).unwrap();
            assert_eq!(&vol.data, expected, "{}", path.display());
            assert!(vol.data.is_standard_layout());
            assert_eq!(vol.affine, affine, "{}", path.display());
            assert_eq!(info.datatype, datatype);
            assert_eq!(info.endianness, order_name);
            assert_eq!(info.dims, vec![SHAPE.0, SHAPE.1, SHAPE.2]);
            assert_eq!(report.non_finite_replaced, 0);
            let header = read_header(&path).unwrap();
            assert_eq!(header, info);
        }
    }
}

#[test]
fn uint8_round_trips() {
    let data = Array3::from_shape_fn(SHAPE, |(i, j, k)| ((i * 53 + j * 7 + k * 31) % 256) as u8);
    round_trip(&data, &data.mapv(|v| v as f32), "uint8");
}

#[test]
fn int16_round_trips() {
    let data = Array3::from_shape_fn(SHAPE, |(i, j, k)| (i as i16 * 1000 - j as i16 * 377 + k as i16 * 9000) - 3000);
    round_trip(&data, &data.mapv(|v| v as f32), "int16");
}

#[test]
fn int32_round_trips() {
    // values up to ±2^24 are exact in f32
    let data =
        Array3::from_shape_fn(SHAPE, |(i, j, k)| (i as i32 * 1_000_003 - j as i32 * 4_000_037 + k as i32 * 17) + 7);
    round_trip(&data, &data.mapv(|v| v as f32), "int32");
}

#[test]
fn float32_round_trips() {
    let data = Array3::from_shape_fn(SHAPE, |(i, j, k)| i as f32 * 0.1 - j as f32 * 1e5 + k as f32 * 3.75e-3);
    round_trip(&data, &data, "float32");
}

#[test]
fn float64_round_trips() {
    let data = Array3::from_shape_fn(SHAPE, |(i, j, k)| i as f64 * 0.1 - j as f64 * 1e5 + k as f64 / 3.0);
    round_trip(&data, &data.mapv(|v| v as f32), "float64");
}

/// Regression: `read_volume` reshaped the reader's Fortran-order array in row-major order,
/// which ndarray refuses ("incompatible memory layout") for every multi-voxel 3-D file.
#[test]
fn fortran_order_voxels_read_back_at_their_i_j_k_index() {
    // a single marked voxel lands at the same index after a round trip, for every axis
    let dir = tempfile::tempdir().unwrap();
    for (idx, name) in [((4, 0, 0), "x"), ((0, 3, 0), "y"), ((0, 0, 2), "z"), ((3, 1, 2), "xyz")] {
        let mut data = Array3::<f32>::zeros(SHAPE);
        data[idx] = 1.0;
        let path = dir.path().join(format!("{name}.nii"));
        write_volume(&path, &Volume { data: data.clone(), affine: mni_like() }, OutputType::Float32).unwrap();
        let (vol, _, _) = read_volume(&path).unwrap();
        assert_eq!(vol.data, data, "marked voxel {idx:?}");
    }
}

#[test]
fn write_volume_converts_to_each_type() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Array3::<f32>::zeros(SHAPE);
    data[[0, 0, 0]] = 1.6;
    data[[1, 0, 0]] = -2.4;
    data[[2, 0, 0]] = 40000.0;
    data[[3, 0, 0]] = -40000.0;
    data[[4, 0, 0]] = 300.0;
    let vol = Volume { data, affine: mni_like() };
    let cases: [(OutputType, [f32; 5]); 5] = [
        (OutputType::Uint8, [2.0, 0.0, 255.0, 0.0, 255.0]),
        (OutputType::Int16, [2.0, -2.0, 32767.0, -32768.0, 300.0]),
        (OutputType::Int32, [2.0, -2.0, 40000.0, -40000.0, 300.0]),
        (OutputType::Float32, [1.6, -2.4, 40000.0, -40000.0, 300.0]),
        (OutputType::Float64, [1.6, -2.4, 40000.0, -40000.0, 300.0]),
    ];
    for (dtype, expected) in cases {
        for (order, order_name) in ORDERS {
            for path in names(dir.path(), &format!("{dtype:?}_{order_name}")) {
                write_volume_with(&path, &vol, dtype, order).unwrap();
                let (back, info, _) = read_volume(&path).unwrap();
                let got: Vec<f32> = (0..5).map(|i| back.data[[i, 0, 0]]).collect();
                assert_eq!(got, expected.to_vec(), "{dtype:?} {}", path.display());
                assert_eq!(info.endianness, order_name);
                assert_eq!(back.affine, vol.affine);
            }
        }
    }
}

#[test]
fn scl_slope_and_inter_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Array3::from_shape_fn(SHAPE, |(i, j, k)| (i as i16 * 100 - j as i16 * 30 + k as i16 * 7) - 50);
    let (slope, inter) = (0.5f32, -3.25f32);
    for (order, order_name) in ORDERS {
        for path in names(dir.path(), &format!("scaled_{order_name}")) {
            write_array(&path, &raw, &mni_like(), order).unwrap();
            // the writer stores slope 1, intercept 0: values unchanged
            let (plain, info, _) = read_volume(&path).unwrap();
            assert_eq!(plain.data, raw.mapv(|v| v as f32));
            assert_eq!((info.scl_slope, info.scl_inter), (1.0, 0.0));

            patch_f32(&path, 112, slope);
            patch_f32(&path, 116, inter);
            let (vol, info, _) = read_volume(&path).unwrap();
            assert_eq!((info.scl_slope, info.scl_inter), (slope, inter), "{}", path.display());
            assert_eq!(vol.data, raw.mapv(|v| v as f32 * slope + inter), "{}", path.display());
        }
    }
}

#[test]
fn zero_slope_means_no_scaling() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Array3::from_shape_fn(SHAPE, |(i, j, k)| (i * 12 + j * 3 + k) as i16);
    let path = dir.path().join("slope0.nii");
    write_array(&path, &raw, &mni_like(), ByteOrder::Little).unwrap();
    patch_f32(&path, 112, 0.0);
    patch_f32(&path, 116, 100.0);
    let (vol, _, _) = read_volume(&path).unwrap();
    assert_eq!(vol.data, raw.mapv(|v| v as f32));
}

#[test]
fn nan_and_inf_become_zero_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Array3::from_shape_fn(SHAPE, |(i, j, k)| (i + j + k) as f32 + 0.5);
    data[[0, 0, 0]] = f32::NAN;
    data[[4, 3, 2]] = f32::NAN;
    data[[1, 2, 0]] = f32::INFINITY;
    data[[2, 0, 1]] = f32::NEG_INFINITY;
    let mut expected = data.clone();
    for idx in [[0, 0, 0], [4, 3, 2], [1, 2, 0], [2, 0, 1]] {
        expected[idx] = 0.0;
    }
    for path in names(dir.path(), "nonfinite") {
        write_array(&path, &data, &mni_like(), ByteOrder::Little).unwrap();
        let (vol, _, report) = read_volume(&path).unwrap();
        assert_eq!(report.non_finite_replaced, 4);
        assert_eq!(vol.data, expected);
    }
    // float64 too
    let path = dir.path().join("nonfinite64.nii.gz");
    write_array(&path, &data.mapv(|v| v as f64), &mni_like(), ByteOrder::Big).unwrap();
    let (vol, _, report) = read_volume(&path).unwrap();
    assert_eq!(report.non_finite_replaced, 4);
    assert_eq!(vol.data, expected);
}

fn assert_affine_close(got: &Affine, want: &Affine, tol: f64, what: &str) {
    let d = got.max_abs_diff(want);
    assert!(d <= tol, "{what}: affine {:?} differs from {:?} by {d}", got.0, want.0);
}

#[test]
fn oblique_sform_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = Array3::from_shape_fn(SHAPE, |(i, j, k)| (i * 100 + j * 10 + k) as f32);
    for path in names(dir.path(), "oblique") {
        write_volume(&path, &Volume { data: data.clone(), affine: oblique() }, OutputType::Float32).unwrap();
        let (vol, info, _) = read_volume(&path).unwrap();
        assert_eq!(info.affine_source, "sform");
        assert!(info.sform_code > 0);
        // stored as f32 in the header
        assert_affine_close(&vol.affine, &oblique(), 1e-5, "oblique");
        let vs = vol.affine.voxel_sizes();
        assert!((vs[0] - 1.5).abs() < 1e-5 && (vs[1] - 2.0).abs() < 1e-5 && (vs[2] - 2.5).abs() < 1e-5);
        assert_eq!(vol.data, data);
    }
}

#[test]
fn translated_diagonal_sform_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let affine = Affine::from_scale_offset([2.0, 2.0, 2.0], [-96.0, -132.0, -78.0]);
    let data = Array3::<f32>::ones(SHAPE);
    for path in names(dir.path(), "diag") {
        write_volume(&path, &Volume { data: data.clone(), affine }, OutputType::Uint8).unwrap();
        let (vol, info, _) = read_volume(&path).unwrap();
        assert_eq!(vol.affine, affine);
        assert_eq!(info.pixdim, [2.0, 2.0, 2.0]);
        assert_eq!(info.affine_source, "sform");
    }
}

/// A header with only a qform: 90° about z, pixdim (2, 3, 4), offset (10, 20, 30).
fn qform_header(qfac: f32) -> NiftiHeader {
    let s = std::f32::consts::FRAC_1_SQRT_2;
    NiftiHeader {
        sform_code: 0,
        qform_code: 1,
        quatern_b: 0.0,
        quatern_c: 0.0,
        quatern_d: s,
        quatern_x: 10.0,
        quatern_y: 20.0,
        quatern_z: 30.0,
        pixdim: [qfac, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0],
        ..NiftiHeader::default()
    }
}

#[test]
fn qform_only_header_gives_the_qform_affine() {
    let dir = tempfile::tempdir().unwrap();
    let data = Array3::from_shape_fn(SHAPE, |(i, j, k)| (i * 100 + j * 10 + k) as f32);
    for (qfac, z) in [(1.0f32, 4.0), (-1.0, -4.0)] {
        for path in names(dir.path(), &format!("qform_{qfac}")) {
            let h = qform_header(qfac);
            WriterOptions::new(&path).reference_header(&h).write_nifti(&data).unwrap();
            let (vol, info, _) = read_volume(&path).unwrap();
            assert_eq!(info.affine_source, "qform");
            let want =
                Affine([[0.0, -3.0, 0.0, 10.0], [2.0, 0.0, 0.0, 20.0], [0.0, 0.0, z, 30.0], [0.0, 0.0, 0.0, 1.0]]);
            assert_affine_close(&vol.affine, &want, 1e-5, &format!("qfac {qfac}"));
            assert_eq!(vol.data, data);
        }
    }
}

#[test]
fn header_without_sform_or_qform_uses_pixdim() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("analyze.nii");
    let h = NiftiHeader {
        sform_code: 0,
        qform_code: 0,
        pixdim: [1.0, 1.5, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0],
        ..NiftiHeader::default()
    };
    WriterOptions::new(&path).reference_header(&h).write_nifti(&Array3::<u8>::zeros(SHAPE)).unwrap();
    let (vol, info, _) = read_volume(&path).unwrap();
    assert_eq!(info.affine_source, "pixdim");
    assert_eq!(vol.affine, Affine::from_scale_offset([1.5, 2.0, 3.0], [0.0; 3]));
}

#[test]
fn read_on_grid_accepts_the_grid_and_refuses_other_shapes_and_shifts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scan.nii.gz");
    let data = Array3::from_shape_fn(SHAPE, |(i, j, k)| (i + j + k) as f32);
    write_volume(&path, &Volume { data: data.clone(), affine: mni_like() }, OutputType::Float32).unwrap();

    let (vol, report) = read_volume_on_grid(&path, &grid_of(mni_like())).unwrap();
    assert_eq!(vol.data, data);
    assert_eq!(report.non_finite_replaced, 0);

    let wrong_shape = Grid { shape: [SHAPE.0, SHAPE.1, SHAPE.2 + 1], affine: mni_like() };
    let msg = read_volume_on_grid(&path, &wrong_shape).unwrap_err().to_string();
    assert!(msg.contains(&path.display().to_string()) && msg.contains("shape"), "{msg}");

    let shifted = Affine::from_scale_offset([1.0; 3], [-95.0, -132.0, -78.0]);
    let msg = read_volume_on_grid(&path, &grid_of(shifted)).unwrap_err().to_string();
    assert!(msg.contains(&path.display().to_string()) && msg.contains("affine"), "{msg}");

    let scaled = Affine::from_scale_offset([2.0, 1.0, 1.0], [-96.0, -132.0, -78.0]);
    assert!(read_volume_on_grid(&path, &grid_of(scaled)).is_err());
}

/// Both readers must refuse `path` with an error naming it, without panicking.
fn assert_refused(path: &Path, what: &str) {
    let shown = path.display().to_string();
    let err = read_volume(path).expect_err(what).to_string();
    assert!(err.contains(&shown), "{what}: error `{err}` does not name the file");
    let err = read_volume_on_grid(path, &grid_of(mni_like())).expect_err(what).to_string();
    assert!(err.contains(&shown), "{what}: error `{err}` does not name the file");
    let err = read_labels(path).expect_err(what).to_string();
    assert!(err.contains(&shown), "{what}: error `{err}` does not name the file");
}

#[test]
fn truncated_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = Array3::from_shape_fn(SHAPE, |(i, j, k)| (i + j + k) as f32);
    let path = dir.path().join("cut.nii");
    write_volume(&path, &Volume { data: data.clone(), affine: mni_like() }, OutputType::Float32).unwrap();
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
    assert_refused(&path, "truncated data");
    fs::write(&path, &bytes[..200]).unwrap();
    assert_refused(&path, "truncated header");
    assert!(read_header(&path).is_err());

    let gz = dir.path().join("cut.nii.gz");
    write_volume(&gz, &Volume { data, affine: mni_like() }, OutputType::Float32).unwrap();
    let bytes = fs::read(&gz).unwrap();
    fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(&gz, "truncated gzip");
}

#[test]
fn non_nifti_and_missing_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.nii");
    fs::write(&text, "RID,PTID,VISCODE\n".repeat(40)).unwrap();
    assert_refused(&text, "a CSV named .nii");
    let err = read_header(&text).unwrap_err().to_string();
    assert!(err.contains(&text.display().to_string()), "{err}");

    let fake_gz = dir.path().join("fake.nii.gz");
    fs::write(&fake_gz, [0u8; 400]).unwrap();
    assert_refused(&fake_gz, "zeros named .nii.gz");

    let missing = dir.path().join("absent.nii.gz");
    assert_refused(&missing, "a missing file");
    let err = read_header(&missing).unwrap_err().to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

fn header_with_sform(affine: &Affine) -> NiftiHeader {
    let m = affine.0;
    NiftiHeader {
        sform_code: 2,
        srow_x: [m[0][0] as f32, m[0][1] as f32, m[0][2] as f32, m[0][3] as f32],
        srow_y: [m[1][0] as f32, m[1][1] as f32, m[1][2] as f32, m[1][3] as f32],
        srow_z: [m[2][0] as f32, m[2][1] as f32, m[2][2] as f32, m[2][3] as f32],
        ..NiftiHeader::default()
    }
}

#[test]
fn four_d_single_frame_is_accepted_and_multi_frame_refused() {
    let dir = tempfile::tempdir().unwrap();
    let h = header_with_sform(&mni_like());
    let one = Array4::from_shape_fn((SHAPE.0, SHAPE.1, SHAPE.2, 1), |(i, j, k, _)| (i * 100 + j * 10 + k) as f32);
    for path in names(dir.path(), "single_frame") {
        WriterOptions::new(&path).reference_header(&h).write_nifti(&one).unwrap();
        let (vol, info, _) = read_volume(&path).unwrap();
        assert_eq!(info.dims, vec![SHAPE.0, SHAPE.1, SHAPE.2, 1]);
        assert_eq!(vol.data, Array3::from_shape_fn(SHAPE, |(i, j, k)| (i * 100 + j * 10 + k) as f32));
        assert_eq!(vol.affine, mni_like());
    }
    let two = Array4::<f32>::zeros((SHAPE.0, SHAPE.1, SHAPE.2, 2));
    for path in names(dir.path(), "two_frames") {
        WriterOptions::new(&path).reference_header(&h).write_nifti(&two).unwrap();
        let err = read_volume(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("3-D"), "{err}");
    }
}

#[test]
fn labels_round_trip_as_int32() {
    let dir = tempfile::tempdir().unwrap();
    let labels = Array3::from_shape_fn(SHAPE, |(i, j, k)| ((i * 7 + j * 3 + k) % 117) as i32);
    let path = dir.path().join("labels.nii.gz");
    write_labels(&path, &labels, &oblique()).unwrap();
    let (back, affine) = read_labels(&path).unwrap();
    assert_eq!(back, labels);
    assert_affine_close(&affine, &oblique(), 1e-5, "labels");
    assert_eq!(read_header(&path).unwrap().datatype, "int32");
}

#[test]
fn writes_are_atomic_and_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.nii.gz");
    write_volume(&path, &Volume { data: Array3::zeros(SHAPE), affine: mni_like() }, OutputType::Float32).unwrap();
    // the writer picks compression from the name: gzip magic
    assert_eq!(&fs::read(&path).unwrap()[..2], &[0x1f, 0x8b]);
    let names: Vec<String> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["out.nii.gz".to_string()]);
}
