//! One fold: its sets and z-score, the training loop with a checkpoint after every epoch, and
//! the kept model's predictions and files.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use crate::FastAutodiffBackend;
use adni_data::preprocess::{NORM_META_FILE, Normalizer, select_fit_scans};
use adni_data::splits::{Split, SplitSet, inner_validation_split};
use burn::module::{AutodiffModule, Module};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::checkpoints::{Checkpoints, EpochsSoFar, Evaluated};
use adni_data::run_layout::RunLayout;

use super::predict::{logits_to_predictions, predict};
use super::records::{EpochRecord, FoldResult, NetworkRecord, ScanPrediction, check_same_settings, fold_settings};
use super::tables::{write_epoch_csv, write_fold_predictions};
use super::{KeepEpoch, RunSpec, TrainError, TrainEvent, TrainOptions, derive_seed};
use crate::ClassificationModel3D;
use crate::checkpoint::{CHECKPOINT_DIR, load_record, read_json, write_json};
use crate::data::{NormalizedScans, ScanItem};
use crate::metrics::{BinaryMetrics, Prediction};
use crate::weights::export_safetensors;

/// Trains fold `index` of the run; `Ok(false)` when it was already finished.
pub(super) fn train_fold<B: FastAutodiffBackend>(
    spec: &RunSpec,
    index: usize,
    options: &TrainOptions,
    device: &B::Device,
    progress: &(dyn Fn(&TrainEvent<'_>) + Sync),
    steps: &mut usize,
) -> Result<bool, TrainError> {
    let split = &spec.splits[index];
    let name = split.name.as_str();
    let t = &spec.train;
    let settings = fold_settings(spec, split)?;
    let layout = RunLayout::new(&spec.dir).fold(name);
    let result_path = layout.result();
    if result_path.is_file() {
        let done: FoldResult = read_json(&result_path)?;
        check_same_settings(&done.settings, &settings, &result_path)?;
        progress(&TrainEvent::FoldSkipped { split: name, fold: index + 1 });
        return Ok(false);
    }
    let ckpt = Checkpoints { dir: layout.dir().join(CHECKPOINT_DIR), settings };
    let state = ckpt.saved(name, t.epochs, options.resume)?;

    // The sets: keep = best moves a patient-level share of the training patients to validation.
    let split = if t.keep == KeepEpoch::Best {
        let seed = derive_seed(t.seed, name, "validation", 0, 0);
        inner_validation_split(split, &spec.cohort.scans, t.validation_fraction, seed)
            .map_err(|e| TrainError::Split { split: name.to_owned(), message: e.to_string() })?
    } else {
        split.clone()
    };
    let train_items = items(spec, &split, SplitSet::Train);
    let val_items = items(spec, &split, SplitSet::Validation);
    let test_items = items(spec, &split, SplitSet::Test);
    let norm = fold_normalizer(spec, &train_items, &layout.normalization(), state.is_some())?;
    let data = |scans| NormalizedScans { source: &spec.source, normalizer: &norm, scans };
    let (train_data, val_data, test_data) = (data(&train_items), data(&val_items), data(&test_items));
    let grid = spec.source.model_grid().shape;

    B::seed(device, derive_seed(t.seed, name, "init", 0, 0));
    let mut model = spec.network.init::<B>(grid, device)?;
    let mut optim = AdamConfig::new()
        .with_beta_1(t.adam_beta1 as f32)
        .with_beta_2(t.adam_beta2 as f32)
        .with_epsilon(t.adam_epsilon as f32)
        .with_weight_decay((t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32)))
        .init::<B, ClassificationModel3D<B>>();
    let (mut so_far, first) = match &state {
        Some(s) => {
            model = model.load_record(load_record::<B, _>(&ckpt.dir.join(&s.model_file), device)?);
            optim = optim.load_record(load_record::<B, _>(&ckpt.dir.join(&s.optimizer_file), device)?);
            (EpochsSoFar::resumed(s), s.epochs_done)
        }
        None => (EpochsSoFar::default(), 0),
    };
    progress(&TrainEvent::FoldStarted {
        split: name,
        fold: index + 1,
        folds: spec.splits.len(),
        first_epoch: first + 1,
        epochs: t.epochs,
        batches: train_items.len().div_ceil(t.batch_size),
        train_scans: train_items.len(),
        validation_scans: val_items.len(),
        test_scans: test_items.len(),
    });
    let job = FoldJob {
        spec,
        name,
        device,
        progress,
        loss_fn: CrossEntropyLossConfig::new().init::<B>(device),
        stop_after_batches: options.stop_after_batches,
    };

    for epoch in first + 1..=t.epochs {
        let started = Instant::now();
        let (train_preds, times);
        (model, train_preds, times) = job.train_epoch(model, &mut optim, train_data, epoch, steps)?;
        let evaluated = job.evaluate_epoch(&model.valid(), epoch, val_data, test_data)?;
        let metrics = |p: &Option<Vec<Prediction>>| p.as_deref().map(BinaryMetrics::from_predictions);
        let record = EpochRecord {
            epoch,
            train: BinaryMetrics::from_predictions(&train_preds),
            validation: metrics(&evaluated.validation),
            test: metrics(&evaluated.test),
            seconds: started.elapsed().as_secs_f64(),
            train_seconds: times.train_seconds,
            step_seconds: times.step_seconds,
            data_wait_seconds: times.data_wait_seconds,
        };
        ckpt.save(&mut so_far, t.selection_metric, record, evaluated, &model, &optim)?;
        write_epoch_csv(&layout.metrics_epochs(), name, &so_far.history)?;
        progress(&TrainEvent::EpochDone {
            split: name,
            epochs: t.epochs,
            record: so_far.history.last().expect("pushed"),
        });
    }

    // The kept model, evaluated once more on every held-out set for its predictions.
    let kept_epoch = match (t.keep, so_far.best, &so_far.best_file) {
        (KeepEpoch::Best, Some(b), Some(file)) => {
            model = model.load_record(load_record::<B, _>(&ckpt.dir.join(file), device)?);
            b.epoch
        }
        _ => t.epochs,
    };
    let eval_model = model.valid();
    let kept = job.evaluate_kept(&eval_model, kept_epoch, so_far.take_cached(kept_epoch), val_data, test_data)?;
    export_safetensors(&eval_model, &layout.model())?;
    write_json(&layout.network(), &NetworkRecord { network: spec.network.clone(), input_grid: grid })?;
    write_fold_predictions(&layout.predictions(), name, &kept.predictions)?;
    let result = FoldResult {
        split: name.to_owned(),
        settings: ckpt.settings,
        device: format!("{device:?}"),
        kept_epoch,
        history: so_far.history,
        scans: [train_items.len(), val_items.len(), test_items.len()],
        validation: kept.validation,
        test: kept.test,
        predictions: kept.predictions,
    };
    write_json(&result_path, &result)?;
    let _ = std::fs::remove_dir_all(&ckpt.dir);
    progress(&TrainEvent::FoldDone { split: name, result: &result });
    Ok(true)
}

/// The kept model's metrics and predictions on the held-out sets.
struct Kept {
    validation: Option<BinaryMetrics>,
    test: BinaryMetrics,
    predictions: Vec<ScanPrediction>,
}

/// Where one epoch's training time went (wall-clock seconds).
#[derive(Debug, Default, Clone, Copy)]
struct EpochTimes {
    /// The training loop, first batch read to last step.
    train_seconds: f64,
    /// The steps: tensors, forward, backward, optimiser, predictions.
    step_seconds: f64,
    /// Waiting for the next batch (reading, normalising, augmenting not done yet).
    data_wait_seconds: f64,
}

/// What every step of one fold's training uses.
struct FoldJob<'a, B: FastAutodiffBackend> {
    spec: &'a RunSpec,
    name: &'a str,
    device: &'a B::Device,
    progress: &'a (dyn Fn(&TrainEvent<'_>) + Sync),
    loss_fn: CrossEntropyLoss<B>,
    stop_after_batches: Option<usize>,
}

