//! The synthetic ADNI-like cohort: the project's default data set.
//!
//! It looks and behaves like an ADNI download, so every later stage runs unchanged on it or on
//! real ADNI: the 17-column 1.5 T metadata table, registered images on the ICBM152 2009c 1 mm
//! grid in the ADNI folder layout, CN / MCI / AD patients with 1–3 visits and some duplicate
//! "Scaled_2" reconstructions, rows whose image is missing and, like the study's
//! `067_S_0077/Screening`, known-corrupt scans whose files exist but cannot be read. Unlike ADNI
//! it comes with ground truth: the atrophy planted in every scan (a map and the list of
//! regions), so that relevance maps can be scored.
//!
//! Output layout of [`generate`] under `out_dir`:
//!
//! | path | what |
//! |---|---|
//! | `ADNI_synth_1.5T.csv` | the metadata table (exact 17-column header) |
//! | `images/<PTID>/<Visit>/<PTID>_<date>_<Visit>_<Image.ID>_<DX>_Warped.nii.gz` | float32 scans, template grid and affine; the scans of known-corrupt visits are truncated NIfTI files (a valid gzip stream that ends inside the voxel data) |
//! | `known_corrupt.txt` | the known-corrupt visits, one `PTID/Visit` a line (`Visit` as in the table, e.g. `Month 12`), sorted: the cohort filter's `known_corrupt` list |
//! | `brain_mask.nii.gz` | the template brain mask used by the generator (uint8 0/1, template grid and affine; the ICBM152 mask for the real anatomy), for masking the images in preprocessing |
//! | `ground_truth/atrophy/<Image.ID>_atrophy.nii.gz` | planted tissue-loss map of each written scan, aligned with the image |
//! | `ground_truth/scans.csv` | per table row: group, severity, planted amounts, whether the image was written and whether it is corrupt |
//! | `ground_truth/regions.csv` | per table row and affected atlas label: planted tissue loss and boundary shift |
//! | `ground_truth/atlas.nii.gz`, `ground_truth/atlas_labels.csv` | the atlas used (labels; `label,name,pair_name,hemisphere`) |
//! | `synth_config.json` | the fully resolved config |
//! | `manifest.json` | every file with its size and the known-corrupt list; written last, so a folder without it is incomplete |
//!
//! *Determinism:* the same config, anatomy and seed give byte-identical files, whatever the
//! number of threads: every patient, acquisition and volume slice draws from its own seeded
//! ChaCha8 stream.

mod anatomy;
mod cohort;
mod field;
mod output;
mod render;
mod truth;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

pub use anatomy::{Anatomy, RealAnatomyFiles};
pub use cohort::PatientGroup;
pub use output::{
    BRAIN_MASK_FILE, CORRUPT_KEPT_BYTES, FORMAT_VERSION, GROUND_TRUTH_DIR, IMAGES_DIR, KNOWN_CORRUPT_FILE,
    MANIFEST_FILE, SCANS_FILE, TABLE_FILE, is_complete,
};
pub use render::{
    AGEING_DIFFUSE_LOSS, AGEING_VENTRICLE_MM, CONTRACTION_MM_AT_UNIT, MAX_TISSUE_LOSS, REFERENCE_BRAIN_MM3,
    TISSUE_LOSS_AT_UNIT, VENTRICLE_SMOOTHING_MM,
};
pub use truth::{GroundTruth, is_cohort_table};

/// Where the template anatomy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnatomySource {
    /// The ICBM152 2009c T1, brain mask and CerebrA atlas (downloaded by `fetch-data`). Default.
    #[default]
    Real,
    /// The procedural phantom of [`Anatomy::phantom`] (no download; for tests and offline use).
    Phantom,
}

