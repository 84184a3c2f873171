//! The project config parser (`configs/*.toml`: every section, `[relevance]` included), through
//! the same function `ProjectConfig::load` uses, then the resolved config written back and re-read.
#![no_main]

use std::path::Path;

use adni_relevance_fuzz::CappedAlloc;
use libfuzzer_sys::fuzz_target;
use xtask::config::ProjectConfig;

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

fuzz_target!(|data: &[u8]| {
    // `load` reads the file with `read_to_string`: input that is not UTF-8 never reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = Path::new("fuzz.toml");
    if let Ok(config) = ProjectConfig::from_toml(text, file) {
        if let Ok(resolved) = config.to_toml() {
            let _ = ProjectConfig::from_toml(&resolved, file);
        }
    }
});
