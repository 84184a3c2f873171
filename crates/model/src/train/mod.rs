//! Subject-level cross-validated training of [`ClassificationModel3D`](crate::ClassificationModel3D)
//! (the training and evaluation of Rieke et al., MLCN 2018).
//!
//! One *run* trains one model per split — the k folds of a cross-validation over patients, or
//! the paper's single hold-out split — and merges their results. Per fold: a fresh model, the
//! z-score fitted on that fold's training scans only, Adam (lr 1e-4, PyTorch's betas and
//! epsilon, no weight decay), cross-entropy over the two logits, batches of 5, no augmentation:
//! the paper's recipe by default; `[train]` can change the learning rate, add weight decay and
//! augment the training scans ([`crate::data::Augmentation`]; seeded per epoch and batch).
//! After every epoch the fold writes a checkpoint (model, Adam state, history), so a killed run
//! resumes from its last completed epoch and ends with the same numbers.
//!
//! **Determinism.** Every random draw is seeded from the config's seed, the split's name and the
//! epoch (and batch) through [`derive_seed`]: the initial weights (`"init"`), each epoch's
//! shuffle (`"shuffle"`), each batch's dropout masks (`"dropout"`, the backend generator is
//! re-seeded before every training step) and the inner validation split (`"validation"`). On the
//! CPU the same config therefore gives the same numbers, a resumed run gives the numbers of an
//! uninterrupted one, and a fold trained alone (`--fold K`) gives the numbers it has in a full
//! run. Burn's CPU generator is process-wide, so a run holds a process-wide lock.
//!
//! **Leakage.** Every split is checked with
//! [`check_no_leakage`](adni_data::splits::check_no_leakage) before anything is trained: a
//! patient on both sides of a split is refused.
//!
//! Output folder (`RunSpec::dir`, typically `results/<run>/`):
//!
//! | path | what |
//! |---|---|
//! | `splits/<split>.csv` | the splits trained (`PTID,Image.ID,set`) |
//! | `folds/<split>/normalization/` | the fold's z-score (fitted on its training scans only) |
//! | `folds/<split>/model.safetensors` | the kept model: weights and BatchNorm running statistics under the PyTorch state-dict keys (loads in PyTorch; [`load_fold_model`] here) |
//! | `folds/<split>/network.json` | the architecture and input grid of the model |
//! | `folds/<split>/metrics_epochs.csv` | per epoch: train, validation (keep = best) and test metrics |
//! | `folds/<split>/predictions.csv` | per test (and validation) scan: label, P(AD), prediction of the kept model |
//! | `folds/<split>/fold_result.json` | everything above in one document; written last, marks the fold finished |
//! | `folds/<split>/checkpoint/` | the last completed epoch (removed when the fold finishes) |
//! | `metrics_epochs.csv` | the folds' per-epoch metrics, one table |
//! | `metrics_folds.csv` | per fold: the kept epoch and the kept model's test (and validation) metrics |
//! | `summary.csv`, `summary.md` | mean ± SD over folds, pooled out-of-fold metrics, bootstrap 95 % CI |
//! | `predictions.csv` | every fold's test predictions joined with the cohort metadata |
//! | `timing.csv` | seconds per epoch and fold: the epoch, its training loop, the steps, and the loop's wait for data |
//!
//! | file | what it owns |
//! |---|---|
//! | `config.rs` | `[train]`: [`TrainConfig`], [`TrainMode`], [`KeepEpoch`], [`SelectionMetric`] |
//! | `error.rs` | [`TrainError`] |
//! | `run.rs` | a run: [`RunSpec`], [`TrainOptions`], [`TrainEvent`], [`train_run`], [`check_splits`] |
//! | `fold.rs` | one fold: its sets and z-score, the epochs, the kept model and its files |
//! | `checkpoints.rs` | a fold's checkpoint: resuming from it, writing it after every epoch |
//! | `predict.rs` | inference: [`predict()`] |
//! | `records.rs` | the JSON documents of a fold and the settings string they are compared by |
//! | `layout.rs` | reading a fold's files back: [`load_fold_model`], [`fold_history`] (where they lie: [`adni_data::run_layout`]) |
//! | `tables.rs` | the per-epoch and per-scan CSV tables, as rows of [`adni_data::run_tables`] |
//! | `merge.rs` | the run-level tables and summary: [`merge_run`] |
//! | `summary.rs` | the Markdown summary |

mod checkpoints;
mod config;
mod error;
mod fold;
mod layout;
mod merge;
mod predict;
mod records;
mod run;
mod summary;
mod tables;

pub use adni_data::run_tables::SummaryRow;
pub use config::{KeepEpoch, SelectionMetric, TrainConfig, TrainMode};
pub use error::TrainError;
pub use layout::{fold_history, load_fold_model};
pub use merge::{RunSummary, merge_run};
pub use predict::predict;
pub use records::{BestEpoch, EpochRecord, FoldResult, NetworkRecord, ScanPrediction};
pub use run::{RunOutcome, RunSpec, TrainEvent, TrainOptions, check_splits, train_run};

/// A seed for one purpose, derived from the run's seed, the split's name and two counters
/// (epoch, batch): FNV-1a over the parts, then the SplitMix64 finaliser. Distinct purposes,
/// splits and counters give unrelated streams.
pub fn derive_seed(seed: u64, split: &str, purpose: &str, a: u64, b: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &byte in bytes {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(&seed.to_le_bytes());
    eat(split.as_bytes());
    eat(purpose.as_bytes());
    eat(&a.to_le_bytes());
    eat(&b.to_le_bytes());
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
