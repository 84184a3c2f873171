//! NIfTI-2 and 4-D files: `inspect_nifti` agrees with nibabel on nibabel's own examples (see
//! `testdata/README.md`), NIfTI-2 reads in both byte orders, the 3-D loader refuses a 4-D series,
//! and headers that declare more voxels than the file holds are refused before anything is read.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use adni_data::volume::{
    Affine, ByteOrder, OutputType, Volume, inspect_nifti, read_header, read_labels, read_volume, write_volume_with,
};
use ndarray::{Array3, ShapeBuilder};

use common::write_maybe_gz;

fn testdata(name: &str) -> PathBuf {
    package_dir().join("testdata").join(name)
}

/// The affine nibabel reports for both example files (their sform).
const NIBABEL_EXAMPLE_AFFINE: [[f64; 4]; 3] = [
    [-2.0, 6.71471565e-19, 9.08102451e-18, 117.855103],
    [-6.71471565e-19, 1.97371149, -0.355528235, -35.7229424],
    [8.25548089e-18, 0.323207617, 2.17108178, -7.24879837],
];

fn assert_nibabel_affine(got: &Affine, file: &str) {
    for (r, row) in NIBABEL_EXAMPLE_AFFINE.iter().enumerate() {
        for (c, want) in row.iter().enumerate() {
            assert!((got.0[r][c] - want).abs() < 1e-5, "{file}: affine[{r}][{c}] = {}, nibabel {want}", got.0[r][c]);
        }
    }
}

#[test]
fn inspect_agrees_with_nibabel_on_example_nifti2() {
    let path = testdata("example_nifti2.nii.gz");
    let got = inspect_nifti(&path).unwrap();
    assert_eq!(got.info.format, "NIfTI-2");
    assert_eq!(got.info.dims, vec![32, 20, 12, 2]);
    assert_eq!(got.info.datatype, "int16");
    assert_eq!(got.voxels, 32 * 20 * 12 * 2);
    assert_eq!((got.stats.min, got.stats.max), (46.0, 757.0));
    assert!((got.stats.mean - 450.9637).abs() < 5e-5, "mean {}", got.stats.mean);
    assert_nibabel_affine(&got.info.affine, "example_nifti2");
    let vs = got.info.affine.voxel_sizes();
    assert!((vs[0] - 2.0).abs() < 1e-5 && (vs[1] - 2.0).abs() < 1e-5 && (vs[2] - 2.2).abs() < 1e-5, "{vs:?}");
    assert_eq!(read_header(&path).unwrap(), got.info);
}

#[test]
fn inspect_agrees_with_nibabel_on_example4d() {
    let path = testdata("example4d_sorted.nii.gz");
    let got = inspect_nifti(&path).unwrap();
    assert_eq!(got.info.format, "NIfTI-1");
    assert_eq!(got.info.dims, vec![128, 96, 24, 2]);
    assert_eq!(got.info.datatype, "int16");
    assert_eq!(got.voxels, 128 * 96 * 24 * 2);
    assert_eq!((got.stats.min, got.stats.max), (0.0, 1162.0));
    assert!((got.stats.mean - 172.9081).abs() < 5e-5, "mean {}", got.stats.mean);
    assert_nibabel_affine(&got.info.affine, "example4d");
}

#[test]
fn the_3d_loaders_refuse_both_4d_examples() {
    for name in ["example_nifti2.nii.gz", "example4d_sorted.nii.gz"] {
        let path = testdata(name);
        let err = read_volume(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("expected a 3-D volume"), "{err}");
        assert!(read_labels(&path).is_err());
    }
}

