//! The crate's error type: every message names the table, column, array or file at fault.

use std::path::PathBuf;

/// Everything that can go wrong while summarising relevance maps or drawing figures.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Two arrays (or an array and an atlas) that should share a grid do not.
    #[error("{0}")]
    Shape(String),
    /// A table that lacks a column or holds a value of the wrong kind.
    #[error("table `{table}`, column `{column}`: {message}")]
    Column {
        /// Which table (a role such as `region table` or a file name).
        table: String,
        /// The column at fault.
        column: String,
        /// What was expected.
        message: String,
    },
    /// An invalid argument value.
    #[error("invalid value for `{key}`: {message}")]
    Invalid {
        /// The argument name.
        key: String,
        /// What was expected.
        message: String,
    },
    /// A figure that could not be drawn or encoded.
    #[error("{path}: figure could not be drawn: {message}")]
    Figure {
        /// The PNG file being written.
        path: PathBuf,
        /// What the drawing backend or encoder said.
        message: String,
    },
    /// An error from `adni-data` (atlas placement, atomic writes).
    #[error(transparent)]
    Data(#[from] adni_data::DataError),
    /// A polars failure while building, reading or writing a table.
    #[error("table operation failed: {0}")]
    Polars(#[from] polars::error::PolarsError),
    /// What was being done (the file summarised, the table written) when `source` happened;
    /// `{:#}` of an `anyhow` error shows both, as `anyhow::Context` does.
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: Box<ReportError>,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = ReportError> = std::result::Result<T, E>;

impl ReportError {
    /// A missing or mistyped column of `table`.
    pub fn column(table: &str, column: &str, message: impl Into<String>) -> Self {
        ReportError::Column { table: table.into(), column: column.into(), message: message.into() }
    }

    /// An invalid argument.
    pub fn invalid(key: &str, message: impl Into<String>) -> Self {
        ReportError::Invalid { key: key.into(), message: message.into() }
    }
}

/// Adds what was being done to the error of a result, like `anyhow::Context` (the crate does not
/// depend on `anyhow`).
pub trait ResultExt<T> {
    /// The error, if any, wrapped in [`ReportError::Context`] with `context()`.
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<ReportError>> ResultExt<T> for std::result::Result<T, E> {
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| ReportError::Context { context: context().into(), source: Box::new(e.into()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_shown_above_its_source() {
        let e =
            Err::<(), _>(ReportError::column("a.csv", "x", "missing")).with_context(|| "reading a.csv").unwrap_err();
        assert_eq!(e.to_string(), "reading a.csv");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("table `a.csv`, column `x`: missing"));
    }
}
