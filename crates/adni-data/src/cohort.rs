//! The study cohort: the table's rows that survive the original filters, in the original order,
//! with the count after each filter.
//!
//! Filters, in order: (a) known-corrupt `PTID/Visit` entries, (b) rows whose image file is not
//! under the images root (switchable off), (c) diagnoses not selected (MCI by default).
//! Label = 1 when `DX == Dementia` (AD), else 0.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::layout::{image_path, image_relpath_str, visit_dir};
use crate::table::{AdniTable, Diagnosis, FieldStrength, ScanRecord, is_valid_ptid};

/// The known-corrupt scans of the original 1.5 T study (`PTID/Visit`).
pub const ORIGINAL_KNOWN_CORRUPT: [&str; 1] = ["067_S_0077/Screening"];

/// Which rows of a table make the cohort. Deserialised from the config; unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CohortFilter {
    /// Scans to drop as `PTID/Visit` (the image folder, e.g. `067_S_0077/Screening`; spaces in
    /// the visit are ignored, so `Month 12` and `Month12` are the same).
    /// Default: the original study's list, [`ORIGINAL_KNOWN_CORRUPT`].
    pub known_corrupt: Vec<String>,
    /// Drop rows whose image file is missing under the images root. Default: `true`; `false`
    /// inspects a table alone (the root is then not read).
    pub check_files: bool,
    /// Diagnoses to keep. Default: `CN` and `Dementia` (MCI removed), as in the study.
    pub diagnoses: Vec<Diagnosis>,
}

impl Default for CohortFilter {
    fn default() -> Self {
        CohortFilter {
            known_corrupt: ORIGINAL_KNOWN_CORRUPT.iter().map(|s| (*s).to_owned()).collect(),
            check_files: true,
            diagnoses: vec![Diagnosis::CN, Diagnosis::Dementia],
        }
    }
}

impl CohortFilter {
    /// Checks the filter: every known-corrupt entry is `PTID/Visit` and at least one diagnosis is
    /// kept. Returns the known-corrupt keys normalised to `PTID/VisitWithoutSpaces`.
    pub fn validate(&self) -> Result<BTreeSet<String>> {
        let mut keys = BTreeSet::new();
        for entry in &self.known_corrupt {
            let parts: Vec<&str> = entry.split('/').collect();
            match parts.as_slice() {
                [ptid, visit] if is_valid_ptid(ptid) && !visit.trim().is_empty() => {
                    keys.insert(format!("{ptid}/{}", visit_dir(visit)));
                }
                _ => {
                    return Err(DataError::Invalid {
                        key: "known_corrupt".into(),
                        message: format!("entry `{entry}` is not of the form PTID/Visit, e.g. 067_S_0077/Screening"),
                    });
                }
            }
        }
        if self.diagnoses.is_empty() {
            return Err(DataError::Invalid {
                key: "diagnoses".into(),
                message: "expected at least one of CN, MCI, Dementia".into(),
            });
        }
        Ok(keys)
    }
}

/// One scan of the cohort.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortScan {
    /// The table row.
    pub record: ScanRecord,
    /// The image file: the one found on disk, or the expected path when files are not checked.
    pub path: PathBuf,
    /// 1 for AD (`DX == Dementia`), 0 otherwise.
    pub label: u8,
}

/// One filter and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilterStep {
    /// What the filter removes.
    pub name: String,
    /// Rows it removed.
    pub removed: usize,
    /// Rows left after it.
    pub remaining: usize,
}

/// Final counts of one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassCount {
    /// `AD`, `CN` or `MCI`.
    pub class: String,
    /// Scans of that diagnosis.
    pub scans: usize,
    /// Patients of that class: a patient's class is their most advanced retained diagnosis
    /// (AD if any retained scan is AD, then MCI, then CN), so each patient counts once.
    pub patients: usize,
}

/// What the filters did, as the original printed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortReport {
    /// The table file.
    pub table: PathBuf,
    /// 1.5 T or 3 T.
    pub field_strength: FieldStrength,
    /// The images root.
    pub images_root: PathBuf,
    /// Rows in the table.
    pub table_rows: usize,
    /// `*.nii` / `*.nii.gz` files found under the root; `None` when files were not checked.
    pub image_files_found: Option<usize>,
    /// The filters in the order applied.
    pub steps: Vec<FilterStep>,
    /// Final counts per class: AD and CN (and MCI when kept).
    pub classes: Vec<ClassCount>,
    /// Final number of scans.
    pub total_scans: usize,
    /// Final number of patients.
    pub total_patients: usize,
}

