//! The weights readers: safetensors, `torch.save` zip and legacy pickle, detected from the first
//! bytes as `WeightsFile::open` does; then the checks and the model build that `import_weights`,
//! `import_safetensors`, `import_pytorch` and `cargo xtask interpret` (inferred config) perform.
#![no_main]

use adni_relevance_fuzz::{CappedAlloc, put};
use libfuzzer_sys::fuzz_target;
use model::weights::{WeightsFile, import_pytorch, import_safetensors, import_weights};
use model::{Cpu, NetworkConfig};

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

/// The small network the committed seeds were written for (as in `crates/model/tests/weights.rs`).
fn small_config() -> NetworkConfig {
    NetworkConfig { channels: [2, 3, 4, 5], pools: [2, 2, 2, 2], kernel: 3, dense: [6, 4], dropout: 0.8, classes: 2 }
}

const GRID: [usize; 3] = [46, 50, 47];

fuzz_target!(|data: &[u8]| {
    // `WeightsFile` turns a panic inside burn-store into an error (catch_unwind); libFuzzer's
    // hook would abort on it first. A panic that escapes still aborts in libfuzzer-sys's wrapper.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("caught or not: {info}"))));
    let device = Default::default();
    let path = put("weights.bin", data);
    if let Ok(file) = WeightsFile::open(&path) {
        let _ = file.shapes();
        let _ = file.recorded_grid();
        if let Ok(config) = file.inferred_config() {
            // `cargo xtask interpret` builds whatever architecture the file describes; keep it
            // to the sizes a fuzz input can carry.
            let small = config.channels.iter().chain(&config.dense).all(|&c| c <= 64) && config.kernel <= 7;
            if small {
                let _ = file.into_model::<Cpu>(&config, Some(GRID), &device);
            }
        }
    }
    let config = small_config();
    let _ = import_weights::<Cpu>(&path, &config, Some(GRID), &device);
    match data.first() {
        Some(b'P') | Some(0x80) => {
            let _ = import_pytorch::<Cpu>(&path, &config, GRID, &device);
        }
        _ => {
            let _ = import_safetensors::<Cpu>(&path, &config, &device);
        }
    }
});
