//! ADNI-style data for the project: metadata tables (polars), NIfTI volumes (ndarray), atlases,
//! preprocessing, patient-level splits, and a synthetic ADNI-like cohort with planted atrophy.
//!
//! Data flow inside the crate: [`table`] (metadata) → [`layout`] (image paths) → [`cohort`]
//! (the study's filters) → [`splits`] (patient-level folds) → [`preprocess`] (mask, downsampling,
//! z-score, cache) over [`volume`] (NIfTI) and [`atlas`] (regions). [`synth`] writes a cohort that
//! the same chain reads like a real ADNI download.
//!
//! *Architecture invariant:* this crate knows nothing about Burn or any model.

pub mod atlas;
pub mod cohort;
pub mod error;
pub mod fsutil;
pub mod layout;
pub mod lock;
pub mod nifti_header;
pub mod preprocess;
pub mod run_layout;
pub mod run_tables;
pub mod splits;
pub mod stats;
pub mod synth;
pub mod table;
pub mod volume;

pub use error::{DataError, Result};
pub use volume::{Affine, Grid, Volume};