impl CohortReport {
    /// The report as a tidy long frame with columns `stage`, `measure`, `count`: one `removed`
    /// and one `remaining` row per filter, then `scans` and `patients` rows per class and in
    /// total (stages `final AD`, `final CN`, `final total`).
    pub fn to_dataframe(&self) -> Result<DataFrame> {
        let mut stage = Vec::new();
        let mut measure = Vec::new();
        let mut count = Vec::new();
        let mut push = |s: String, m: &str, c: usize| {
            stage.push(s);
            measure.push(m.to_owned());
            count.push(c as i64);
        };
        push("table".into(), "rows", self.table_rows);
        if let Some(found) = self.image_files_found {
            push("images root".into(), "image files found", found);
        }
        for step in &self.steps {
            push(step.name.clone(), "removed", step.removed);
            push(step.name.clone(), "remaining", step.remaining);
        }
        for class in &self.classes {
            push(format!("final {}", class.class), "scans", class.scans);
            push(format!("final {}", class.class), "patients", class.patients);
        }
        push("final total".into(), "scans", self.total_scans);
        push("final total".into(), "patients", self.total_patients);
        let height = count.len();
        Ok(DataFrame::new(
            height,
            vec![
                Column::new("stage".into(), stage),
                Column::new("measure".into(), measure),
                Column::new("count".into(), count),
            ],
        )?)
    }
}

impl fmt::Display for CohortReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} table {}: {} rows", self.field_strength, self.table.display(), self.table_rows)?;
        match self.image_files_found {
            Some(n) => writeln!(f, "image files found under {}: {n}", self.images_root.display())?,
            None => writeln!(f, "image files not checked")?,
        }
        for step in &self.steps {
            writeln!(f, "removed {} rows: {} ({} remain)", step.removed, step.name, step.remaining)?;
        }
        writeln!(f, "final: {} scans of {} patients", self.total_scans, self.total_patients)?;
        for class in &self.classes {
            writeln!(f, "  {}: {} scans of {} patients", class.class, class.scans, class.patients)?;
        }
        Ok(())
    }
}

/// The cohort: retained scans in table order, and the report of how they were chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cohort {
    /// The retained scans.
    pub scans: Vec<CohortScan>,
    /// The counts.
    pub report: CohortReport,
}

impl Cohort {
    /// The scans as a frame: `PTID`, `RID`, `Image.ID`, `DX`, `label`, `Visit`, `VISCODE`,
    /// `Scan.Date`, `path`.
    pub fn scans_dataframe(&self) -> Result<DataFrame> {
        let s = &self.scans;
        let strs = |f: &dyn Fn(&CohortScan) -> String| s.iter().map(f).collect::<Vec<String>>();
        Ok(DataFrame::new(
            s.len(),
            vec![
                Column::new("PTID".into(), strs(&|c| c.record.ptid.clone())),
                Column::new("RID".into(), s.iter().map(|c| c.record.rid).collect::<Vec<i64>>()),
                Column::new("Image.ID".into(), s.iter().map(|c| c.record.image_id).collect::<Vec<i64>>()),
                Column::new("DX".into(), strs(&|c| c.record.dx.as_str().to_owned())),
                Column::new("label".into(), s.iter().map(|c| i32::from(c.label)).collect::<Vec<i32>>()),
                Column::new("Visit".into(), strs(&|c| c.record.visit.clone())),
                Column::new("VISCODE".into(), strs(&|c| c.record.viscode.clone())),
                Column::new("Scan.Date".into(), strs(&|c| c.record.scan_date.to_string())),
                Column::new("path".into(), strs(&|c| c.path.to_string_lossy().into_owned())),
            ],
        )?)
    }

    /// Number of distinct patients.
    pub fn patient_count(&self) -> usize {
        self.scans.iter().map(|s| s.record.ptid.as_str()).collect::<BTreeSet<_>>().len()
    }
}

/// Deepest folder level searched under the images root (the layout needs 3); guards against
/// symbolic-link loops.
const MAX_DEPTH: usize = 16;

/// Lists `*.nii` / `*.nii.gz` files under `root` (following symbolic links), as paths relative to
/// `root` with `/` separators, sorted.
fn list_image_files(root: &Path) -> Result<Vec<String>> {
    fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DataError::io(dir, e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue; // not UTF-8: cannot be a layout path
            };
            let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            // `metadata` follows symbolic links; a dangling link is skipped.
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if meta.is_dir() {
                if depth < MAX_DEPTH {
                    walk(&path, &rel, depth + 1, out)?;
                }
            } else if meta.is_file() && (name.ends_with(".nii") || name.ends_with(".nii.gz")) {
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, "", 0, &mut out)?;
    out.sort();
    Ok(out)
}