impl<B: FastAutodiffBackend> FoldJob<'_, B> {
    /// One epoch of training steps over `data` in the epoch's seeded order (augmentation and
    /// dropout seeded per batch); returns the model, the training forward passes' predictions
    /// and where the epoch's time went. `steps` counts the steps of this call, for
    /// [`TrainOptions::stop_after_batches`].
    ///
    /// The batches are read, normalised and augmented on a second thread, one batch ahead of
    /// the step that trains on it (a channel of one batch), so a step waits for its data only
    /// when reading a batch takes longer than a step. Every batch's content depends only on its
    /// index and seed, so prefetching changes no number.
    fn train_epoch<O: Optimizer<ClassificationModel3D<B>, B>>(
        &self,
        mut model: ClassificationModel3D<B>,
        optim: &mut O,
        data: NormalizedScans<'_>,
        epoch: usize,
        steps: &mut usize,
    ) -> Result<(ClassificationModel3D<B>, Vec<Prediction>, EpochTimes), TrainError> {
        let (t, name, device) = (&self.spec.train, self.name, self.device);
        let augmentation = t.augmentation();
        let batches = data.len().div_ceil(t.batch_size);
        let e = epoch as u64;
        let mut order: Vec<usize> = (0..data.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(t.seed, name, "shuffle", e, 0)));
        let mut train_preds = Vec::with_capacity(order.len());
        let mut times = EpochTimes::default();
        let started = Instant::now();
        let model = std::thread::scope(|scope| {
            let (sender, receiver) = std::sync::mpsc::sync_channel(1);
            let order = &order;
            scope.spawn(move || {
                for (b, chunk) in order.chunks(t.batch_size).enumerate() {
                    let batch = data.batch(chunk).map(|mut batch| {
                        augmentation.apply(&mut batch, derive_seed(t.seed, name, "augment", e, b as u64));
                        batch
                    });
                    // A closed channel: the loop below stopped early (an error or a requested stop).
                    if sender.send(batch).is_err() {
                        break;
                    }
                }
            });
            for b in 0..batches {
                let waited = Instant::now();
                // The reader sends every batch or an error first; it can only have hung up by
                // panicking, and the scope passes that panic on when it joins the thread.
                let Ok(batch) = receiver.recv() else { break };
                let batch = batch?;
                times.data_wait_seconds += waited.elapsed().as_secs_f64();
                let step = Instant::now();
                let labels = batch.labels.clone();
                let (x, y) = batch.into_tensors::<B>(device);
                model.check_input(x.dims())?;
                B::seed(device, derive_seed(t.seed, name, "dropout", e, b as u64));
                let logits = model.forward_train(x);
                let loss = self.loss_fn.forward(logits.clone(), y);
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(t.learning_rate, model, grads);
                train_preds.extend(logits_to_predictions(logits.into_data(), &labels)?);
                times.step_seconds += step.elapsed().as_secs_f64();
                *steps += 1;
                let running_loss = train_preds.iter().map(|p| p.loss).sum::<f64>() / train_preds.len() as f64;
                (self.progress)(&TrainEvent::BatchDone { split: name, epoch, batch: b + 1, batches, running_loss });
                if self.stop_after_batches.is_some_and(|n| *steps >= n) {
                    return Err(TrainError::Stopped { batches: *steps });
                }
            }
            Ok(model)
        })?;
        times.train_seconds = started.elapsed().as_secs_f64();
        Ok((model, train_preds, times))
    }

    /// The predictions of epoch `epoch`'s model on the validation scans (when there are) and on
    /// the test scans (when `evaluate_test_each_epoch`).
    fn evaluate_epoch(
        &self,
        model: &ClassificationModel3D<B::InnerBackend>,
        epoch: usize,
        val_data: NormalizedScans<'_>,
        test_data: NormalizedScans<'_>,
    ) -> Result<Evaluated, TrainError> {
        let t = &self.spec.train;
        let evaluate = |set: SplitSet, data: NormalizedScans<'_>| -> Result<Vec<Prediction>, TrainError> {
            (self.progress)(&TrainEvent::Evaluating { split: self.name, epoch, set, scans: data.len() });
            predict(model, data, t.eval_batch_size, self.device)
        };
        let validation = if val_data.is_empty() { None } else { Some(evaluate(SplitSet::Validation, val_data)?) };
        let test = if t.evaluate_test_each_epoch { Some(evaluate(SplitSet::Test, test_data)?) } else { None };
        Ok(Evaluated { epoch, validation, test })
    }

    /// The kept model's metrics and predictions on the test and (when there are) validation
    /// scans, from `cached` (validation, test) predictions where this call made them.
    fn evaluate_kept(
        &self,
        model: &ClassificationModel3D<B::InnerBackend>,
        kept_epoch: usize,
        cached: (Option<Vec<Prediction>>, Option<Vec<Prediction>>),
        val_data: NormalizedScans<'_>,
        test_data: NormalizedScans<'_>,
    ) -> Result<Kept, TrainError> {
        let (cached_val, cached_test) = cached;
        let mut predictions = Vec::new();
        let mut final_metrics = |set: SplitSet,
                                 data: NormalizedScans<'_>,
                                 cached: Option<Vec<Prediction>>|
         -> Result<BinaryMetrics, TrainError> {
            let preds = match cached {
                Some(p) => p,
                None => {
                    (self.progress)(&TrainEvent::Evaluating {
                        split: self.name,
                        epoch: kept_epoch,
                        set,
                        scans: data.len(),
                    });
                    predict(model, data, self.spec.train.eval_batch_size, self.device)?
                }
            };
            predictions.extend(data.scans.iter().zip(&preds).map(|(s, p)| ScanPrediction {
                image_id: s.image_id,
                ptid: s.ptid.clone(),
                set: set.as_str().to_owned(),
                prediction: *p,
            }));
            Ok(BinaryMetrics::from_predictions(&preds))
        };
        let test = final_metrics(SplitSet::Test, test_data, cached_test)?;
        let validation =
            if val_data.is_empty() { None } else { Some(final_metrics(SplitSet::Validation, val_data, cached_val)?) };
        Ok(Kept { validation, test, predictions })
    }
}