/// A single-file NIfTI-2 image of int16 voxels (`data` in [i, j, k] order) with an sform.
fn nifti2_bytes(dims: &[i64], data_fortran: &[i16], affine: &Affine, big: bool, vox_offset: i64) -> Vec<u8> {
    let mut h = vec![0u8; 540];
    fn put(h: &mut [u8], at: usize, le: &[u8], big: bool) {
        let mut b = le.to_vec();
        if big {
            b.reverse();
        }
        h[at..at + b.len()].copy_from_slice(&b);
    }
    put(&mut h, 0, &540i32.to_le_bytes(), big);
    h[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
    put(&mut h, 12, &4i16.to_le_bytes(), big); // int16
    put(&mut h, 14, &16i16.to_le_bytes(), big);
    put(&mut h, 16, &(dims.len() as i64).to_le_bytes(), big);
    for (i, d) in dims.iter().enumerate() {
        put(&mut h, 24 + 8 * i, &d.to_le_bytes(), big);
    }
    let vs = affine.voxel_sizes();
    for (i, p) in [1.0, vs[0], vs[1], vs[2]].iter().enumerate() {
        put(&mut h, 104 + 8 * i, &p.to_le_bytes(), big);
    }
    put(&mut h, 168, &vox_offset.to_le_bytes(), big);
    put(&mut h, 176, &2.0f64.to_le_bytes(), big); // scl_slope
    put(&mut h, 184, &(-3.0f64).to_le_bytes(), big); // scl_inter
    put(&mut h, 348, &2i32.to_le_bytes(), big); // sform_code
    for r in 0..3 {
        for c in 0..4 {
            put(&mut h, 400 + 32 * r + 8 * c, &affine.0[r][c].to_le_bytes(), big);
        }
    }
    h.extend_from_slice(&[0; 4]); // no extensions
    h.resize(vox_offset.max(544) as usize, 0);
    for v in data_fortran {
        h.extend_from_slice(&if big { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    h
}

fn oblique() -> Affine {
    Affine([[0.0, -1.5, 0.0, 10.0], [2.0, 0.0, 0.1, -20.5], [0.0, 0.0, 2.5, 7.25], [0.0, 0.0, 0.0, 1.0]])
}

#[test]
fn nifti2_reads_in_both_byte_orders_with_scaling_and_voxel_order() {
    let dir = tempfile::tempdir().unwrap();
    let shape = (5, 4, 3);
    let stored = Array3::from_shape_fn(shape, |(i, j, k)| (i * 100 + j * 10 + k) as i16 - 50);
    let fortran: Vec<i16> = stored.t().iter().copied().collect();
    let expected = stored.mapv(|v| v as f32 * 2.0 - 3.0);
    for big in [false, true] {
        for name in ["v2.nii", "v2.nii.gz"] {
            let path = dir.path().join(format!("{}_{name}", if big { "big" } else { "little" }));
            write_maybe_gz(&path, &nifti2_bytes(&[5, 4, 3], &fortran, &oblique(), big, 560));
            let (vol, info, report) = read_volume(&path).unwrap();
            assert_eq!(vol.data, expected, "{}", path.display());
            assert_eq!(vol.affine, oblique());
            assert_eq!(info.format, "NIfTI-2");
            assert_eq!(info.endianness, if big { "big" } else { "little" });
            assert_eq!(info.affine_source, "sform");
            assert_eq!(report.non_finite_replaced, 0);
            let got = inspect_nifti(&path).unwrap();
            let mean = expected.iter().map(|&v| v as f64).sum::<f64>() / expected.len() as f64;
            assert_eq!((got.stats.min, got.stats.max), (-103.0, 761.0));
            assert!((got.stats.mean - mean).abs() < 1e-9);
        }
    }
    // The Fortran-order check in isolation: voxel (1, 0, 0) is the second value in the file.
    let v = Array3::from_shape_vec(shape.f(), fortran).unwrap();
    assert_eq!(v[[1, 0, 0]], stored[[1, 0, 0]]);
}

/// Writes a valid little-endian NIfTI-1 file and patches `dim` to claim `dims`.
fn nifti1_claiming(path: &Path, dims: &[i16]) {
    let vol = Volume { data: Array3::zeros((4, 3, 2)), affine: Affine::identity() };
    let plain = path.with_file_name("claiming_source.nii");
    write_volume_with(&plain, &vol, OutputType::Int16, ByteOrder::Little).unwrap();
    let mut bytes = fs::read(&plain).unwrap();
    bytes[40..42].copy_from_slice(&(dims.len() as i16).to_le_bytes());
    for (i, d) in dims.iter().enumerate() {
        bytes[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    write_maybe_gz(path, &bytes);
}

#[test]
fn header_declaring_2_pow_40_voxels_is_refused_before_allocation() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["huge.nii", "huge.nii.gz"] {
        // NIfTI-2: 1024⁴ = 2⁴⁰ int16 voxels (2 TiB) over 48 real bytes.
        let path = dir.path().join(format!("v2_{name}"));
        write_maybe_gz(&path, &nifti2_bytes(&[1024, 1024, 1024, 1024], &[7; 24], &oblique(), false, 544));
        let err = inspect_nifti(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("`dim`"), "{err}");
        // 3-D, so the loader gets past its 4-D check and must refuse on size.
        write_maybe_gz(&path, &nifti2_bytes(&[1 << 14, 1 << 13, 1 << 13], &[7; 24], &oblique(), false, 544));
        for err in [read_volume(&path).unwrap_err(), inspect_nifti(&path).unwrap_err()] {
            let err = err.to_string();
            assert!(err.contains(&path.display().to_string()) && err.contains("`dim`"), "{err}");
        }
        // Dimensions whose product overflows 64 bits.
        write_maybe_gz(&path, &nifti2_bytes(&[i64::MAX, i64::MAX, 2], &[7; 24], &oblique(), false, 544));
        let err = read_volume(&path).unwrap_err().to_string();
        assert!(err.contains("`dim`") && err.contains("more than can be addressed"), "{err}");

        // NIfTI-1 through the `nifti` crate's path: 32767 × 32767 × 1024 ≈ 2⁴⁰ voxels.
        let path = dir.path().join(format!("v1_{name}"));
        nifti1_claiming(&path, &[32767, 32767, 1024]);
        for err in [read_volume(&path).unwrap_err(), inspect_nifti(&path).unwrap_err()] {
            let err = err.to_string();
            assert!(err.contains(&path.display().to_string()) && err.contains("`dim`"), "{err}");
        }
    }
}

#[test]
fn vox_offset_beyond_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["far.nii", "far.nii.gz"] {
        let path = dir.path().join(name);
        let mut bytes = nifti2_bytes(&[2, 2, 2], &[1; 8], &oblique(), false, 544);
        bytes[168..176].copy_from_slice(&1_000_000_000_000i64.to_le_bytes());
        write_maybe_gz(&path, &bytes);
        for err in [read_volume(&path).unwrap_err(), inspect_nifti(&path).unwrap_err()] {
            let err = err.to_string();
            assert!(err.contains(&path.display().to_string()) && err.contains("`vox_offset`"), "{err}");
        }
        bytes[168..176].copy_from_slice(&(-8i64).to_le_bytes());
        write_maybe_gz(&path, &bytes);
        let err = inspect_nifti(&path).unwrap_err().to_string();
        assert!(err.contains("`vox_offset`"), "{err}");
    }
}

#[test]
fn negative_or_zero_dims_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zero.nii");
    write_maybe_gz(&path, &nifti2_bytes(&[2, 0, 2], &[], &oblique(), false, 544));
    let err = inspect_nifti(&path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()) && err.contains("`dim[2]` is 0"), "{err}");
    write_maybe_gz(&path, &nifti2_bytes(&[2, 2, -5], &[], &oblique(), false, 544));
    let err = read_volume(&path).unwrap_err().to_string();
    assert!(err.contains("`dim[3]` is -5"), "{err}");
}

/// This package's folder: cargo's run-time `CARGO_MANIFEST_DIR` (set by `cargo test` and `cargo
/// bench`), else the one compiled in. A target folder shared between two clones reuses a test
/// binary built in the other clone, whose compiled-in folder may be gone.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
}
