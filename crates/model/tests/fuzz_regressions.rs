//! Weights files that fuzzing (`fuzz/`, `scripts/fuzz.sh`, target `weights`) found to make the
//! reader allocate gigabytes from a few bytes; each must now be a clear error.

use std::io::Write;
use std::path::{Path, PathBuf};

use model::weights::WeightsFile;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fuzz").join(name)
}

/// Imports a file as the small test network (the one the fuzz seeds were written from).
fn import_small(path: &Path) -> Result<model::ClassificationModel3D<model::Cpu>, model::ModelError> {
    let config = model::NetworkConfig {
        channels: [2, 3, 4, 5],
        pools: [2, 2, 2, 2],
        kernel: 3,
        dense: [6, 4],
        dropout: 0.8,
        classes: 2,
    };
    model::weights::import_weights::<model::Cpu>(path, &config, Some([46, 50, 47]), &Default::default())
}

fn open_err(path: &Path) -> String {
    match WeightsFile::open(path) {
        Ok(_) => panic!("{} must be refused", path.display()),
        Err(e) => e.to_string(),
    }
}

/// A legacy `torch.save` file (burn-store's `simple_legacy.pt`, one byte changed) whose state-dict
/// pickle declares a 1.2 GB string: burn-store allocated it before reading.
#[test]
fn legacy_pickle_declaring_a_huge_string_is_refused() {
    let e = open_err(&testdata("legacy-string-length-1.2GB.pt"));
    assert!(e.contains("declares 1291845") && e.contains("bytes but only"), "{e}");
}

/// As above, the 1.8 GB string in the storage-keys pickle after the state dict.
#[test]
fn legacy_storage_keys_pickle_declaring_a_huge_string_is_refused() {
    let e = open_err(&testdata("legacy-keys-string-length-1.8GB.pt"));
    assert!(e.contains("declares 1862270") && e.contains("bytes but only"), "{e}");
}

/// The same in a zip `torch.save` file: `data.pkl` declaring a 4 GiB string.
#[test]
fn zip_pickle_declaring_a_huge_string_is_refused() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(b"\x80\x02X\xf0\xff\xff\xffkey.").unwrap();
    zip.start_file("archive/version", options).unwrap();
    zip.write_all(b"3\n").unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.pt");
    std::fs::write(&path, bytes).unwrap();
    let e = open_err(&path);
    assert!(e.contains("declares 4294967280 bytes but only"), "{e}");
}

/// A legacy file whose tensor shape multiplies past 2^64: burn-store's size arithmetic overflowed
/// (a panic under overflow checks). The import must end in an error naming the file.
#[test]
fn legacy_shape_product_overflow_is_an_error() {
    let path = testdata("legacy-shape-product-overflow.pt");
    let config = model::NetworkConfig::default();
    let r = model::weights::import_weights::<model::Cpu>(&path, &config, Some([97, 115, 97]), &Default::default());
    let Err(e) = r else { panic!("{} must be refused", path.display()) };
    let e = e.to_string();
    assert!(e.contains("legacy-shape-product-overflow.pt"), "{e}");
}

/// A legacy file whose storage element count makes burn-store allocate more than `isize::MAX`
/// bytes when the tensor is read (a capacity-overflow panic): now an error naming the key.
#[test]
fn legacy_storage_size_overflow_is_an_error() {
    let path = testdata("legacy-storage-size-overflow.pt");
    let r = import_small(&path);
    let Err(e) = r else { panic!("{} must be refused", path.display()) };
    let e = e.to_string();
    assert!(e.contains("legacy-storage-size-overflow.pt"), "{e}");
}

/// A legacy file whose pickle declares a 1 GiB storage for a small tensor: burn-store allocates
/// the declared storage size before reading it, and when the read then fails it fills the tensor
/// with zeros, so the import succeeds with wrong weights. Not fixed yet (fuzz/README.md, "Open").
#[test]
#[ignore = "open: burn-store 0.21 allocates a legacy storage's declared size, and answers a failed \
            read with zeros (the import succeeds); see fuzz/README.md"]
fn legacy_storage_declaring_1_gib_is_an_error() {
    let path = testdata("legacy-storage-size-1GiB.pt");
    let r = import_small(&path);
    let Err(e) = r else { panic!("{} must be refused", path.display()) };
    assert!(e.to_string().contains("legacy-storage-size-1GiB.pt"), "{e}");
}
