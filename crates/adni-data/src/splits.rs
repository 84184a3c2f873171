//! Patient-level splits: stratified, seeded k-fold cross-validation, the paper's hold-out split,
//! and an inner validation split; CSV files of splits that refuse patient leakage.
//!
//! *Invariant:* no patient (PTID) appears in two sets of one split. Every constructor checks it,
//! and so do [`write_split_csv`] and [`read_split_csv`].
//!
//! Stratification uses a patient's class: **AD if any of their retained scans is AD**
//! (label 1), CN otherwise. Patients are dealt in a seeded random order (each class's PTIDs are
//! sorted, then shuffled with `ChaCha8Rng::seed_from_u64(seed)`), so a split depends only on the
//! set of patients, their classes and the seed — not on the order of the scans.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use polars::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::cohort::CohortScan;
use crate::error::{DataError, Result};
use crate::fsutil::write_bytes_atomically;
use crate::table::{StringColumns, parse_i64, parse_ptid, read_csv_as_strings};

/// The set a scan belongs to in one split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitSet {
    /// Training scans.
    Train,
    /// Test scans.
    Test,
    /// Validation scans (taken from training, see [`inner_validation_split`]).
    Validation,
}

impl SplitSet {
    /// The spelling in split files: `train`, `test`, `validation`.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitSet::Train => "train",
            SplitSet::Test => "test",
            SplitSet::Validation => "validation",
        }
    }
}

impl fmt::Display for SplitSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SplitSet {
    type Err = String;

    /// Accepts exactly `train`, `test` or `validation`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        [SplitSet::Train, SplitSet::Test, SplitSet::Validation]
            .into_iter()
            .find(|set| set.as_str() == s)
            .ok_or_else(|| format!("expected train, test or validation, got `{s}`"))
    }
}

/// One scan's assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitRow {
    /// Patient id.
    pub ptid: String,
    /// The scan's `Image.ID`.
    pub image_id: i64,
    /// Where the scan goes.
    pub set: SplitSet,
}

/// A named assignment of scans to sets (e.g. `fold1`, `holdout`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Split {
    /// Name, e.g. `fold1` … `fold5` or `holdout`; a split read from a file is named after it.
    pub name: String,
    /// One row per scan.
    pub rows: Vec<SplitRow>,
}

impl Split {
    /// The patients in `set`.
    pub fn patients(&self, set: SplitSet) -> BTreeSet<&str> {
        self.rows.iter().filter(|r| r.set == set).map(|r| r.ptid.as_str()).collect()
    }

    /// The `Image.ID`s in `set`, in row order.
    pub fn image_ids(&self, set: SplitSet) -> Vec<i64> {
        self.rows.iter().filter(|r| r.set == set).map(|r| r.image_id).collect()
    }

    /// Number of scans in `set`.
    pub fn scan_count(&self, set: SplitSet) -> usize {
        self.rows.iter().filter(|r| r.set == set).count()
    }

    /// The split as a frame with columns `PTID`, `Image.ID`, `set`.
    pub fn to_dataframe(&self) -> Result<DataFrame> {
        let r = &self.rows;
        Ok(DataFrame::new(
            r.len(),
            vec![
                Column::new("PTID".into(), r.iter().map(|x| x.ptid.as_str()).collect::<Vec<&str>>()),
                Column::new("Image.ID".into(), r.iter().map(|x| x.image_id).collect::<Vec<i64>>()),
                Column::new("set".into(), r.iter().map(|x| x.set.as_str()).collect::<Vec<&str>>()),
            ],
        )?)
    }
}

