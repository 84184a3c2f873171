//! The binaries' allocator, mimalloc, and the one setting the project changes in it. This module
//! holds the workspace's only `unsafe` code: the declaration of two functions of mimalloc's C
//! API (linked through the `mimalloc` crate, whose `-sys` crate exposes them only behind a
//! feature that needs one more crate).
//!
//! **Why.** By default mimalloc hands memory freed by the program back to the OS 10 ms later
//! (its `purge_delay`). A training step frees and allocates the same large tensors every step
//! (the first block's output alone is 160 MB per batch of 5 at 2 mm), so the kernel faults them
//! in again and zeroes each page (`clear_page` in `perf`: about 10 % of a 2 mm step). With the
//! delay at -1 (never purge) the pages stay mapped and are reused: on a 2-core Zen 4 EPYC a 2 mm
//! step went from about 12 000 page faults per 22 batches to about 730, and about 6 % less time
//! (BENCHMARKS.md). Numbers are unchanged: only where memory comes from changes. The cost: the
//! process keeps its peak memory until it exits, instead of returning it between phases.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_long};

/// The global allocator for the project's binaries: `#[global_allocator] static GLOBAL:
/// model::fast::FastAlloc = model::fast::FastAlloc;`, then [`keep_freed_memory`] first thing in
/// `main`.
pub use mimalloc::MiMalloc as FastAlloc;

/// The environment variable through which mimalloc reads its purge delay (milliseconds; -1:
/// never). When it is set, [`keep_freed_memory`] leaves the user's value alone.
pub const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (`include/mimalloc.h`; the `mimalloc`
/// crate builds v3). The `-sys` crate has no constant for it; the tests check the index by
/// reading back a value set through [`PURGE_DELAY_ENV`] in a child process.
const MI_OPTION_PURGE_DELAY: c_int = 15;

// SAFETY: these are the exact C signatures of `mi_option_get` and `mi_option_set` in mimalloc's
// `include/mimalloc.h` (`mi_option_t` is a C enum, passed as `int`; values are `long`), and both
// symbols are in the static mimalloc library that the `mimalloc` dependency links into every
// binary. Neither takes a pointer, and both check the index (`src/options.c`: one out of range
// is ignored, and `get` returns 0), so any argument is defined behaviour. The `-sys` crate calls
// them "not thread safe": they read and write one aligned `long` of a static table without a
// lock, the same way mimalloc itself initialises that table lazily from whichever thread first
// reads an option, so a concurrent reader sees the old or the new value. Hence `safe`; and
// [`keep_freed_memory`] is called at the start of `main`, before there are other threads.
unsafe extern "C" {
    safe fn mi_option_get(option: c_int) -> c_long;
    safe fn mi_option_set(option: c_int, value: c_long);
}

/// Makes mimalloc keep freed memory mapped for reuse (purge delay -1) unless the user set
/// [`PURGE_DELAY_ENV`]. Call it first thing in `main`, before the program starts threads.
pub fn keep_freed_memory() {
    if std::env::var_os(PURGE_DELAY_ENV).is_none() {
        mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

/// mimalloc's current purge delay in milliseconds (-1: freed memory is never handed back).
#[allow(clippy::useless_conversion, reason = "`long` is 32 bits on Windows")]
pub fn purge_delay_ms() -> i64 {
    i64::from(mi_option_get(MI_OPTION_PURGE_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process of [`the_option_index_is_mimallocs_purge_delay`].
    const CHILD: &str = "MODEL_ALLOC_TEST_CHILD";

    #[test]
    fn the_option_index_is_mimallocs_purge_delay() {
        if std::env::var_os(CHILD).is_some() {
            // mimalloc read 1234 from the environment for the option at this index.
            assert_eq!(purge_delay_ms(), 1234, "option {MI_OPTION_PURGE_DELAY} is not the purge delay");
            keep_freed_memory();
            assert_eq!(purge_delay_ms(), 1234, "a user's setting is kept");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "fast::alloc::tests::the_option_index_is_mimallocs_purge_delay", "--nocapture"])
            .env(CHILD, "1")
            .env(PURGE_DELAY_ENV, "1234")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "child test failed:\n{text}");
    }

    #[test]
    fn keeping_freed_memory_sets_the_delay_to_never() {
        if std::env::var_os(PURGE_DELAY_ENV).is_some() {
            return; // the user's setting wins; tested in the child above
        }
        keep_freed_memory();
        assert_eq!(purge_delay_ms(), -1);
    }
}
