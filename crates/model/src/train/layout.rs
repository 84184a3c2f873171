//! Where a run's files lie (see the module documentation of [`crate::train`]) and reading a
//! fold's model and history back.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;

use super::TrainError;
use super::records::{CheckpointState, EpochRecord, FoldResult, NetworkRecord};
use crate::ClassificationModel3D;
use crate::checkpoint::{CHECKPOINT_DIR, FOLD_RESULT_FILE, STATE_FILE, read_json};
use crate::weights::import_safetensors;

/// The folder of split `name` inside the run folder.
pub fn fold_dir(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join("folds").join(name)
}

/// The kept model of a fold: safetensors with the PyTorch state-dict keys
/// ([`crate::weights::export_safetensors`]).
pub const MODEL_FILE: &str = "model.safetensors";

/// Loads a fold's kept model (`folds/<split>/model.safetensors`, architecture from its
/// `network.json`).
pub fn load_fold_model<B: Backend>(
    fold_dir: &Path,
    device: &B::Device,
) -> Result<ClassificationModel3D<B>, TrainError> {
    let net: NetworkRecord = read_json(&fold_dir.join("network.json"))?;
    let model = import_safetensors::<B>(&fold_dir.join(MODEL_FILE), &net.network, device)?;
    if model.input_shape() != net.input_grid {
        return Err(TrainError::Checkpoint {
            path: fold_dir.join(MODEL_FILE),
            message: format!(
                "the weights are for grid {:?}, network.json says {:?}",
                model.input_shape(),
                net.input_grid
            ),
        });
    }
    Ok(model)
}

/// The per-epoch metrics of a finished or interrupted fold, read from its files (for reports).
pub fn fold_history(run_dir: &Path, split: &str) -> Result<Vec<EpochRecord>, TrainError> {
    let dir = fold_dir(run_dir, split);
    let done = dir.join(FOLD_RESULT_FILE);
    if done.is_file() {
        return Ok(read_json::<FoldResult>(&done)?.history);
    }
    let state = dir.join(CHECKPOINT_DIR).join(STATE_FILE);
    if state.is_file() {
        return Ok(read_json::<CheckpointState>(&state)?.history);
    }
    Ok(Vec::new())
}