/// The join key of an image path: without a trailing `.gz`, so that a decompressed `.nii` copy
/// of an image counts as present.
fn join_key(rel: &str) -> &str {
    rel.strip_suffix(".gz").unwrap_or(rel)
}

/// For each of `rows` (a table row's expected relative path), the relative path of the file found
/// on disk, if any. The join is done in polars: files found (`key`, `found`) inner-joined with
/// the expected paths (`row`, `key`). A `.nii.gz` is preferred over a `.nii` of the same scan.
fn find_files(found: &[String], expected: &[String]) -> Result<Vec<Option<String>>> {
    // One file per key, preferring the compressed one.
    let mut by_key: BTreeMap<&str, &str> = BTreeMap::new();
    for rel in found {
        let slot = by_key.entry(join_key(rel)).or_insert(rel);
        if rel.ends_with(".gz") {
            *slot = rel;
        }
    }
    let files = DataFrame::new(
        by_key.len(),
        vec![
            Column::new("key".into(), by_key.keys().copied().collect::<Vec<&str>>()),
            Column::new("found".into(), by_key.values().copied().collect::<Vec<&str>>()),
        ],
    )?;
    let table = DataFrame::new(
        expected.len(),
        vec![
            Column::new("row".into(), (0..expected.len() as i64).collect::<Vec<i64>>()),
            Column::new("key".into(), expected.iter().map(|e| join_key(e)).collect::<Vec<&str>>()),
        ],
    )?;
    let joined = table.join(&files, ["key"], ["key"], JoinArgs::new(JoinType::Inner), None)?;
    let mut out = vec![None; expected.len()];
    let rows = joined.column("row")?.i64()?;
    let paths = joined.column("found")?.str()?;
    for i in 0..joined.height() {
        if let (Some(row), Some(path)) = (rows.get(i), paths.get(i))
            && let Some(slot) = usize::try_from(row).ok().and_then(|r| out.get_mut(r))
        {
            *slot = Some(path.to_owned());
        }
    }
    Ok(out)
}

/// Applies `filter` to `table` (see the module documentation for the order) and counts what each
/// filter removed. `images_root` holds the images in the layout of [`crate::layout`].
pub fn build_cohort(table: &AdniTable, images_root: &Path, filter: &CohortFilter) -> Result<Cohort> {
    let corrupt = filter.validate()?;
    let mut steps = Vec::new();

    // (a) known-corrupt scans.
    let rows: Vec<&ScanRecord> =
        table.records.iter().filter(|r| !corrupt.contains(&format!("{}/{}", r.ptid, visit_dir(&r.visit)))).collect();
    steps.push(FilterStep {
        name: "known corrupt".into(),
        removed: table.records.len() - rows.len(),
        remaining: rows.len(),
    });

    // (b) missing image files.
    let (rows, image_files_found): (Vec<(&ScanRecord, PathBuf)>, Option<usize>) = if filter.check_files {
        let found = list_image_files(images_root)?;
        let expected: Vec<String> = rows.iter().map(|r| image_relpath_str(r)).collect();
        let hits = find_files(&found, &expected)?;
        let before = rows.len();
        let kept: Vec<(&ScanRecord, PathBuf)> = rows
            .into_iter()
            .zip(hits)
            .filter_map(|(r, hit)| hit.map(|rel| (r, rel.split('/').fold(images_root.to_path_buf(), |p, c| p.join(c)))))
            .collect();
        steps.push(FilterStep {
            name: "missing image file".into(),
            removed: before - kept.len(),
            remaining: kept.len(),
        });
        (kept, Some(found.len()))
    } else {
        (rows.into_iter().map(|r| (r, image_path(images_root, r))).collect(), None)
    };

    // (c) diagnosis selection.
    let before = rows.len();
    let scans: Vec<CohortScan> = rows
        .into_iter()
        .filter(|(r, _)| filter.diagnoses.contains(&r.dx))
        .map(|(r, path)| CohortScan { record: r.clone(), path, label: u8::from(r.dx == Diagnosis::Dementia) })
        .collect();
    let kept: Vec<&str> = filter.diagnoses.iter().map(|d| d.as_str()).collect();
    steps.push(FilterStep {
        name: format!("diagnosis not in [{}]", kept.join(", ")),
        removed: before - scans.len(),
        remaining: scans.len(),
    });

    let (classes, total_patients) = class_counts(&scans, &filter.diagnoses);
    let report = CohortReport {
        table: table.path.clone(),
        field_strength: table.field_strength,
        images_root: images_root.to_path_buf(),
        table_rows: table.records.len(),
        image_files_found,
        steps,
        classes,
        total_scans: scans.len(),
        total_patients,
    };
    Ok(Cohort { scans, report })
}