/// Everything that shapes a synthetic cohort. Deserialised from TOML (unknown keys are refused);
/// every field has a default, documented on the field.
///
/// Lengths in mm refer to an adult brain (the ICBM152 brain mask, [`REFERENCE_BRAIN_MM3`]); on a
/// smaller anatomy such as the phantom they shrink with the cube root of its brain volume, so
/// that deformations and effects keep their proportions to the anatomy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// Seed of every random choice. Default 2018.
    pub seed: u64,
    /// Template anatomy: `real` (default) or `phantom`.
    pub anatomy: AnatomySource,
    /// Grid of the phantom (1 mm voxels, centre at world 0). Default `[64, 76, 64]`.
    pub phantom_shape: [usize; 3],
    /// Number of cognitively normal patients. Default 30.
    pub n_cn: usize,
    /// Number of Alzheimer's disease patients. Default 30.
    pub n_ad: usize,
    /// Number of MCI patients (removed by the study's filter; some convert). Default 8.
    pub n_mci: usize,
    /// Relative frequencies of patients with 1, 2 and 3 visits (Screening, Month 12,
    /// Month 24). Default `[0.15, 0.25, 0.6]`.
    pub visit_weights: [f64; 3],
    /// Share of visits that also have a second `…; Scaled_2` reconstruction (a duplicate row
    /// and image of the same acquisition, differently scaled). Default 0.15.
    pub duplicate_fraction: f64,
    /// Share of table rows whose image is not written (round(share · rows), at least one row
    /// when positive), so that the missing-file filter has work. Default 0.02.
    pub missing_fraction: f64,
    /// Number of known-corrupt visits, like the study's `067_S_0077/Screening`: that many
    /// (patient, visit) pairs, drawn from the seed among the visits of CN and AD patients whose
    /// images are all written (rows that the later filters of the study would keep), get every
    /// image (primary and any `Scaled_2` duplicate) written as a truncated NIfTI under its
    /// normal path, so that the file exists but cannot be read. Their table rows stay; the list
    /// is written to `known_corrupt.txt`, for the cohort filter's `known_corrupt`. Must not
    /// exceed the number of such visits. Default 1.
    pub n_corrupt: usize,
    /// Share of MCI patients with at least two visits whose `DX` becomes `Dementia` at a later
    /// visit (`Screen.Diagnosis` stays MCI). Default 0.35.
    pub mci_conversion_fraction: f64,
    /// Scales every disease effect. Disease severity (unitless) is drawn per patient: AD uniform
    /// in 0.3–1.0 at Screening, growing 0.10–0.25 per year; stable MCI 0.10–0.35, +0–0.08 per
    /// year; converting MCI 0.30–0.55, +0.15–0.30 per year; CN 0. A region of weight w then
    /// loses `0.35 · effect_size · severity · w` of its tissue signal at its core (towards CSF
    /// intensity; at most 0.9), its boundary moves inward by `1.0 · effect_size · severity · w`
    /// mm and the ventricle walls move outward by `disease_ventricle_mm · effect_size · severity`
    /// mm (plus ageing). Default 1.0; 0 gives a cohort without disease effect.
    pub effect_size: f64,
    /// Outward shift (mm) of the ventricle walls per unit of disease severity (times
    /// `effect_size`). Default 0: the disease changes only the atrophy regions, so the
    /// ground-truth atrophy maps cover every voxel the disease changed, and ventricle volume
    /// does not give the label away (a whole-brain shortcut; see the report's baselines).
    /// Ventricles still widen with age in every group. Set 2.0 for the generator of
    /// version 0.1 (disease-driven ventricle widening outside the ground truth).
    pub disease_ventricle_mm: f64,
    /// Regions with atrophy, matched case-insensitively against the atlas pair names (both
    /// sides). Default: Hippocampus, Amygdala, Entorhinal, Parahippocampal, Inferior temporal,
    /// Middle Temporal (the regions the paper names).
    pub atrophy_regions: Vec<String>,
    /// Weight of each entry of `atrophy_regions` (same length), or empty for weight 1 each.
    /// Default `[1.0, 0.9, 0.9, 0.7, 0.5, 0.4]`.
    pub region_weights: Vec<f64>,
    /// Regions whose walls move outward with disease and age. Default: Lateral Ventricle,
    /// Inferior Lateral Ventricle.
    pub ventricle_regions: Vec<String>,
    /// Scales normal ageing, which every group gets alike: per patient an age factor a uniform
    /// in 0–1, ageing = `ageing · (0.5 a + 0.05 · years since Screening)`; ventricle walls move
    /// out by 2 mm and the whole brain loses 5 % tissue signal per unit of ageing. Not part of
    /// the atrophy ground truth. Default 1.0.
    pub ageing: f64,
    /// Rician noise level as a fraction of the white-matter intensity. Default 0.03.
    pub noise_sd: f64,
    /// Standard deviation of the log-bias coefficients (linear and quadratic per axis) of the
    /// smooth multiplicative bias field. Default 0.05.
    pub bias_field: f64,
    /// Standard deviation of the global intensity scale of a scan (around 1). Default 0.05.
    pub intensity_scale_sd: f64,
    /// Largest relative anisotropic scale of a patient's brain about its centre (uniform in
    /// ±this per axis). Default 0.04.
    pub global_scale: f64,
    /// Standard deviation (mm, per axis) of the amplitude of each of the 6 Gaussian bumps
    /// (radius 10–25 mm) of a patient's smooth local displacement. Default 2.0.
    pub deformation_mm: f64,
    /// Blur (mm) of the region indicators that shape the tissue-loss maps. Default 1.5.
    pub atrophy_smoothing_mm: f64,
    /// Site numbers used in `PTID` (`SSS_S_RRRR`), 1–999. Default: a few ADNI1 sites.
    pub sites: Vec<u16>,
    /// First possible Screening exam date (ISO). Default `2005-09-01`.
    pub start_date: String,
    /// Screening exams spread uniformly over this many days after `start_date`. Default 600.
    pub enrolment_days: u32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 2018,
            anatomy: AnatomySource::Real,
            phantom_shape: [64, 76, 64],
            n_cn: 30,
            n_ad: 30,
            n_mci: 8,
            visit_weights: [0.15, 0.25, 0.6],
            duplicate_fraction: 0.15,
            missing_fraction: 0.02,
            n_corrupt: 1,
            mci_conversion_fraction: 0.35,
            effect_size: 1.0,
            disease_ventricle_mm: 0.0,
            atrophy_regions: [
                "Hippocampus",
                "Amygdala",
                "Entorhinal",
                "Parahippocampal",
                "Inferior temporal",
                "Middle Temporal",
            ]
            .map(String::from)
            .to_vec(),
            region_weights: vec![1.0, 0.9, 0.9, 0.7, 0.5, 0.4],
            ventricle_regions: vec!["Lateral Ventricle".into(), "Inferior Lateral Ventricle".into()],
            ageing: 1.0,
            noise_sd: 0.03,
            bias_field: 0.05,
            intensity_scale_sd: 0.05,
            global_scale: 0.04,
            deformation_mm: 2.0,
            atrophy_smoothing_mm: 1.5,
            sites: vec![2, 5, 11, 13, 23, 27, 33, 67, 94, 127, 130, 136, 141],
            start_date: "2005-09-01".into(),
            enrolment_days: 600,
        }
    }
}

