//! The crate's error type: every message names the file, row, column or key at fault.

use std::path::PathBuf;

/// Everything that can go wrong while reading, checking or writing ADNI-style data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A NIfTI file that could not be read or written.
    #[error("{path}: not a readable NIfTI-1 or NIfTI-2 file: {message}")]
    Nifti {
        /// The file involved.
        path: PathBuf,
        /// What the NIfTI reader or writer said.
        message: String,
    },
    /// A volume whose shape or affine is not the one expected.
    #[error("{path}: {message}")]
    Grid {
        /// The file involved.
        path: PathBuf,
        /// What differs from the expected grid.
        message: String,
    },
    /// A table that is missing a column or holds a value that cannot be parsed.
    #[error("{path}: {message}")]
    Table {
        /// The table file.
        path: PathBuf,
        /// What is wrong, naming row (1-based, header = row 1) and column.
        message: String,
    },
    /// A split in which one patient appears on both sides, or an impossible split request.
    #[error("{0}")]
    Split(String),
    /// An atlas whose labels or label table are inconsistent.
    #[error("{path}: {message}")]
    Atlas {
        /// The atlas file (volume or label table).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An output path whose name the writer cannot honour (e.g. a NIfTI output without `.nii`).
    #[error("{path}: {message}")]
    OutputName {
        /// The output path as given.
        path: PathBuf,
        /// What name was expected.
        message: String,
    },
    /// A folder that another run is writing into (see [`crate::lock`]).
    #[error("{path}: {message}")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, and what to do.
        message: String,
    },
    /// An invalid parameter value (config key or argument).
    #[error("invalid value for `{key}`: {message}")]
    Invalid {
        /// The config key or argument name.
        key: String,
        /// What was expected.
        message: String,
    },
    /// A polars failure while building or writing a table.
    #[error("table operation failed: {0}")]
    Polars(#[from] polars::error::PolarsError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), source }
    }
}