/// Per-class scan and patient counts (AD first, then CN, then MCI if kept) and the number of
/// patients. A patient's class is their most advanced retained diagnosis.
fn class_counts(scans: &[CohortScan], kept: &[Diagnosis]) -> (Vec<ClassCount>, usize) {
    let mut patient_class: BTreeMap<&str, Diagnosis> = BTreeMap::new();
    for s in scans {
        let class = patient_class.entry(&s.record.ptid).or_insert(s.record.dx);
        *class = (*class).max(s.record.dx);
    }
    let order = [Diagnosis::Dementia, Diagnosis::CN, Diagnosis::MCI];
    let classes = order
        .into_iter()
        .filter(|d| *d != Diagnosis::MCI || kept.contains(d))
        .map(|d| ClassCount {
            class: d.class_name().to_owned(),
            scans: scans.iter().filter(|s| s.record.dx == d).count(),
            patients: patient_class.values().filter(|c| **c == d).count(),
        })
        .collect();
    (classes, patient_class.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_defaults_are_the_original_study() {
        let f = CohortFilter::default();
        assert_eq!(f.known_corrupt, vec!["067_S_0077/Screening".to_owned()]);
        assert!(f.check_files);
        assert_eq!(f.diagnoses, vec![Diagnosis::CN, Diagnosis::Dementia]);
    }

    #[test]
    fn filter_deserialises_with_defaults_and_refuses_unknown_keys() {
        let f: CohortFilter = serde_json::from_str(r#"{"check_files": false}"#).unwrap();
        assert!(!f.check_files);
        assert_eq!(f.diagnoses, CohortFilter::default().diagnoses);
        let f: CohortFilter = serde_json::from_str(r#"{"diagnoses": ["MCI", "Dementia"]}"#).unwrap();
        assert_eq!(f.diagnoses, vec![Diagnosis::MCI, Diagnosis::Dementia]);
        let err = serde_json::from_str::<CohortFilter>(r#"{"check_file": false}"#).unwrap_err();
        assert!(err.to_string().contains("check_file"), "{err}");
    }

    #[test]
    fn malformed_known_corrupt_entry_is_named() {
        for bad in ["067_S_0077", "067_S_0077/", "67_S_0077/Screening", "067_S_0077/Screening/x"] {
            let f = CohortFilter { known_corrupt: vec![bad.into()], ..CohortFilter::default() };
            let err = f.validate().unwrap_err();
            assert!(matches!(&err, DataError::Invalid { key, .. } if key == "known_corrupt"), "{err}");
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
        let f = CohortFilter { known_corrupt: vec!["011_S_0003/Month 12".into()], ..CohortFilter::default() };
        assert_eq!(f.validate().unwrap().into_iter().collect::<Vec<_>>(), vec!["011_S_0003/Month12".to_owned()]);
    }

    #[test]
    fn empty_diagnoses_refused() {
        let f = CohortFilter { diagnoses: vec![], ..CohortFilter::default() };
        assert!(matches!(f.validate(), Err(DataError::Invalid { key, .. }) if key == "diagnoses"));
    }

    #[test]
    fn join_prefers_compressed_and_accepts_plain_nii() {
        let found = vec!["a/b/x.nii".to_owned(), "a/b/x.nii.gz".to_owned(), "a/b/y.nii".to_owned()];
        let expected = vec!["a/b/y.nii.gz".to_owned(), "a/b/z.nii.gz".to_owned(), "a/b/x.nii.gz".to_owned()];
        let hits = find_files(&found, &expected).unwrap();
        assert_eq!(hits, vec![Some("a/b/y.nii".to_owned()), None, Some("a/b/x.nii.gz".to_owned())]);
    }

    #[test]
    fn join_with_nothing_found() {
        let hits = find_files(&[], &["a/b/c.nii.gz".to_owned()]).unwrap();
        assert_eq!(hits, vec![None]);
    }
}
