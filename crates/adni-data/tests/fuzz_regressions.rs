//! NIfTI inputs that fuzzing (`fuzz/`, `scripts/fuzz.sh`) or the size-budget rule of issue 13
//! showed to crash, allocate from an untrusted size, or read the wrong voxels; each must now be a
//! clear error (or the right values), never a panic or a large allocation.

use std::io::Write;
use std::path::{Path, PathBuf};

use adni_data::volume::{inspect_nifti, read_header, read_volume};

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// A little-endian NIfTI-1 header (352 bytes with the extension flag) for uint8 voxels of `dims`.
fn header(dims: &[i16], vox_offset: f32, magic: &[u8; 4]) -> Vec<u8> {
    let mut b = vec![0u8; 352];
    put(&mut b, 0, &348i32.to_le_bytes());
    put(&mut b, 40, &(dims.len() as i16).to_le_bytes());
    for (i, d) in dims.iter().enumerate() {
        put(&mut b, 42 + 2 * i, &d.to_le_bytes());
    }
    put(&mut b, 70, &2i16.to_le_bytes()); // uint8
    put(&mut b, 72, &8i16.to_le_bytes());
    for (i, p) in [1.0f32, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0].iter().enumerate() {
        put(&mut b, 76 + 4 * i, &p.to_le_bytes());
    }
    put(&mut b, 108, &vox_offset.to_le_bytes());
    put(&mut b, 344, magic);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn err_of<T: std::fmt::Debug>(r: adni_data::Result<T>) -> String {
    r.expect_err("a malformed file must be an error").to_string()
}

/// 2^40 uint8 voxels (1 TiB) declared by a 400-byte file: refused from the file length.
#[test]
fn nii_declaring_2_pow_40_voxels_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = header(&[16384, 16384, 4096], 352.0, b"n+1\0");
    b.resize(400, 7);
    let p = write(dir.path(), "huge.nii", &b);
    for e in [err_of(read_volume(&p)), err_of(inspect_nifti(&p))] {
        assert!(e.contains("declares 1099511627776 bytes") && e.contains("only 48 bytes follow"), "{e}");
    }
    assert!(read_header(&p).is_ok(), "the header alone is readable");
}

/// The same header gzip-compressed: the decompressed length is unknown, so the declared size
/// is capped at 8 GiB before anything is read.
#[test]
fn nii_gz_declaring_2_pow_40_voxels_is_refused_by_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = header(&[16384, 16384, 4096], 352.0, b"n+1\0");
    b.resize(400, 7);
    let p = write(dir.path(), "huge.nii.gz", &gz(&b));
    for e in [err_of(read_volume(&p)), err_of(inspect_nifti(&p))] {
        assert!(e.contains("8 GiB"), "{e}");
    }
    // Under the cap but beyond the data: refused after reading what is there.
    let mut b = header(&[1024, 1024, 1024], 352.0, b"n+1\0");
    b.resize(400, 7);
    let p = write(dir.path(), "big.nii.gz", &gz(&b));
    let e = err_of(read_volume(&p));
    assert!(e.contains("only 48 bytes follow"), "{e}");
}

#[test]
fn vox_offset_beyond_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = header(&[2, 2, 2], 1.0e9, b"n+1\0");
    b.resize(360, 1);
    for name in ["far.nii", "far.nii.gz"] {
        let bytes = if name.ends_with(".gz") { gz(&b) } else { b.clone() };
        let p = write(dir.path(), name, &bytes);
        let e = err_of(read_volume(&p));
        assert!(e.contains("`vox_offset` is 1000000000"), "{name}: {e}");
    }
}

/// An extension whose size field claims ~2 GiB inside a 384-byte file: the `nifti` crate reserved
/// the declared size before reading it. The crate now never sees the extensions.
#[test]
fn extension_declaring_2_gib_is_never_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = header(&[2, 2, 2], 376.0, b"n+1\0");
    b[348] = 1; // extension flag
    b.extend_from_slice(&0x7fff_fff0i32.to_le_bytes()); // esize
    b.extend_from_slice(&6i32.to_le_bytes()); // ecode
    b.extend_from_slice(&[0u8; 16]);
    b.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    let p = write(dir.path(), "ext.nii", &b);
    let (v, _, _) = read_volume(&p).expect("the voxels after the extension are readable");
    assert_eq!(v.data[[1, 1, 1]], 8.0);
    assert_eq!(v.data[[0, 0, 0]], 1.0);
}

