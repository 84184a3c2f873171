//! Atomic file writes: write under a temporary name in the same folder, then rename.
//!
//! An interrupted run therefore never leaves a half-written file under the final name.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{DataError, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary path beside `path` that keeps its file name's extensions (so a `.nii.gz` target
/// gets a `.nii.gz` temporary, which the NIfTI writer needs to choose compression).
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".tmp-{}-{}-{}", std::process::id(), n, name);
    path.with_file_name(tmp)
}

/// Creates the parent folder of `path` if needed.
pub fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    Ok(())
}

/// Runs `write` on a temporary path beside `path`, then renames it onto `path`.
/// On failure the temporary file is removed and `path` is untouched.
pub fn write_atomically<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    ensure_parent(path)?;
    let tmp = temp_path_for(path);
    match write(&tmp) {
        Ok(()) => fs::rename(&tmp, path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            DataError::io(path, e)
        }),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    // Errors name the final file (what the user asked for), not the temporary one.
    write_atomically(path, |tmp| {
        let mut f = fs::File::create(tmp).map_err(|e| DataError::io(path, e))?;
        f.write_all(bytes).map_err(|e| DataError::io(path, e))?;
        f.sync_all().map_err(|e| DataError::io(path, e))
    })
}

/// Writes a polars DataFrame as CSV (header included) to `path`, atomically.
pub fn write_csv_atomically(path: &Path, df: &mut polars::prelude::DataFrame) -> Result<()> {
    use polars::prelude::{CsvWriter, SerWriter};
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf).include_header(true).finish(df)?;
    write_bytes_atomically(path, &buf)
}

/// The sha256 of a file's bytes (lower-case hex). Each file is read once per process while its
/// size and modification time stay the same (training asks for every scan of a run once per
/// fold); a changed file is read again.
pub fn content_digest(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    type Stamp = (PathBuf, u64, Option<std::time::SystemTime>);
    static SEEN: OnceLock<Mutex<HashMap<Stamp, String>>> = OnceLock::new();
    let meta = fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    let stamp: Stamp = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let seen = SEEN.get_or_init(Default::default);
    if let Some(hex) = seen.lock().unwrap_or_else(|p| p.into_inner()).get(&stamp) {
        return Ok(hex.clone());
    }
    let mut file = fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| DataError::io(path, e))?;
    let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    seen.lock().unwrap_or_else(|p| p.into_inner()).insert(stamp, hex.clone());
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.csv");
        let err = write_atomically(&target, |tmp| {
            fs::write(tmp, b"half").unwrap();
            Err(DataError::Split("interrupted".into()))
        });
        assert!(err.is_err());
        assert!(!target.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "temporary file left behind");
    }

    #[test]
    fn temp_path_keeps_extensions() {
        let p = temp_path_for(Path::new("/a/b/scan.nii.gz"));
        assert!(p.to_string_lossy().ends_with("scan.nii.gz"));
        assert_eq!(p.parent(), Some(Path::new("/a/b")));
    }

    #[test]
    fn content_digest_is_the_sha256_and_follows_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        fs::write(&p, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(content_digest(&p).unwrap(), abc);
        assert_eq!(content_digest(&p).unwrap(), abc);
        // another size: read again
        fs::write(&p, b"abcd").unwrap();
        assert_ne!(content_digest(&p).unwrap(), abc);
        assert!(content_digest(&dir.path().join("none")).unwrap_err().to_string().contains("none"));
    }
}
