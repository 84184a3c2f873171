//! Weights files that fuzzing (`fuzz/`, `scripts/fuzz.sh`, target `weights`) found to make the
//! reader allocate gigabytes from a few bytes; each must now be a clear error.

use std::io::Write;
use std::path::{Path, PathBuf};

use model::weights::WeightsFile;

fn testdata(name: &str) -> PathBuf {
    package_dir().join("testdata/fuzz").join(name)
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

/// A legacy file whose pickle declares a 1 GiB storage for a small tensor: burn-store allocated
/// the declared storage size before reading it, and when the read then failed it filled the
/// tensor with zeros, so the import succeeded with wrong weights. Now refused when the file is
/// opened: the storage section must match the declared element counts.
#[test]
fn legacy_storage_declaring_1_gib_is_an_error() {
    let path = testdata("legacy-storage-size-1GiB.pt");
    let e = open_err(&path);
    assert!(e.contains("legacy-storage-size-1GiB.pt") && e.contains("declared with"), "{e}");
}

/// The small network's weights as a legacy `torch.save` file (a committed fuzz seed).
fn small_legacy() -> Vec<u8> {
    let seed = package_dir().join("../../fuzz/seeds/weights/gen-small-legacy.pt");
    std::fs::read(seed).unwrap()
}

/// The legacy seed imports whole (the storage check accepts what PyTorch writes), and a copy
/// missing its last 4 bytes (the last weight) is refused: burn-store would read the last storage,
/// fail, and hand back zeros for the whole tensor.
#[test]
fn legacy_file_cut_inside_its_last_storage_is_an_error() {
    let bytes = small_legacy();
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.pt");
    std::fs::write(&whole, &bytes).unwrap();
    import_small(&whole).unwrap();

    let cut = dir.path().join("cut.pt");
    std::fs::write(&cut, &bytes[..bytes.len() - 4]).unwrap();
    let e = open_err(&cut);
    assert!(e.contains("cut.pt") && e.contains("but the file holds only"), "{e}");
}

/// A zip `torch.save` file whose central directory gives a stored 8-byte entry an uncompressed
/// size of 2 GB: burn-store reserved the declared size before reading the entry.
#[test]
fn zip_entry_declaring_2_gb_is_refused() {
    let e = open_err(&testdata("zip-entry-size-2GB.pt"));
    assert!(e.contains("zip entry `archive/data/4` declares 2097152008 bytes from 8 stored bytes"), "{e}");
}

/// Every committed seed of the `weights` fuzz target (real files of each format) still opens:
/// the checks before burn-store refuse nothing that PyTorch writes.
#[test]
fn every_weights_seed_opens() {
    let dir = package_dir().join("../../fuzz/seeds/weights");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if let Err(e) = WeightsFile::open(&path) {
            panic!("{}: {e}", path.display());
        }
        n += 1;
    }
    assert!(n >= 17, "{n} seeds");
}

/// This package's folder: cargo's run-time `CARGO_MANIFEST_DIR` (set by `cargo test` and `cargo
/// bench`), else the one compiled in. A target folder shared between two clones reuses a test
/// binary built in the other clone, whose compiled-in folder may be gone.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
}
