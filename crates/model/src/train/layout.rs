//! Reading a fold's model and history back (where its files lie: [`adni_data::run_layout`]).

use std::path::Path;

use burn::tensor::backend::Backend;

use super::TrainError;
use super::records::{CheckpointState, EpochRecord, FoldResult, NetworkRecord};
use crate::ClassificationModel3D;
use adni_data::run_layout::{FoldLayout, RunLayout};

use crate::checkpoint::{CHECKPOINT_DIR, STATE_FILE, read_json};
use crate::weights::import_safetensors;

/// Loads a fold's kept model (`folds/<split>/model.safetensors`, architecture from its
/// `network.json`).
pub fn load_fold_model<B: Backend>(
    fold_dir: &Path,
    device: &B::Device,
) -> Result<ClassificationModel3D<B>, TrainError> {
    let fold = FoldLayout::new(fold_dir);
    let net: NetworkRecord = read_json(&fold.network())?;
    let model = import_safetensors::<B>(&fold.model(), &net.network, device)?;
    if model.input_shape() != net.input_grid {
        return Err(TrainError::Checkpoint {
            path: fold.model(),
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
    let fold = RunLayout::new(run_dir).fold(split);
    let done = fold.result();
    if done.is_file() {
        return Ok(read_json::<FoldResult>(&done)?.history);
    }
    let state = fold.dir().join(CHECKPOINT_DIR).join(STATE_FILE);
    if state.is_file() {
        return Ok(read_json::<CheckpointState>(&state)?.history);
    }
    Ok(Vec::new())
}