impl SynthConfig {
    /// A small, fast cohort on a 40×48×40 phantom for tests: 3 CN, 3 AD, 2 MCI, more
    /// duplicates (0.25) and missing rows (0.1) than the default so that both occur, and one
    /// known-corrupt visit.
    pub fn quick() -> SynthConfig {
        SynthConfig {
            anatomy: AnatomySource::Phantom,
            phantom_shape: [40, 48, 40],
            n_cn: 3,
            n_ad: 3,
            n_mci: 2,
            duplicate_fraction: 0.25,
            missing_fraction: 0.1,
            ..SynthConfig::default()
        }
    }

    /// Checks every value; the error names the key and what was expected.
    pub fn validate(&self) -> Result<()> {
        let invalid = |key: &str, message: String| Err(DataError::Invalid { key: key.into(), message });
        if self.n_cn + self.n_ad + self.n_mci == 0 {
            return invalid("n_cn", "the cohort has no patients, expected n_cn + n_ad + n_mci ≥ 1".into());
        }
        for (key, v) in [
            ("duplicate_fraction", self.duplicate_fraction),
            ("missing_fraction", self.missing_fraction),
            ("mci_conversion_fraction", self.mci_conversion_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return invalid(key, format!("{v} is not a share, expected a number in 0–1"));
            }
        }
        if self.missing_fraction >= 1.0 {
            return invalid("missing_fraction", "1 would write no image at all, expected a share below 1".into());
        }
        if self.n_corrupt > 0 && self.n_cn + self.n_ad == 0 {
            return invalid(
                "n_corrupt",
                format!(
                    "{} known-corrupt visits asked for, but there are no CN or AD patients to draw them from; \
                     expected n_corrupt = 0 or n_cn + n_ad ≥ 1",
                    self.n_corrupt
                ),
            );
        }
        let max_corrupt = (self.n_cn + self.n_ad).saturating_mul(cohort::VISITS.len());
        if self.n_corrupt > max_corrupt {
            return invalid(
                "n_corrupt",
                format!(
                    "{} known-corrupt visits asked for, but {} CN and AD patients have at most {max_corrupt} visits; \
                     expected n_corrupt ≤ {max_corrupt}",
                    self.n_corrupt,
                    self.n_cn + self.n_ad
                ),
            );
        }
        if self.visit_weights.iter().any(|w| !w.is_finite() || *w < 0.0)
            || self.visit_weights.iter().sum::<f64>() <= 0.0
        {
            return invalid(
                "visit_weights",
                format!("{:?}: expected three non-negative weights with a positive sum", self.visit_weights),
            );
        }
        for (key, v) in [
            ("effect_size", self.effect_size),
            ("disease_ventricle_mm", self.disease_ventricle_mm),
            ("ageing", self.ageing),
            ("noise_sd", self.noise_sd),
            ("bias_field", self.bias_field),
            ("intensity_scale_sd", self.intensity_scale_sd),
            ("deformation_mm", self.deformation_mm),
        ] {
            if !v.is_finite() || v < 0.0 {
                return invalid(key, format!("{v}: expected a finite number ≥ 0"));
            }
        }
        if !(0.0..0.3).contains(&self.global_scale) {
            return invalid("global_scale", format!("{}: expected a number in 0–0.3", self.global_scale));
        }
        if !(self.atrophy_smoothing_mm.is_finite()
            && self.atrophy_smoothing_mm > 0.0
            && self.atrophy_smoothing_mm <= 20.0)
        {
            return invalid(
                "atrophy_smoothing_mm",
                format!("{}: expected a number in (0, 20]", self.atrophy_smoothing_mm),
            );
        }
        if !self.region_weights.is_empty() && self.region_weights.len() != self.atrophy_regions.len() {
            return invalid(
                "region_weights",
                format!(
                    "{} weights for {} atrophy_regions, expected one weight per region (or an empty list for weight 1 each)",
                    self.region_weights.len(),
                    self.atrophy_regions.len()
                ),
            );
        }
        if let Some(w) = self.region_weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
            return invalid("region_weights", format!("{w}: expected finite weights ≥ 0"));
        }
        if self.sites.is_empty() || self.sites.iter().any(|&s| s == 0 || s > 999) {
            return invalid("sites", format!("{:?}: expected a non-empty list of site numbers 1–999", self.sites));
        }
        if self.enrolment_days > 3650 {
            return invalid("enrolment_days", format!("{}: expected at most 3650 days", self.enrolment_days));
        }
        cohort::parse_start_date(&self.start_date)?;
        Ok(())
    }
}

