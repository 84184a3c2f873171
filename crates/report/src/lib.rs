//! Summaries of relevance maps: regional tables, method comparison, scores against a known
//! ground truth, per-patient summaries, and the figures of the study.
//!
//! Inputs are plain arrays and tables: relevance maps as `ndarray` volumes indexed `[i, j, k]`
//! (the NIfTI x, y, z voxel axes of the project's RAS MNI grids), atlases from
//! [`adni_data::atlas`], and the training run's own CSV files read into polars frames. Outputs
//! are polars frames ([`tables::write_table`] writes them as CSV and Markdown) and PNG figures
//! ([`figures`]), all written atomically.
//!
//! | module | what it owns |
//! |---|---|
//! | [`classification`] | the training run's tables read back (epochs, folds, summary, predictions); the kept-epoch join; the report's classification tables and figures |
//! | [`baselines`] | linear baselines on the same folds: planted-region ceiling, whole-brain shortcut checks |
//! | [`regions`] | relevance per atlas region: the paper's score, density, rank; atlas placement |
//! | [`compare`] | method against method: normalised distance, correlation, top-10 overlap |
//! | [`conservation`] | LRP's conservation: Σ relevance / logit per model |
//! | [`faithfulness`] | deletion curves (Samek et al. 2017): orders, steps, AOPC and its patient-bootstrap summary |
//! | [`ground_truth`] | relevance mass / rank accuracy and the pointing game against planted atrophy |
//! | [`patients`] | per scan: top regions and the share of relevance in the temporal lobe; the report's `patients` table from `scan_regions.csv` |
//! | [`relevance_report`] | the report's relevance part: region tables, method comparison, the paper's figure, the viewer, ground-truth tables, from an interpretation run's folder |
//! | [`sanity_report`] | the report's sanity part: tables and figures of the sanity runner's files (a `SanityLayout`), the trust summary |
//! | [`sanity_tables`] | the sanity runner's CSVs, one row type per table, written by the runner and read here by the same column constants |
//! | [`report_md`] | `REPORT.md` of a reproduction from the report's tables and a [`report_md::ReportContext`] of plain values (the ground-truth target, the differences from the paper, relative links) |
//! | [`sanity`] | can the maps be trusted? randomisation cascade, shuffled-label model, deletion curves, ground truth side by side; a verdict per method and the paragraph that reads it out |
//! | [`similarity`] | two maps alike? Spearman rank correlation and SSIM, for the randomisation test (Adebayo et al. 2018) |
//! | [`sweep`] | the effect-size sweep: classification and mass accuracy per effect size |
//! | [`tables`] | CSV + Markdown writing, stacking tables under key columns, reading CSV |
//! | [`figures`] | the paper's figure, slice grids, bar charts, matrices, learning and ROC curves |
//! | [`html`] | `REPORT.html` from `REPORT.md` (sortable tables, embedded table files) and the NiiVue viewer of the mean maps over the template |
//!
//! *Architecture invariant:* `report` knows nothing about Burn or the CNN; it reads arrays and
//! tables and writes tables and pictures. It does not reach back up the chain (no relevance
//! computation, no CNN training); the only thing it fits is the [`baselines`]' logistic
//! regression on a handful of per-scan features.
//!
//! *Architecture invariant:* figures render text with the font embedded in this crate
//! (`assets/DejaVuSans.ttf`), never with system fonts, so they look the same on every machine.
//!
//! *Architecture invariant:* `REPORT.html` and its viewer load nothing from the network: NiiVue
//! is vendored (`assets/niivue/`, version and sha256 checked by a test) and copied into the run
//! folder, and the volumes travel inside scripts beside the page.

pub mod baselines;
pub mod classification;
pub mod compare;
pub mod conservation;
pub mod error;
pub mod faithfulness;
pub mod figures;
pub mod ground_truth;
pub mod html;
pub mod interpretation;
pub mod patients;
pub mod regions;
pub mod relevance_report;
pub mod report_md;
pub mod sanity;
pub mod sanity_report;
pub mod sanity_tables;
pub mod similarity;
pub mod sweep;
pub mod tables;

pub use error::{ReportError, Result, ResultExt};