/// `vox_offset` past the header with padding and no extension: the voxels start at `vox_offset`,
/// not at byte 352 (the `nifti` crate read them from 352).
#[test]
fn padding_before_vox_offset_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = header(&[2, 2, 2], 416.0, b"n+1\0");
    b.resize(416, 99);
    b.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    let p = write(dir.path(), "padded.nii", &b);
    let (v, _, _) = read_volume(&p).unwrap();
    assert_eq!(v.data[[0, 0, 0]], 1.0);
    assert_eq!(v.data[[1, 1, 1]], 8.0);
    assert_eq!(inspect_nifti(&p).unwrap().stats.max, 8.0);
}

/// A `.hdr`/`.img` pair whose header declares far more voxels than the `.img` holds: refused from
/// the `.img` length (the `nifti` crate reserved the declared size first).
#[test]
fn pair_declaring_more_than_its_img_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hdr = header(&[1024, 1024, 1000], 0.0, b"ni1\0");
    let p = write(dir.path(), "pair.hdr", &hdr);
    write(dir.path(), "pair.img", &[1u8; 64]);
    let e = err_of(read_volume(&p));
    assert!(e.contains("pair.img") && e.contains("only 64 bytes follow"), "{e}");
    // And a valid pair still reads.
    let hdr = header(&[2, 2, 2], 0.0, b"ni1\0");
    let p = write(dir.path(), "ok.hdr", &hdr);
    write(dir.path(), "ok.img", &[1, 2, 3, 4, 5, 6, 7, 8]);
    let (v, _, _) = read_volume(&p).unwrap();
    assert_eq!(v.data[[1, 1, 1]], 8.0);
    // A missing .img is named as such.
    let p = write(dir.path(), "alone.hdr", &hdr);
    let e = err_of(read_volume(&p));
    assert!(e.contains("Volume file not found"), "{e}");
}

/// A NIfTI-2 header whose 4th and 5th lengths multiply past 2^64: `read_volume` multiplied them
/// unchecked (a panic with overflow checks, a wrapped product without). Found by fuzzing.
#[test]
fn nifti2_extra_dimensions_overflowing_usize_are_refused() {
    let mut b = vec![0u8; 544];
    put(&mut b, 0, &540i32.to_le_bytes());
    put(&mut b, 4, b"n+2\0\r\n\x1a\n");
    put(&mut b, 12, &2i16.to_le_bytes()); // uint8
    put(&mut b, 14, &8i16.to_le_bytes());
    for (i, d) in [5i64, 1, 1, 1, 1 << 40, 1 << 40, 1, 1].iter().enumerate() {
        put(&mut b, 16 + 8 * i, &d.to_le_bytes());
    }
    put(&mut b, 104, &1.0f64.to_le_bytes());
    put(&mut b, 168, &544i64.to_le_bytes());
    b.push(0);
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "overflow.nii", &b);
    let e = err_of(read_volume(&p));
    assert!(e.contains("expected a 3-D volume"), "{e}");
    assert!(inspect_nifti(&p).is_err());
}

/// float64 voxels with `bitpix` 47: the `nifti` crate sized the buffer by `bitpix` (5 bytes a
/// voxel) and the values by `datatype` (8), then panicked indexing past the end. Found by fuzzing.
#[test]
fn bitpix_disagreeing_with_datatype_reads_by_datatype() {
    let mut b = header(&[2, 1, 2], 352.0, b"n+1\0");
    put(&mut b, 70, &64i16.to_le_bytes()); // float64
    put(&mut b, 72, &47i16.to_le_bytes()); // bitpix, wrong
    for v in [1.5f64, -2.0, 3.25, 4.0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bitpix.nii", &b);
    let (v, _, _) = read_volume(&p).unwrap();
    assert_eq!(v.data.iter().copied().collect::<Vec<_>>(), vec![1.5, 3.25, -2.0, 4.0]);
}