/// Refuses a split in which a patient appears in two sets (the error lists every such PTID with
/// its sets) or an `Image.ID` appears in two rows.
pub fn check_no_leakage(split: &Split) -> Result<()> {
    let mut sets: BTreeMap<&str, BTreeSet<SplitSet>> = BTreeMap::new();
    let mut images: HashMap<i64, usize> = HashMap::new();
    for (i, row) in split.rows.iter().enumerate() {
        sets.entry(&row.ptid).or_default().insert(row.set);
        if let Some(first) = images.insert(row.image_id, i) {
            return Err(DataError::Split(format!(
                "split `{}`: Image.ID {} is assigned twice (rows {} and {} of the split), expected each scan once",
                split.name,
                row.image_id,
                first + 1,
                i + 1
            )));
        }
    }
    let leaky: Vec<String> = sets
        .iter()
        .filter(|(_, s)| s.len() > 1)
        .map(|(p, s)| format!("{p} ({})", s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")))
        .collect();
    if leaky.is_empty() {
        Ok(())
    } else {
        Err(DataError::Split(format!(
            "split `{}` leaks patients across sets: {}; every patient's scans must be in one set",
            split.name,
            leaky.join("; ")
        )))
    }
}

/// Patients by class, each list sorted: (AD, CN). A patient is AD if any of their scans is AD.
fn patients_by_class(scans: &[CohortScan]) -> (Vec<String>, Vec<String>) {
    let mut is_ad: BTreeMap<&str, bool> = BTreeMap::new();
    for s in scans {
        *is_ad.entry(&s.record.ptid).or_insert(false) |= s.label == 1;
    }
    let ad = is_ad.iter().filter(|(_, a)| **a).map(|(p, _)| (*p).to_owned()).collect();
    let cn = is_ad.iter().filter(|(_, a)| !**a).map(|(p, _)| (*p).to_owned()).collect();
    (ad, cn)
}

/// Builds a split from a patient → set map; patients not in `test` go to train.
fn assign(name: String, scans: &[CohortScan], test: &BTreeSet<&str>) -> Result<Split> {
    let rows = scans
        .iter()
        .map(|s| SplitRow {
            ptid: s.record.ptid.clone(),
            image_id: s.record.image_id,
            set: if test.contains(s.record.ptid.as_str()) { SplitSet::Test } else { SplitSet::Train },
        })
        .collect();
    let split = Split { name, rows };
    check_no_leakage(&split)?;
    Ok(split)
}

/// Stratified, seeded k-fold cross-validation over patients. Fold `i` (named `fold{i+1}`) tests
/// its patients and trains on all others.
///
/// Each class's patients are shuffled (see the module documentation) and dealt round robin, AD
/// first and CN continuing where AD stopped, so the per-class patient counts of any two folds
/// differ by at most 1, and so do their total patient counts. Every patient is in exactly one
/// test fold. Errors if `k < 2` or a class has fewer than `k` patients.
pub fn kfold_splits(scans: &[CohortScan], k: usize, seed: u64) -> Result<Vec<Split>> {
    if k < 2 {
        return Err(DataError::Split(format!("k-fold cross-validation needs k >= 2 folds, got k = {k}")));
    }
    let (mut ad, mut cn) = patients_by_class(scans);
    for (class, patients) in [("AD", &ad), ("CN", &cn)] {
        if patients.len() < k {
            return Err(DataError::Split(format!(
                "cannot make {k} stratified folds: the cohort has only {} {class} patients, \
                 each fold needs at least one; use k <= {}",
                patients.len(),
                ad.len().min(cn.len())
            )));
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    ad.shuffle(&mut rng);
    cn.shuffle(&mut rng);
    let mut folds: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); k];
    for (j, p) in ad.iter().chain(cn.iter()).enumerate() {
        folds[j % k].insert(p);
    }
    folds.iter().enumerate().map(|(i, test)| assign(format!("fold{}", i + 1), scans, test)).collect()
}

/// The paper's hold-out split: `n_ad` AD and `n_cn` CN patients (seeded random choice) form the
/// test set, everyone else trains. Named `holdout`. Errors unless each class gives at least
/// one test patient (balanced accuracy and ROC AUC need both classes) and keeps at least one
/// training patient.
pub fn holdout_split(scans: &[CohortScan], n_ad: usize, n_cn: usize, seed: u64) -> Result<Split> {
    let (mut ad, mut cn) = patients_by_class(scans);
    for (class, want, have) in [("AD", n_ad, ad.len()), ("CN", n_cn, cn.len())] {
        if want == 0 {
            return Err(DataError::Split(format!(
                "a hold-out split needs at least one {class} test patient (balanced accuracy and ROC AUC need both \
                 classes), got {n_ad} AD and {n_cn} CN"
            )));
        }
        if want > have {
            return Err(DataError::Split(format!(
                "cannot hold out {want} {class} patients: the cohort has only {have}"
            )));
        }
        if want == have {
            return Err(DataError::Split(format!(
                "cannot hold out all {have} {class} patients: the training set would have no {class} patient \
                 (hold out at most {})",
                have - 1
            )));
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    ad.shuffle(&mut rng);
    cn.shuffle(&mut rng);
    let test: BTreeSet<&str> = ad[..n_ad].iter().chain(&cn[..n_cn]).map(String::as_str).collect();
    assign("holdout".into(), scans, &test)
}

/// The data randomisation test (Adebayo et al. 2018): permutes the labels of the patients that
/// `split` does not test, at patient level, so a model trained on them can learn no real
/// relation between image and label. Each such patient's class ([`patients_by_class`]: AD if
/// any scan is AD) is permuted among them with a seeded shuffle and given to all their scans;
/// the number of AD and CN patients stays the same. Test patients keep their true labels, so
/// the model's test metrics measure what it learned about the real labels (chance, if all
/// goes well). Returns how many patients changed class.
pub fn shuffle_training_labels(scans: &mut [CohortScan], split: &Split, seed: u64) -> usize {
    let test = split.patients(SplitSet::Test);
    let (ad, cn) = patients_by_class(scans);
    let mut patients: Vec<(String, u8)> = ad
        .into_iter()
        .map(|p| (p, 1))
        .chain(cn.into_iter().map(|p| (p, 0)))
        .filter(|(p, _)| !test.contains(p.as_str()))
        .collect();
    patients.sort();
    let mut labels: Vec<u8> = patients.iter().map(|(_, l)| *l).collect();
    labels.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let new: HashMap<&str, u8> = patients.iter().zip(&labels).map(|((p, _), &l)| (p.as_str(), l)).collect();
    let changed = patients.iter().zip(&labels).filter(|((_, old), new)| old != *new).count();
    for s in scans.iter_mut() {
        if let Some(&l) = new.get(s.record.ptid.as_str()) {
            s.label = l;
        }
    }
    changed
}

/// Moves a stratified, patient-level `fraction` of `split`'s training patients to
/// [`SplitSet::Validation`]; test rows are untouched and the name is kept.
///
/// `scans` gives each patient's class (a split file does not carry labels); every training
/// patient must be in it. Per class, `round(fraction × n)` patients move, at least 1 and at most
/// `n − 1`, so both sets keep every class. Errors if `fraction` is not in (0, 1) or a class has
/// exactly one training patient.
pub fn inner_validation_split(split: &Split, scans: &[CohortScan], fraction: f64, seed: u64) -> Result<Split> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(DataError::Invalid {
            key: "fraction".into(),
            message: format!("expected a validation fraction strictly between 0 and 1, got {fraction}"),
        });
    }
    check_no_leakage(split)?;
    let (ad, cn) = patients_by_class(scans);
    let ad: BTreeSet<&str> = ad.iter().map(String::as_str).collect();
    let known: BTreeSet<&str> = ad.iter().copied().chain(cn.iter().map(String::as_str)).collect();
    let train = split.patients(SplitSet::Train);
    if let Some(p) = train.iter().find(|p| !known.contains(*p)) {
        return Err(DataError::Split(format!(
            "split `{}`: training patient {p} is not in the cohort, cannot tell their class",
            split.name
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut validation: BTreeSet<&str> = BTreeSet::new();
    for (class, is_ad) in [("AD", true), ("CN", false)] {
        let mut patients: Vec<&str> = train.iter().copied().filter(|p| ad.contains(p) == is_ad).collect();
        let n = patients.len();
        if n == 0 {
            continue;
        }
        if n == 1 {
            return Err(DataError::Split(format!(
                "split `{}`: cannot take a validation set from a single {class} training patient",
                split.name
            )));
        }
        let take = ((fraction * n as f64).round() as usize).clamp(1, n - 1);
        patients.shuffle(&mut rng);
        validation.extend(&patients[..take]);
    }
    let rows = split
        .rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if r.set == SplitSet::Train && validation.contains(r.ptid.as_str()) {
                r.set = SplitSet::Validation;
            }
            r
        })
        .collect();
    let out = Split { name: split.name.clone(), rows };
    check_no_leakage(&out)?;
    Ok(out)
}

/// The header of a split file.
pub const SPLIT_COLUMNS: [&str; 3] = ["PTID", "Image.ID", "set"];

/// Writes `split` as CSV (`PTID,Image.ID,set`), atomically, after [`check_no_leakage`].
pub fn write_split_csv(path: &Path, split: &Split) -> Result<()> {
    check_no_leakage(split)?;
    let mut df = split.to_dataframe()?;
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf).include_header(true).finish(&mut df)?;
    write_bytes_atomically(path, &buf)
}

/// Reads a split file written by [`write_split_csv`] (or by hand). The split is named after the
/// file stem. Errors name the file, row and column; a leaky split is refused.
pub fn read_split_csv(path: &Path) -> Result<Split> {
    let df = read_csv_as_strings(path, &SPLIT_COLUMNS.join(","))?;
    let cols = StringColumns::new(path, &df, &SPLIT_COLUMNS, "a split file has columns PTID,Image.ID,set")?;
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        rows.push(SplitRow {
            ptid: cols.parse("PTID", i, parse_ptid)?,
            image_id: cols.parse("Image.ID", i, parse_i64)?,
            set: cols.parse("set", i, |s| s.parse::<SplitSet>())?,
        });
    }
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let split = Split { name, rows };
    check_no_leakage(&split).map_err(|e| DataError::Split(format!("{}: {e}", path.display())))?;
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Diagnosis, ScanDate, ScanRecord};
    use proptest::prelude::*;

    /// A cohort of `n_ad` AD and `n_cn` CN patients with `scans_per[i % len]` scans each.
    pub(crate) fn cohort(n_ad: usize, n_cn: usize, scans_per: &[usize]) -> Vec<CohortScan> {
        let mut out = Vec::new();
        let mut image_id = 1000;
        for p in 0..n_ad + n_cn {
            let ad = p < n_ad;
            for v in 0..scans_per[p % scans_per.len()] {
                image_id += 1;
                let record = ScanRecord {
                    rid: p as i64,
                    ptid: format!("{:03}_S_{:04}", p % 7 + 2, p),
                    viscode: "bl".into(),
                    dx: if ad { Diagnosis::Dementia } else { Diagnosis::CN },
                    examdate: "2006-01-02".into(),
                    image_id,
                    scan_date: ScanDate { month: 1, day: 2, year: 6 },
                    sequence: "MPR".into(),
                    visit: format!("Month {}", v * 12),
                    month_bl: (v * 12) as f64,
                    screen_diagnosis: if ad { "AD" } else { "NL" }.into(),
                    study_id: 1,
                    series_id: 1,
                    label_three_fold: None,
                    label_cn_ad: None,
                    label_cn_mci: None,
                    label_mci_ad: None,
                };
                let label = u8::from(ad);
                out.push(CohortScan { record, path: Default::default(), label });
            }
        }
        out
    }

    #[test]
    fn shuffled_training_labels_keep_test_patients_and_class_counts() {
        let scans = cohort(10, 10, &[1, 2, 3]);
        let split = holdout_split(&scans, 2, 2, 5).unwrap();
        let test = split.patients(SplitSet::Test);
        let label_of =
            |s: &[CohortScan]| -> BTreeMap<String, u8> { s.iter().map(|x| (x.record.ptid.clone(), x.label)).collect() };
        let before = label_of(&scans);
        let mut a = scans.clone();
        let changed = shuffle_training_labels(&mut a, &split, 1);
        let after = label_of(&a);
        // test patients keep their labels, every patient's scans share one label
        for p in &test {
            assert_eq!(before[*p], after[*p], "test patient {p}");
        }
        for s in &a {
            assert_eq!(s.label, after[&s.record.ptid]);
        }
        // as many AD patients as before, and some training patients changed class
        let ad = |m: &BTreeMap<String, u8>| m.values().filter(|&&l| l == 1).count();
        assert_eq!(ad(&before), ad(&after));
        let moved = before.iter().filter(|(p, l)| after[*p] != **l).count();
        assert_eq!(moved, changed);
        assert!(changed >= 4, "only {changed} of 16 training patients changed class");
        // seeded: the same seed gives the same labels, another seed other labels
        let mut b = scans.clone();
        shuffle_training_labels(&mut b, &split, 1);
        assert_eq!(label_of(&b), after);
        let mut c = scans.clone();
        shuffle_training_labels(&mut c, &split, 2);
        assert_ne!(label_of(&c), after);
    }

    fn class_of(scans: &[CohortScan]) -> BTreeMap<String, bool> {
        let (ad, cn) = patients_by_class(scans);
        ad.into_iter().map(|p| (p, true)).chain(cn.into_iter().map(|p| (p, false))).collect()
    }

    #[test]
    fn patient_with_any_ad_scan_is_ad() {
        let mut scans = cohort(0, 2, &[2]);
        scans[1].label = 1; // second scan of the first patient converts
        let (ad, cn) = patients_by_class(&scans);
        assert_eq!(ad, vec![scans[0].record.ptid.clone()]);
        assert_eq!(cn, vec![scans[2].record.ptid.clone()]);
    }

    #[test]
    fn k_must_be_at_least_two_and_at_most_each_class() {
        let scans = cohort(3, 10, &[1]);
        assert!(kfold_splits(&scans, 1, 0).unwrap_err().to_string().contains("k >= 2"));
        let err = kfold_splits(&scans, 4, 0).unwrap_err().to_string();
        assert!(err.contains("only 3 AD patients"), "{err}");
        assert!(kfold_splits(&scans, 3, 0).is_ok());
    }

    #[test]
    fn holdout_counts_are_exact() {
        let scans = cohort(40, 35, &[1, 3, 2]);
        let split = holdout_split(&scans, 30, 30, 7).unwrap();
        let classes = class_of(&scans);
        let test = split.patients(SplitSet::Test);
        assert_eq!(test.iter().filter(|p| classes[**p]).count(), 30);
        assert_eq!(test.iter().filter(|p| !classes[**p]).count(), 30);
        assert_eq!(split.patients(SplitSet::Train).len(), 15);
        assert_eq!(split.rows.len(), scans.len());
        let err = holdout_split(&scans, 41, 30, 7).unwrap_err().to_string();
        assert!(err.contains("only 40"), "{err}");
        assert!(holdout_split(&scans, 0, 0, 7).is_err());
        let err = holdout_split(&scans, 0, 5, 7).unwrap_err().to_string();
        assert!(err.contains("at least one AD test patient"), "{err}");
        let err = holdout_split(&scans, 40, 5, 7).unwrap_err().to_string();
        assert!(err.contains("cannot hold out all 40 AD patients") && err.contains("at most 39"), "{err}");
        assert!(holdout_split(&scans, 39, 34, 7).is_ok());
    }

    #[test]
    fn inner_validation_is_stratified_and_patient_level() {
        let scans = cohort(20, 30, &[2, 1]);
        let split = holdout_split(&scans, 5, 5, 1).unwrap();
        let v = inner_validation_split(&split, &scans, 0.2, 3).unwrap();
        let classes = class_of(&scans);
        let val = v.patients(SplitSet::Validation);
        assert_eq!(val.iter().filter(|p| classes[**p]).count(), 3, "round(0.2 * 15)");
        assert_eq!(val.iter().filter(|p| !classes[**p]).count(), 5, "round(0.2 * 25)");
        assert_eq!(v.patients(SplitSet::Test), split.patients(SplitSet::Test));
        check_no_leakage(&v).unwrap();
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(matches!(inner_validation_split(&split, &scans, bad, 3), Err(DataError::Invalid { .. })));
        }
    }

    #[test]
    fn leaky_split_is_refused_with_the_ptids() {
        let row = |p: &str, id, set| SplitRow { ptid: p.into(), image_id: id, set };
        let split = Split {
            name: "hand".into(),
            rows: vec![
                row("011_S_0003", 1, SplitSet::Train),
                row("011_S_0003", 2, SplitSet::Test),
                row("011_S_0005", 3, SplitSet::Train),
                row("022_S_0001", 4, SplitSet::Validation),
                row("022_S_0001", 5, SplitSet::Train),
            ],
        };
        let err = check_no_leakage(&split).unwrap_err().to_string();
        assert!(err.contains("011_S_0003 (train, test)"), "{err}");
        assert!(err.contains("022_S_0001 (train, validation)"), "{err}");
        assert!(!err.contains("011_S_0005"), "{err}");
    }

    fn kfold_invariants(scans: &[CohortScan], k: usize, seed: u64) {
        let folds = kfold_splits(scans, k, seed).unwrap();
        assert_eq!(folds.len(), k);
        let classes = class_of(scans);
        let mut tested: BTreeMap<&str, usize> = BTreeMap::new();
        let (mut ad_counts, mut cn_counts) = (Vec::new(), Vec::new());
        for f in &folds {
            check_no_leakage(f).unwrap();
            assert_eq!(f.rows.len(), scans.len());
            let test = f.patients(SplitSet::Test);
            for p in &test {
                *tested.entry(p).or_default() += 1;
            }
            ad_counts.push(test.iter().filter(|p| classes[**p]).count());
            cn_counts.push(test.iter().filter(|p| !classes[**p]).count());
            assert!(f.patients(SplitSet::Train).is_disjoint(&test));
            assert_eq!(f.patients(SplitSet::Train).len() + test.len(), classes.len());
        }
        for counts in [&ad_counts, &cn_counts] {
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "per-class counts {counts:?}");
            assert!(*lo >= 1);
        }
        assert_eq!(tested.len(), classes.len(), "every patient is tested");
        assert!(tested.values().all(|&n| n == 1), "every patient in exactly one test fold");
    }

    #[test]
    fn kfold_is_deterministic_and_seed_dependent() {
        let scans = cohort(25, 30, &[1, 2, 3]);
        let a = kfold_splits(&scans, 5, 42).unwrap();
        assert_eq!(a, kfold_splits(&scans, 5, 42).unwrap());
        assert_ne!(a, kfold_splits(&scans, 5, 43).unwrap());
        // Independent of scan order.
        let mut reversed = scans.clone();
        reversed.reverse();
        let b = kfold_splits(&reversed, 5, 42).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.patients(SplitSet::Test), y.patients(SplitSet::Test));
        }
        kfold_invariants(&scans, 5, 42);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn kfold_invariants_hold_on_random_cohorts(
            k in 2usize..7,
            extra_ad in 0usize..25,
            extra_cn in 0usize..25,
            scans_per in proptest::collection::vec(1usize..5, 1..6),
            seed in any::<u64>(),
        ) {
            let scans = cohort(k + extra_ad, k + extra_cn, &scans_per);
            kfold_invariants(&scans, k, seed);
        }

        #[test]
        fn holdout_never_leaks(n_ad in 1usize..20, n_cn in 1usize..20, seed in any::<u64>()) {
            let scans = cohort(20, 20, &[2, 1]);
            let split = holdout_split(&scans, n_ad, n_cn, seed).unwrap();
            check_no_leakage(&split).unwrap();
            prop_assert_eq!(split.patients(SplitSet::Test).len(), n_ad + n_cn);
        }
    }
}