/// The scans of `split` in `set`, in row order.
fn items(spec: &RunSpec, split: &Split, set: SplitSet) -> Vec<ScanItem> {
    let by_id: HashMap<i64, &adni_data::cohort::CohortScan> =
        spec.cohort.scans.iter().map(|s| (s.record.image_id, s)).collect();
    split
        .rows
        .iter()
        .filter(|r| r.set == set)
        .filter_map(|r| by_id.get(&r.image_id).map(|s| ScanItem::from_cohort(s)))
        .collect()
}

/// The fold's z-score: when `resuming` a checkpoint (whose settings, the data's fingerprint
/// included, matched), the saved one if it was fitted on exactly the expected scans and lies on
/// the model grid; else fitted anew on the training scans and saved. A fold that starts afresh
/// always refits: a z-score left by an earlier run may come from other images under the same
/// Image.IDs.
fn fold_normalizer(spec: &RunSpec, train: &[ScanItem], dir: &Path, resuming: bool) -> Result<Normalizer, TrainError> {
    let ids: Vec<i64> = train.iter().map(|s| s.image_id).collect();
    let expected = select_fit_scans(&ids, spec.normalization_max_scans, spec.normalization_seed);
    if resuming
        && dir.join(NORM_META_FILE).is_file()
        && let Ok(saved) = Normalizer::load(dir)
        && saved.image_ids == expected
        && saved.grid().shape == spec.source.model_grid().shape
        && saved.mask.is_some() == spec.source.model_mask.is_some()
    {
        return Ok(saved);
    }
    let norm = spec.source.fit_normalizer(train, spec.normalization_max_scans, spec.normalization_seed)?;
    norm.save(dir)?;
    Ok(norm)
}
