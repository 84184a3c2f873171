//! A fold's files on disk: the epoch checkpoint that `--resume` continues from, the Burn records
//! of models and optimiser state, and the JSON documents of a fold's progress and result.
//!
//! A checkpoint after epoch *e* is `model-epoch<e>.mpk` (the model, BatchNorm running statistics
//! included), `optimizer-epoch<e>.mpk` (Adam's moments and step counts) and, last,
//! `state.json`, which names those files and holds the history so far. Every file is written
//! atomically and the previous epoch's records are deleted only after the new `state.json` is in
//! place, so a run killed at any moment leaves a consistent checkpoint of its last completed
//! epoch. Random numbers need no saved state: every draw is seeded from (seed, split, epoch,
//! batch) (see [`crate::train::derive_seed`]).

use std::path::Path;

use adni_data::fsutil::write_bytes_atomically;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use burn::tensor::backend::Backend;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::train::TrainError;

/// Folder of a fold's checkpoint, inside the fold folder.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// The checkpoint's index, written last.
pub const STATE_FILE: &str = "state.json";

/// The recorder of every model and optimiser record: named MessagePack, full precision (so a
/// resumed run continues from bit-identical weights and moments).
type RecorderImpl = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// Writes a Burn record (model or optimiser state) to `path`, atomically.
pub fn save_record<B: Backend, R: Record<B>>(record: R, path: &Path) -> Result<(), TrainError> {
    let bytes = Recorder::<B>::record(&RecorderImpl::default(), record, ())
        .map_err(|e| TrainError::Checkpoint { path: path.to_path_buf(), message: format!("cannot encode: {e}") })?;
    Ok(write_bytes_atomically(path, &bytes)?)
}

/// Reads a record written by [`save_record`].
pub fn load_record<B: Backend, R: Record<B>>(path: &Path, device: &B::Device) -> Result<R, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::Io { path: path.to_path_buf(), source: e })?;
    Recorder::<B>::load(&RecorderImpl::default(), bytes, device).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: format!("not a readable Burn record of this network ({e}); delete the file's fold folder to retrain"),
    })
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let json = serde_json::to_vec_pretty(value)
        .map_err(|e| TrainError::Checkpoint { path: path.to_path_buf(), message: format!("cannot encode: {e}") })?;
    Ok(write_bytes_atomically(path, &json)?)
}

/// Reads JSON written by [`write_json`]; the error names the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::Io { path: path.to_path_buf(), source: e })?;
    serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: format!("cannot read ({e}); it was not written by this version, or is damaged"),
    })
}

/// File name of the model record after `epoch` (1-based).
pub fn model_file(epoch: usize) -> String {
    format!("model-epoch{epoch:04}.mpk")
}

/// File name of the optimiser record after `epoch` (1-based).
pub fn optimizer_file(epoch: usize) -> String {
    format!("optimizer-epoch{epoch:04}.mpk")
}

/// File name of the snapshot of the best epoch so far (keep = best).
pub fn best_model_file(epoch: usize) -> String {
    format!("best-model-epoch{epoch:04}.mpk")
}

/// Removes every file in `dir` whose name is not in `keep` (old epochs' records, stray
/// temporary files). Errors are ignored: a left-over file costs only disk space.
pub fn prune(dir: &Path, keep: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !keep.iter().any(|k| *k == name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