/// The cohort's scans (a frame with an `Image.ID` column, e.g. [`crate::cohort::Cohort::scans_dataframe`])
/// left-joined in polars with the set assignment of every split: one column per split, named after
/// the split, holding `train`, `test`, `validation` or null (scan not in that split).
pub fn assignments_dataframe(scans: &DataFrame, splits: &[Split]) -> Result<DataFrame> {
    let mut out = scans.clone();
    for split in splits {
        if out.get_column_names().iter().any(|c| c.as_str() == split.name) {
            return Err(DataError::Split(format!(
                "split name `{}` is already a column of the scans table, expected distinct names",
                split.name
            )));
        }
        let df = split.to_dataframe()?;
        let assign = DataFrame::new(
            df.height(),
            vec![df.column("Image.ID")?.clone(), df.column("set")?.clone().with_name(split.name.as_str().into())],
        )?;
        let mut args = JoinArgs::new(JoinType::Left);
        args.maintain_order = MaintainOrderJoin::Left;
        out = out.join(&assign, ["Image.ID"], ["Image.ID"], args, None)?;
    }
    Ok(out)
}

#[cfg(test)]
mod assignment_tests {
    use super::*;

    #[test]
    fn assignments_are_joined_per_split_in_scan_order() {
        let scans = DataFrame::new(
            4,
            vec![
                Column::new("Image.ID".into(), vec![40i64, 10, 30, 20]),
                Column::new("PTID".into(), vec!["002_S_0004", "002_S_0001", "002_S_0003", "002_S_0002"]),
            ],
        )
        .unwrap();
        let row = |p: &str, id: i64, set| SplitRow { ptid: p.into(), image_id: id, set };
        let a = Split {
            name: "fold1".into(),
            rows: vec![row("002_S_0001", 10, SplitSet::Train), row("002_S_0002", 20, SplitSet::Test)],
        };
        let b = Split {
            name: "holdout".into(),
            rows: vec![row("002_S_0004", 40, SplitSet::Test), row("002_S_0003", 30, SplitSet::Validation)],
        };
        let out = assignments_dataframe(&scans, &[a, b]).unwrap();
        let ids: Vec<i64> = out.column("Image.ID").unwrap().i64().unwrap().into_no_null_iter().collect();
        assert_eq!(ids, vec![40, 10, 30, 20], "scan order kept");
        let f1: Vec<Option<&str>> = out.column("fold1").unwrap().str().unwrap().iter().collect();
        assert_eq!(f1, vec![None, Some("train"), None, Some("test")]);
        let h: Vec<Option<&str>> = out.column("holdout").unwrap().str().unwrap().iter().collect();
        assert_eq!(h, vec![Some("test"), None, Some("validation"), None]);
        let dup = Split { name: "PTID".into(), rows: vec![] };
        assert!(assignments_dataframe(&scans, &[dup]).is_err(), "a split named like a column is refused");
    }
}
