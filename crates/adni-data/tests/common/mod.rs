//! Helpers shared by the NIfTI tests.

use std::fs;
use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

/// Writes `bytes` to `path`, gzip-compressed when the name ends in `.gz`.
pub fn write_maybe_gz(path: &Path, bytes: &[u8]) {
    if path.to_string_lossy().ends_with(".gz") {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        fs::write(path, enc.finish().unwrap()).unwrap();
    } else {
        fs::write(path, bytes).unwrap();
    }
}
