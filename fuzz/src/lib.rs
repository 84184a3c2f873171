//! Shared pieces of the fuzz targets: an allocation cap and a per-process scratch folder.
//!
//! Most readers take a path, so each target writes the input to a file in a scratch folder under
//! `/dev/shm` (memory, no disk wear) and calls the reader on it, exactly as a user's file would be
//! read.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The largest single allocation a reader may make: 1 GiB. Inputs are at most a few hundred KiB
/// (a `.nii.gz` expands at most ~1000×), so nothing legitimate comes near it; a larger request
/// means a size taken from the file without a check against its length. libFuzzer's own
/// `-malloc_limit_mb` needs a sanitizer's allocator hooks, which `-s none` builds lack, so this
/// allocator does that job: it prints the size and aborts, which libFuzzer records as a crash.
pub const ALLOC_CAP: usize = 1 << 30;

/// The global allocator of every target: the system allocator with [`ALLOC_CAP`].
pub struct CappedAlloc;

#[cold]
fn over_cap(size: usize) -> ! {
    // No allocation here: format into a stack buffer.
    let mut buf = [0u8; 96];
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cur, "\n==fuzz== single allocation of {size} bytes exceeds the 1 GiB cap\n");
    let n = cur.position() as usize;
    let _ = std::io::stderr().write_all(&buf[..n]);
    std::process::abort();
}

// SAFETY: forwards to the system allocator unchanged; only refuses (aborts on) oversized requests.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_CAP {
            over_cap(layout.size());
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_CAP {
            over_cap(layout.size());
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_CAP {
            over_cap(new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// This process's scratch folder (`/dev/shm/adni-fuzz-<pid>`, or the temp dir without /dev/shm).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("adni-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the fuzz scratch folder");
        dir
    })
}

/// Writes `bytes` to `name` in the scratch folder and returns the path.
pub fn put(name: &str, bytes: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, bytes).expect("write a fuzz input file");
    p
}

/// Removes `name` from the scratch folder (ignoring a missing file).
pub fn remove(name: &str) {
    let _ = std::fs::remove_file(scratch().join(name));
}

/// `bytes` gzip-compressed (fast level), as a `.nii.gz` writer would store them.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}