/// What a generation produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthSummary {
    /// Table rows (scans), written or not.
    pub scans: usize,
    /// Patients per screening group.
    pub patients_cn: usize,
    /// See [`SynthSummary::patients_cn`].
    pub patients_ad: usize,
    /// See [`SynthSummary::patients_cn`].
    pub patients_mci: usize,
    /// MCI patients whose `DX` becomes `Dementia` at a later visit.
    pub mci_converters: usize,
    /// Rows that are duplicate `Scaled_2` reconstructions.
    pub duplicates: usize,
    /// Images written.
    pub images_written: usize,
    /// Rows whose image was deliberately not written.
    pub missing_rows: usize,
    /// Rows whose image is written as a corrupt (truncated) file: every scan of the
    /// `n_corrupt` visits listed in `known_corrupt.txt` (counted in `images_written` too).
    pub corrupt_scans: usize,
    /// Wall-clock seconds of the whole generation.
    pub seconds: f64,
    /// Wall-clock seconds per written image (all threads together).
    pub seconds_per_image: f64,
}

/// Generates the cohort of `cfg` from `anatomy` into `out_dir` (see the module docs for the
/// layout). `progress(done, total)` is called from worker threads after each written image
/// (and once with `done = 0` before the first).
///
/// `out_dir` must be empty, absent, or a previous output of this generator (then its
/// `images/` and `ground_truth/` folders are replaced). The manifest is removed first and
/// written last, so an interrupted run leaves a folder without `manifest.json`.
pub fn generate(
    cfg: &SynthConfig,
    anatomy: &Anatomy,
    out_dir: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<SynthSummary> {
    let started = Instant::now();
    cfg.validate()?;
    let prep = render::Prepared::new(cfg, anatomy)?;
    let patients = cohort::plan_cohort(cfg, prep.atrophy.len())?;
    output::prepare_out_dir(out_dir)?;
    let mut files = output::FileList::new(out_dir);
    output::write_config(out_dir, cfg, &mut files)?;
    output::write_brain_mask(out_dir, anatomy, &mut files)?;
    let known_corrupt = cohort::known_corrupt(&patients);
    output::write_known_corrupt(out_dir, &known_corrupt, &mut files)?;

    let jobs: Vec<(&cohort::PatientPlan, &cohort::VisitPlan, &cohort::ScanPlan)> = patients
        .iter()
        .flat_map(|p| p.visits.iter().flat_map(move |v| v.scans.iter().map(move |s| (p, v, s))))
        .collect();
    let to_write: Vec<_> = jobs.iter().filter(|(_, _, s)| s.written).copied().collect();
    let total = to_write.len();
    progress(0, total);
    let done = AtomicUsize::new(0);
    let written: Vec<Vec<output::WrittenFile>> = to_write
        .par_iter()
        .map(|&(patient, visit, scan)| {
            let planted = render::planted(cfg, &prep, patient, visit);
            let rendered = render::render_scan(cfg, &prep, patient, scan, &planted);
            let files = output::write_scan(out_dir, anatomy, scan, &rendered)?;
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress(d, total);
            Ok(files)
        })
        .collect::<Result<_>>()?;
    for f in written.into_iter().flatten() {
        files.push(f);
    }

    output::write_tables(out_dir, cfg, &prep, anatomy, &patients, &mut files)?;
    output::write_manifest(out_dir, cfg, anatomy, &files, &known_corrupt, jobs.len(), total)?;

    let seconds = started.elapsed().as_secs_f64();
    let count = |g: PatientGroup| patients.iter().filter(|p| p.group == g).count();
    Ok(SynthSummary {
        scans: jobs.len(),
        patients_cn: count(PatientGroup::CN),
        patients_ad: count(PatientGroup::AD),
        patients_mci: count(PatientGroup::MCI),
        mci_converters: patients.iter().filter(|p| p.converter).count(),
        duplicates: jobs.iter().filter(|(_, _, s)| s.duplicate).count(),
        images_written: total,
        missing_rows: jobs.len() - total,
        corrupt_scans: jobs.iter().filter(|(_, _, s)| s.corrupt).count(),
        seconds,
        seconds_per_image: seconds / total.max(1) as f64,
    })
}
