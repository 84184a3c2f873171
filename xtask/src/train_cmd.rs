//! `cargo xtask train`: subject-level cross-validated (or hold-out) training of the paper's CNN,
//! with progress bars, per-fold jobs, resume and merge (see `model::train`).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use adni_data::preprocess::PreprocessSpec;
use adni_data::run_layout::RunLayout;
use adni_data::splits::kfold_splits;
use model::DeviceKind;
use model::data::VolumeSource;
use model::train::{RunOutcome, RunSpec, TrainEvent, TrainMode, TrainOptions, train_run};

use crate::commands::{cohort_of, load_config_file, lock_folder};
use crate::config::resolve;

/// Arguments of `cargo xtask train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Config file ([data], [split], [preprocess], [train], [model])
    #[arg(long)]
    pub config: PathBuf,
    /// Train only fold K (1-based), e.g. one job of a cluster job array; the call that finishes
    /// the last fold merges, or run again without --fold (or with --merge)
    #[arg(long, value_name = "K")]
    pub fold: Option<usize>,
    /// Continue interrupted folds from their last completed epoch (finished folds are never
    /// retrained)
    #[arg(long)]
    pub resume: bool,
    /// Train nothing: merge the finished folds into the run's tables and summary
    #[arg(long, conflicts_with = "fold")]
    pub merge: bool,
    /// `cpu`, `cuda` or `cuda:N` (GPU number N; overrides [train] device)
    #[arg(long, value_name = "cpu|cuda|cuda:N")]
    pub device: Option<DeviceKind>,
    /// Data randomisation (`cargo xtask sanity`): shuffle the labels of the patients the
    /// (single) split does not test, with this seed, before training; test labels stay true.
    #[arg(skip)]
    pub shuffle_labels: Option<u64>,
}

/// `cargo xtask train`.
pub fn train(args: &TrainArgs) -> Result<()> {
    train_with(load_config_file(&args.config)?, args).map(|_| ())
}

/// Trains the run a loaded config describes (`args.config` is not read again); returns the
/// run's outcome.
pub fn train_with(mut cfg: crate::config::ProjectConfig, args: &TrainArgs) -> Result<RunOutcome> {
    let device = args.device.unwrap_or(cfg.train.device);
    cfg.train.device = device;
    device.check().context("cannot train on the requested device")?;
    let mut cohort = cohort_of(&cfg)?;
    let splits = match cfg.train.mode {
        TrainMode::Kfold => kfold_splits(&cohort.scans, cfg.split.k, cfg.split.seed)?,
        TrainMode::Holdout => {
            vec![crate::data_cmd::configured_holdout(&cfg, &cohort.scans)?]
        }
    };
    if let Some(seed) = args.shuffle_labels {
        let [split] = splits.as_slice() else {
            bail!("shuffled labels need one split (hold-out mode), the config gives {}", splits.len())
        };
        let changed = adni_data::splits::shuffle_training_labels(&mut cohort.scans, split, seed);
        eprintln!(
            "train: data randomisation: the labels of the training patients shuffled (seed {seed}; {changed} \
             changed class); the test patients keep their true labels"
        );
    }
    let p = &cfg.preprocess;
    let Some(first) = cohort.scans.first() else { bail!("the cohort has no scans to train on") };
    let prep = PreprocessSpec { mask: p.mask_path(), downsample: p.downsample };
    let source = VolumeSource::open(&resolve(&p.cache_dir), prep, &first.path)
        .context("cannot set up the preprocessed volumes ([preprocess] mask, downsample, cache_dir)")?;
    let dir = cfg.run.dir();
    // One writer per folder: a per-fold job locks its fold's folder (so the folds of one run can
    // train in parallel), anything else the whole run folder.
    let _lock = match args.fold.filter(|_| !args.merge).and_then(|k| splits.get(k.wrapping_sub(1))) {
        Some(split) => lock_folder(RunLayout::new(&dir).fold(&split.name).dir())?,
        None => lock_folder(&dir)?,
    };
    let spec = RunSpec {
        dir: dir.clone(),
        network: cfg.model.clone(),
        train: cfg.train.clone(),
        cohort,
        splits,
        source,
        normalization_max_scans: p.normalization_max_scans,
        normalization_seed: cfg.split.seed,
    };
    let options =
        TrainOptions { fold: args.fold, resume: args.resume, merge_only: args.merge, stop_after_batches: None };
    let grid = spec.source.model_grid().shape;
    eprintln!(
        "train: {} on {} scans, grid {}×{}×{}, {} epochs, batch {}, keep {}, device {device} → {}",
        match cfg.train.mode {
            TrainMode::Kfold => format!("{}-fold cross-validation", spec.splits.len()),
            TrainMode::Holdout => "hold-out split".to_owned(),
        },
        spec.cohort.scans.len(),
        grid[0],
        grid[1],
        grid[2],
        cfg.train.epochs,
        cfg.train.batch_size,
        format!("{:?}", cfg.train.keep).to_lowercase(),
        dir.display()
    );
    if !adni_data::run_layout::RunLayout::new(&dir).resolved_config().exists() {
        cfg.write_resolved(&dir)?;
    }
    let started = Instant::now();
    let display = Display::new();
    let progress = |e: &TrainEvent<'_>| display.event(e);
    let outcome = match device {
        DeviceKind::Cpu => train_run::<model::CpuTrain>(&spec, &options, &Default::default(), &progress)?,
        DeviceKind::Cuda(index) => run_cuda(index, &spec, &options, &progress)?,
    };
    display.clear();
    cfg.write_resolved(&dir)?;
    report(&outcome, started.elapsed().as_secs_f64(), &dir);
    Ok(outcome)
}

