//! A fold's checkpoint folder: reading an interrupted fold's index back, checkpointing an epoch,
//! and what the epochs trained so far left (the files' formats are [`crate::checkpoint`]'s).

use std::path::PathBuf;

use burn::module::Module;
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;

use super::records::{BestEpoch, CheckpointState, EpochRecord, check_same_settings};
use super::{SelectionMetric, TrainError};
use crate::ClassificationModel3D;
use crate::checkpoint::{
    STATE_FILE, best_model_file, model_file, optimizer_file, prune, read_json, save_record, write_json,
};
use crate::metrics::Prediction;

/// Held-out predictions of one epoch's model.
#[derive(Debug, Clone)]
pub(super) struct Evaluated {
    pub(super) epoch: usize,
    pub(super) validation: Option<Vec<Prediction>>,
    pub(super) test: Option<Vec<Prediction>>,
}

/// What the epochs trained so far left: their metrics, the best epoch (keep = best) and its
/// checkpointed model, and the held-out predictions of the last and of the best epoch made in
/// this call, reused for the kept model (evaluating the same weights on the same scans again
/// would give the same numbers).
#[derive(Default)]
pub(super) struct EpochsSoFar {
    pub(super) history: Vec<EpochRecord>,
    pub(super) best: Option<BestEpoch>,
    pub(super) best_file: Option<String>,
    last_evaluated: Option<Evaluated>,
    best_evaluated: Option<Evaluated>,
}

impl EpochsSoFar {
    /// The epochs of an interrupted fold, from its checkpoint index (no predictions: they were
    /// made by another call).
    pub(super) fn resumed(state: &CheckpointState) -> Self {
        EpochsSoFar {
            history: state.history.clone(),
            best: state.best,
            best_file: state.best_model_file.clone(),
            last_evaluated: None,
            best_evaluated: None,
        }
    }

    /// The validation and test predictions of epoch `epoch` made in this call, where there are.
    pub(super) fn take_cached(&mut self, epoch: usize) -> (Option<Vec<Prediction>>, Option<Vec<Prediction>>) {
        let cached =
            [self.last_evaluated.take(), self.best_evaluated.take()].into_iter().flatten().find(|e| e.epoch == epoch);
        match cached {
            Some(e) => (e.validation, e.test),
            None => (None, None),
        }
    }
}

/// A fold's checkpoint folder and the settings its index records.
pub(super) struct Checkpoints {
    pub(super) dir: PathBuf,
    pub(super) settings: String,
}

impl Checkpoints {
    /// The index of an interrupted fold, checked against the settings; without `resume` an
    /// interrupted fold is an error (its checkpoint is never overwritten silently).
    pub(super) fn saved(&self, name: &str, epochs: usize, resume: bool) -> Result<Option<CheckpointState>, TrainError> {
        let state_path = self.dir.join(STATE_FILE);
        if !state_path.is_file() {
            return Ok(None);
        }
        let state: CheckpointState = read_json(&state_path)?;
        check_same_settings(&state.settings, &self.settings, &state_path)?;
        if !resume {
            return Err(TrainError::Run(format!(
                "fold `{name}` was interrupted after epoch {} of {} ({}); pass --resume to continue it, \
                 or delete that folder to start it again",
                state.epochs_done,
                epochs,
                self.dir.display()
            )));
        }
        Ok(Some(state))
    }

    /// Checkpoints the epoch of `record`: records first, the index last, then the previous
    /// epoch's records go. A better validation score (keep = best) also saves the model as the
    /// best one. `record` and `evaluated` join `so_far`.
    pub(super) fn save<B: AutodiffBackend, O: Optimizer<ClassificationModel3D<B>, B>>(
        &self,
        so_far: &mut EpochsSoFar,
        selection: SelectionMetric,
        record: EpochRecord,
        evaluated: Evaluated,
        model: &ClassificationModel3D<B>,
        optim: &O,
    ) -> Result<(), TrainError> {
        let (dir, epoch) = (&self.dir, record.epoch);
        std::fs::create_dir_all(dir).map_err(|e| TrainError::Io { path: dir.clone(), source: e })?;
        if let Some(v) = &record.validation {
            let score = selection.score(v);
            let better = match so_far.best {
                None => true,
                Some(b) => score > b.score || (b.score.is_nan() && !score.is_nan()),
            };
            if better {
                so_far.best = Some(BestEpoch { epoch, score });
                so_far.best_evaluated = Some(evaluated.clone());
                let file = best_model_file(epoch);
                save_record::<B, _>(model.clone().into_record(), &dir.join(&file))?;
                so_far.best_file = Some(file);
            }
        }
        let (mfile, ofile) = (model_file(epoch), optimizer_file(epoch));
        save_record::<B, _>(model.clone().into_record(), &dir.join(&mfile))?;
        save_record::<B, _>(optim.to_record(), &dir.join(&ofile))?;
        so_far.history.push(record);
        so_far.last_evaluated = Some(evaluated);
        let state = CheckpointState {
            settings: self.settings.clone(),
            epochs_done: epoch,
            history: so_far.history.clone(),
            best: so_far.best,
            model_file: mfile.clone(),
            optimizer_file: ofile.clone(),
            best_model_file: so_far.best_file.clone(),
        };
        write_json(&dir.join(STATE_FILE), &state)?;
        let mut keep = vec![STATE_FILE, mfile.as_str(), ofile.as_str()];
        if let Some(f) = &so_far.best_file {
            keep.push(f);
        }
        prune(dir, &keep);
        Ok(())
    }
}
