//! What can go wrong while training or merging.

use std::path::PathBuf;

use adni_data::DataError;
use polars::prelude::PolarsError;

use crate::ModelError;

/// What can go wrong while training or merging.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A `[train]` value is out of range.
    #[error("invalid value for `[train] {key}`: {message}")]
    Config {
        /// The key.
        key: &'static str,
        /// What was found and expected.
        message: String,
    },
    /// A split puts a patient on both sides (or is otherwise unusable): training refuses it.
    #[error("refusing to train on split `{split}`: {message}")]
    Split {
        /// The split's name.
        split: String,
        /// What is wrong.
        message: String,
    },
    /// Data could not be read, preprocessed or written.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The network could not be built (bad `[model]` values, grid too small, …).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A table could not be built.
    #[error("table operation failed: {0}")]
    Polars(#[from] PolarsError),
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint or result file that cannot be used.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The run folder holds something that conflicts with this call (other settings, an
    /// interrupted fold without `--resume`, unfinished folds for a merge, a fold that does not
    /// exist, …).
    #[error("{0}")]
    Run(String),
    /// The test hook [`TrainOptions::stop_after_batches`](super::TrainOptions::stop_after_batches)
    /// stopped the run, as a kill would.
    #[error("training stopped after {batches} batches (stop_after_batches), as if killed")]
    Stopped {
        /// Training steps done in this call.
        batches: usize,
    },
}