#[cfg(feature = "cuda")]
fn run_cuda(
    index: usize,
    spec: &RunSpec,
    options: &TrainOptions,
    progress: &(dyn Fn(&TrainEvent<'_>) + Sync),
) -> Result<RunOutcome> {
    let device = model::device::cuda_device(index)?;
    Ok(train_run::<model::GpuTrain>(spec, options, &device, progress)?)
}

#[cfg(not(feature = "cuda"))]
fn run_cuda(
    _index: usize,
    _spec: &RunSpec,
    _options: &TrainOptions,
    _progress: &(dyn Fn(&TrainEvent<'_>) + Sync),
) -> Result<RunOutcome> {
    Err(model::ModelError::CudaNotCompiled.into())
}

fn report(outcome: &RunOutcome, seconds: f64, dir: &std::path::Path) {
    if !outcome.skipped.is_empty() {
        outln!("already finished (skipped): {}", outcome.skipped.join(", "));
    }
    if !outcome.trained.is_empty() {
        outln!("trained: {} in {:.0} s", outcome.trained.join(", "), seconds);
    }
    match &outcome.summary {
        Some(summary) => {
            outln!("\n{}", summary.markdown);
            outln!("written: {} (summary.md, summary.csv, metrics_*.csv, predictions.csv, folds/)", dir.display());
        }
        None => outln!(
            "not merged yet: fold(s) {} unfinished; train them (`--fold K`), then run without --fold or with --merge",
            outcome.pending.join(", ")
        ),
    }
}

/// Progress bars: one for the fold's epochs, one for the epoch's batches (with ETA and the
/// running loss), and one line per finished epoch.
struct Display {
    multi: MultiProgress,
    bars: Mutex<Option<(ProgressBar, ProgressBar)>>,
}

impl Display {
    fn new() -> Self {
        Display { multi: MultiProgress::new(), bars: Mutex::new(None) }
    }

    fn style(template: &str) -> ProgressStyle {
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
    }

    fn line(&self, text: String) {
        self.multi.suspend(|| eprintln!("{text}"));
    }

    fn clear(&self) {
        if let Some((e, b)) = self.bars.lock().unwrap_or_else(|p| p.into_inner()).take() {
            b.finish_and_clear();
            e.finish_and_clear();
        }
    }

    fn event(&self, event: &TrainEvent<'_>) {
        match *event {
            TrainEvent::FoldStarted {
                split,
                fold,
                folds,
                first_epoch,
                epochs,
                batches,
                train_scans,
                validation_scans,
                test_scans,
            } => {
                self.clear();
                self.line(format!(
                    "{split} ({fold}/{folds}): {train_scans} training, {validation_scans} validation, {test_scans} test scans{}",
                    if first_epoch > 1 { format!("; resuming at epoch {first_epoch}") } else { String::new() }
                ));
                let e = self.multi.add(ProgressBar::new(epochs as u64));
                e.set_style(Self::style("{msg:>12} epochs  [{bar:30}] {pos}/{len} ({elapsed}, ETA {eta})"));
                e.set_message(split.to_owned());
                e.set_position(first_epoch as u64 - 1);
                e.reset_eta();
                let b = self.multi.add(ProgressBar::new(batches as u64));
                b.set_style(Self::style("{msg:>12} batches [{bar:30}] {pos}/{len} (ETA {eta}) {prefix}"));
                b.set_message(format!("epoch {first_epoch}"));
                *self.bars.lock().unwrap_or_else(|p| p.into_inner()) = Some((e, b));
            }
            TrainEvent::FoldSkipped { split, fold } => {
                self.line(format!("{split} (fold {fold}): already finished, skipped"));
            }
            TrainEvent::BatchDone { epoch, batch, batches, running_loss, .. } => {
                if let Some((_, b)) = &*self.bars.lock().unwrap_or_else(|p| p.into_inner()) {
                    if batch == 1 {
                        b.reset();
                        b.set_length(batches as u64);
                        b.set_message(format!("epoch {epoch}"));
                    }
                    b.set_position(batch as u64);
                    b.set_prefix(format!("loss {running_loss:.4}"));
                }
            }
            TrainEvent::Evaluating { set, scans, .. } => {
                if let Some((_, b)) = &*self.bars.lock().unwrap_or_else(|p| p.into_inner()) {
                    b.set_prefix(format!("evaluating {set} ({scans} scans)"));
                }
            }
            TrainEvent::EpochDone { split, epochs, record } => {
                if let Some((e, _)) = &*self.bars.lock().unwrap_or_else(|p| p.into_inner()) {
                    e.inc(1);
                }
                let mut text = format!(
                    "{split} epoch {}/{epochs}: train loss {:.4} acc {:.3}",
                    record.epoch, record.train.loss, record.train.accuracy
                );
                for (name, m) in [("validation", &record.validation), ("test", &record.test)] {
                    if let Some(m) = m {
                        text += &format!(
                            " | {name} loss {:.4} bal.acc {:.3} AUC {:.3}",
                            m.loss, m.balanced_accuracy, m.roc_auc
                        );
                    }
                }
                text += &format!(" ({:.1} s)", record.seconds);
                self.line(text);
            }
            TrainEvent::FoldDone { split, result } => {
                self.clear();
                let m = &result.test;
                self.line(format!(
                    "{split} done: kept epoch {}; test accuracy {:.3}, balanced accuracy {:.3}, ROC AUC {:.3} on {} scans",
                    result.kept_epoch, m.accuracy, m.balanced_accuracy, m.roc_auc, m.n
                ));
            }
        }
    }
}
