//! ADNI-style data for the project: metadata tables (polars), NIfTI volumes (ndarray), atlases,
//! preprocessing, patient-level splits, and a synthetic ADNI-like cohort with planted atrophy.
//!
//! *Architecture invariant:* this crate knows nothing about Burn or any model.

pub mod atlas;
pub mod error;
pub mod fsutil;
pub mod preprocess;
pub mod volume;
pub mod cohort;
pub mod layout;
pub mod splits;
pub mod table;
pub mod synth;

pub use error::{DataError, Result};
pub use volume::{Affine, Grid, Volume};
