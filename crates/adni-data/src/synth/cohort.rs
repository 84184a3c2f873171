//! The clinical side of the synthetic cohort: patients, their visits and scans, the dates and
//! identifiers of the ADNI table, and each scan's planted disease severity.
//!
//! Everything here is drawn from seeded streams that do not depend on the anatomy, so the table
//! of a given config and seed is the same for the phantom and the real template.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::{DataError, Result};
use crate::table::{Diagnosis, ScanDate, ScanRecord};

use super::SynthConfig;

/// The patient groups of the cohort (the diagnosis at screening).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PatientGroup {
    /// Cognitively normal at screening (`Screen.Diagnosis` NL); stays CN.
    CN,
    /// Mild cognitive impairment at screening; some convert to dementia at a later visit.
    MCI,
    /// Alzheimer's disease at screening; `DX` is `Dementia` at every visit.
    AD,
}

impl PatientGroup {
    /// `CN`, `MCI` or `AD`.
    pub fn as_str(self) -> &'static str {
        match self {
            PatientGroup::CN => "CN",
            PatientGroup::MCI => "MCI",
            PatientGroup::AD => "AD",
        }
    }

    fn screen_diagnosis(self) -> &'static str {
        match self {
            PatientGroup::CN => "NL",
            PatientGroup::MCI => "MCI",
            PatientGroup::AD => "AD",
        }
    }
}

/// The visits of the ADNI1 "Complete Annual 2 Yr" collection: (VISCODE, Visit, nominal days).
pub(crate) const VISITS: [(&str, &str, i64); 3] =
    [("bl", "Screening", 0), ("m12", "Month 12", 365), ("m24", "Month 24", 730)];

/// Disease severity distributions (unitless; multiplied by `effect_size` where the effects are
/// rendered). Screening severity is uniform in `base`, it then grows linearly by a rate uniform
/// in `growth` per year.
struct SeverityLaw {
    base: (f64, f64),
    growth: (f64, f64),
}

const AD_SEVERITY: SeverityLaw = SeverityLaw { base: (0.3, 1.0), growth: (0.10, 0.25) };
const MCI_STABLE_SEVERITY: SeverityLaw = SeverityLaw { base: (0.10, 0.35), growth: (0.0, 0.08) };
const MCI_CONVERTER_SEVERITY: SeverityLaw = SeverityLaw { base: (0.30, 0.55), growth: (0.15, 0.30) };

/// Sequences of a primary reconstruction; the duplicate appends `_2`.
const SEQUENCES: [&str; 2] = ["MPR; GradWarp; B1 Correction; N3; Scaled", "MPR-R; GradWarp; B1 Correction; N3; Scaled"];

/// One scan (one table row).
#[derive(Debug, Clone)]
pub(crate) struct ScanPlan {
    /// The table row.
    pub record: ScanRecord,
    /// A second ("Scaled_2") reconstruction of the visit's acquisition.
    pub duplicate: bool,
    /// Whether the image file is written (false: a row whose file is missing).
    pub written: bool,
    /// Seed of this acquisition's noise and bias field (shared by the duplicate).
    pub acquisition_seed: u64,
    /// Extra intensity factor of a duplicate reconstruction (1 for the primary).
    pub rescale: f64,
    /// Whether the image is written as a corrupt (truncated) file: a scan of a known-corrupt
    /// visit (implies `written`).
    pub corrupt: bool,
}

/// One visit of a patient.
#[derive(Debug, Clone)]
pub(crate) struct VisitPlan {
    /// Years since the screening exam.
    pub years: f64,
    /// Disease severity at this visit (0 for CN).
    pub severity: f64,
    /// Ageing amount at this visit (everyone ages; not part of the disease ground truth).
    pub ageing: f64,
    /// The visit's scans: the primary, then a duplicate if any.
    pub scans: Vec<ScanPlan>,
}

/// One patient.
#[derive(Debug, Clone)]
pub(crate) struct PatientPlan {
    /// Position in the cohort (seeds the patient's anatomy).
    pub index: usize,
    /// The screening group.
    pub group: PatientGroup,
    /// `PTID`.
    pub ptid: String,
    /// Whether an MCI patient converts to dementia during follow-up.
    pub converter: bool,
    /// Per atrophy-region label (in the order of the resolved region list): the patient's
    /// left/right asymmetry factor.
    pub asymmetry: Vec<f64>,
    /// The visits, in time order.
    pub visits: Vec<VisitPlan>,
}

/// Mixes a seed with two stream numbers (SplitMix64 finaliser), so that every patient, visit
/// and volume slice draws from its own reproducible stream.
pub(crate) fn mix(seed: u64, a: u64, b: u64) -> u64 {
    fn sm(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    sm(sm(sm(seed) ^ a.wrapping_mul(0xD6E8_FEB8_6659_FD93)) ^ b.wrapping_mul(0xA076_1D64_78BD_642F))
}

/// Random-stream ids (first mix argument after the seed).
pub(crate) mod stream {
    pub const COHORT: u64 = 1;
    pub const CLINICAL: u64 = 2;
    pub const ANATOMY: u64 = 3;
    pub const ACQUISITION: u64 = 4;
    pub const DUPLICATE: u64 = 5;
    pub const NOISE: u64 = 6;
    pub const CORRUPT: u64 = 7;
}

const EPOCH: chrono::NaiveDate = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");

/// Days since 1970-01-01 of a proleptic Gregorian date (0 for an impossible date; callers check
/// dates first).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    i32::try_from(y)
        .ok()
        .and_then(|y| chrono::NaiveDate::from_ymd_opt(y, m, d))
        .map_or(0, |date| date.signed_duration_since(EPOCH).num_days())
}

/// The date (year, month, day) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    use chrono::Datelike;
    let date = EPOCH + chrono::Duration::days(z);
    (i64::from(date.year()), date.month(), date.day())
}

/// Parses `YYYY-MM-DD` into a day count; errors name the config key.
pub(crate) fn parse_start_date(s: &str) -> Result<i64> {
    let bad = || DataError::Invalid {
        key: "start_date".into(),
        message: format!("expected an ISO date YYYY-MM-DD between 2000-01-01 and 2095-12-31, got `{s}`"),
    };
    if !crate::table::is_valid_iso_date(s) {
        return Err(bad());
    }
    let (y, m, d) = (s[0..4].parse::<i64>(), s[5..7].parse::<u32>(), s[8..10].parse::<u32>());
    let (Ok(y), Ok(m), Ok(d)) = (y, m, d) else { return Err(bad()) };
    if !(2000..=2095).contains(&y) {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, d))
}

fn iso(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn scan_date(days: i64) -> Result<ScanDate> {
    let (y, m, d) = civil_from_days(days);
    u8::try_from(y - 2000).ok().and_then(|yy| ScanDate::new(m as u8, d as u8, yy)).ok_or_else(|| DataError::Invalid {
        key: "start_date".into(),
        message: format!("scan date {} falls outside 2000–2099, expected an earlier start date", iso(days)),
    })
}

fn uniform(rng: &mut ChaCha8Rng, (lo, hi): (f64, f64)) -> f64 {
    if hi > lo { rng.random_range(lo..hi) } else { lo }
}

fn labels_for(dx: Diagnosis) -> [Option<u8>; 4] {
    // label_three_fold, label_CN_AD, label_CN_MCI, label_MCI_AD
    match dx {
        Diagnosis::CN => [Some(0), Some(0), Some(0), None],
        Diagnosis::MCI => [Some(1), None, Some(1), Some(0)],
        Diagnosis::Dementia => [Some(2), Some(1), None, Some(1)],
    }
}

/// Draws the whole cohort: patients, visits, scans, table rows and which files go missing.
/// `n_regions` is the number of atrophy-region labels (for the per-patient asymmetry).
pub(crate) fn plan_cohort(cfg: &SynthConfig, n_regions: usize) -> Result<Vec<PatientPlan>> {
    let n = cfg.n_cn + cfg.n_ad + cfg.n_mci;
    let start = parse_start_date(&cfg.start_date)?;
    let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, stream::COHORT, 0));

    // Who is who: a shuffled list of groups.
    let mut groups: Vec<PatientGroup> = std::iter::repeat_n(PatientGroup::CN, cfg.n_cn)
        .chain(std::iter::repeat_n(PatientGroup::AD, cfg.n_ad))
        .chain(std::iter::repeat_n(PatientGroup::MCI, cfg.n_mci))
        .collect();
    groups.shuffle(&mut rng);

    // Roster ids as in ADNI1 (2 … 1435; more room for bigger cohorts), in enrolment order.
    let rid_max = 1435usize.max(3 * n + 2).min(9999);
    if n > rid_max - 1 {
        return Err(DataError::Invalid {
            key: "n_cn + n_ad + n_mci".into(),
            message: format!(
                "{n} patients do not fit the 4-digit roster ids of PTID, expected at most {}",
                rid_max - 1
            ),
        });
    }
    let mut rids: Vec<usize> = rand::seq::index::sample(&mut rng, rid_max - 1, n).into_iter().map(|r| r + 2).collect();
    rids.sort_unstable();
    let mut enrol: Vec<i64> = (0..n).map(|_| rng.random_range(0..=i64::from(cfg.enrolment_days))).collect();
    enrol.sort_unstable();

    let total_weight: f64 = cfg.visit_weights.iter().sum();
    let mut patients = Vec::with_capacity(n);
    for (index, &group) in groups.iter().enumerate() {
        let mut prng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, stream::CLINICAL, index as u64));
        let site = cfg.sites[prng.random_range(0..cfg.sites.len())];
        let rid = rids[index];
        let ptid = format!("{site:03}_S_{rid:04}");
        let mut pick = prng.random_range(0.0..total_weight);
        let mut n_visits = 3;
        for (v, w) in cfg.visit_weights.iter().enumerate() {
            if pick < *w {
                n_visits = v + 1;
                break;
            }
            pick -= w;
        }
        let converter = group == PatientGroup::MCI
            && n_visits >= 2
            && prng.random_bool(cfg.mci_conversion_fraction.clamp(0.0, 1.0));
        let conversion_visit = if converter { prng.random_range(1..n_visits) } else { usize::MAX };
        let law = match (group, converter) {
            (PatientGroup::CN, _) => None,
            (PatientGroup::AD, _) => Some(&AD_SEVERITY),
            (PatientGroup::MCI, false) => Some(&MCI_STABLE_SEVERITY),
            (PatientGroup::MCI, true) => Some(&MCI_CONVERTER_SEVERITY),
        };
        let (base, growth) = match law {
            Some(l) => (uniform(&mut prng, l.base), uniform(&mut prng, l.growth)),
            None => (0.0, 0.0),
        };
        let age = prng.random_range(0.0..1.0);
        let asymmetry: Vec<f64> = (0..n_regions).map(|_| prng.random_range(0.75..1.25)).collect();
        let bl_exam = start + enrol[index];
        let mut visits = Vec::with_capacity(n_visits);
        for (v, &(viscode, visit_name, nominal)) in VISITS.iter().enumerate().take(n_visits) {
            let exam = if v == 0 { bl_exam } else { bl_exam + nominal + prng.random_range(-30..=45) };
            let scan = exam + prng.random_range(-21..=14);
            let years = (exam - bl_exam) as f64 / 365.25;
            let dx = match group {
                PatientGroup::CN => Diagnosis::CN,
                PatientGroup::AD => Diagnosis::Dementia,
                PatientGroup::MCI if v >= conversion_visit => Diagnosis::Dementia,
                PatientGroup::MCI => Diagnosis::MCI,
            };
            let severity = if law.is_some() { base + growth * years } else { 0.0 };
            let ageing = cfg.ageing * (0.5 * age + 0.05 * years);
            let labels = labels_for(dx);
            let sequence = if prng.random_bool(0.8) { SEQUENCES[0] } else { SEQUENCES[1] };
            let record = ScanRecord {
                rid: rid as i64,
                ptid: ptid.clone(),
                viscode: viscode.to_string(),
                dx,
                examdate: iso(exam),
                image_id: 0,
                scan_date: scan_date(scan)?,
                sequence: sequence.to_string(),
                visit: visit_name.to_string(),
                month_bl: (exam - bl_exam) as f64 / 30.5,
                screen_diagnosis: group.screen_diagnosis().to_string(),
                study_id: 0,
                series_id: 0,
                label_three_fold: labels[0],
                label_cn_ad: labels[1],
                label_cn_mci: labels[2],
                label_mci_ad: labels[3],
            };
            let acquisition_seed = mix(cfg.seed, stream::ACQUISITION, (index * VISITS.len() + v) as u64);
            let mut scans = vec![ScanPlan {
                record: record.clone(),
                duplicate: false,
                written: true,
                acquisition_seed,
                rescale: 1.0,
                corrupt: false,
            }];
            if prng.random_bool(cfg.duplicate_fraction.clamp(0.0, 1.0)) {
                let mut dup = record;
                dup.sequence = format!("{sequence}_2");
                let mut drng =
                    ChaCha8Rng::seed_from_u64(mix(cfg.seed, stream::DUPLICATE, (index * VISITS.len() + v) as u64));
                // A visibly different scaling: 3–15 % up or down.
                let step = drng.random_range(0.03..0.15);
                let rescale = if drng.random_bool(0.5) { 1.0 + step } else { 1.0 - step };
                scans.push(ScanPlan {
                    record: dup,
                    duplicate: true,
                    written: true,
                    acquisition_seed,
                    rescale,
                    corrupt: false,
                });
            }
            visits.push(VisitPlan { years, severity, ageing, scans });
        }
        patients.push(PatientPlan { index, group, ptid, converter, asymmetry, visits });
    }

    assign_ids(&mut patients, &mut rng);
    mark_missing(&mut patients, cfg.missing_fraction, &mut rng);
    mark_corrupt(&mut patients, cfg)?;
    Ok(patients)
}

/// Image, study and series ids: increasing with the scan date, with random gaps; duplicate
/// reconstructions were made later, so their Image.IDs come from a later range.
fn assign_ids(patients: &mut [PatientPlan], rng: &mut ChaCha8Rng) {
    let mut order: Vec<(ScanDateKey, usize, usize, usize)> = Vec::new();
    for (p, patient) in patients.iter().enumerate() {
        for (v, visit) in patient.visits.iter().enumerate() {
            for (s, scan) in visit.scans.iter().enumerate() {
                order.push((ScanDateKey::of(&scan.record), p, v, s));
            }
        }
    }
    order.sort();
    let mut image_id: i64 = rng.random_range(30_000..32_000);
    let mut series_id: i64 = rng.random_range(9_000..10_000);
    let mut study_id: i64 = rng.random_range(2_000..2_500);
    for &(_, p, v, s) in &order {
        if s != 0 {
            continue;
        }
        image_id += rng.random_range(1..=90);
        series_id += rng.random_range(1..=40);
        study_id += rng.random_range(1..=12);
        for scan in &mut patients[p].visits[v].scans {
            scan.record.series_id = series_id;
            scan.record.study_id = study_id;
        }
        patients[p].visits[v].scans[0].record.image_id = image_id;
    }
    image_id += rng.random_range(20_000..40_000);
    for &(_, p, v, s) in &order {
        if s == 0 {
            continue;
        }
        image_id += rng.random_range(1..=60);
        patients[p].visits[v].scans[s].record.image_id = image_id;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ScanDateKey(i32, u8, u8, i64);

impl ScanDateKey {
    fn of(r: &ScanRecord) -> ScanDateKey {
        ScanDateKey(r.scan_date.full_year(), r.scan_date.month, r.scan_date.day, r.rid)
    }
}

/// Marks `round(fraction · rows)` rows (at least one when the fraction is positive) as
/// missing on disk.
fn mark_missing(patients: &mut [PatientPlan], fraction: f64, rng: &mut ChaCha8Rng) {
    let mut all: Vec<(usize, usize, usize)> = Vec::new();
    for (p, patient) in patients.iter().enumerate() {
        for (v, visit) in patient.visits.iter().enumerate() {
            for s in 0..visit.scans.len() {
                all.push((p, v, s));
            }
        }
    }
    if fraction <= 0.0 || all.is_empty() {
        return;
    }
    let n_missing = ((fraction * all.len() as f64).round() as usize).clamp(1, all.len());
    all.shuffle(rng);
    for &(p, v, s) in all.iter().take(n_missing) {
        patients[p].visits[v].scans[s].written = false;
    }
}

/// Marks every scan of `cfg.n_corrupt` visits as corrupt, drawn from their own seeded stream
/// (so the rest of the cohort does not depend on `n_corrupt`) among the visits of CN and AD
/// patients whose images are all written: rows that the later filters of the study (missing
/// file, MCI) would keep, so that only the known-corrupt filter removes them.
fn mark_corrupt(patients: &mut [PatientPlan], cfg: &SynthConfig) -> Result<()> {
    if cfg.n_corrupt == 0 {
        return Ok(());
    }
    let eligible: Vec<(usize, usize)> = patients
        .iter()
        .enumerate()
        .filter(|(_, p)| p.group != PatientGroup::MCI)
        .flat_map(|(i, p)| {
            p.visits.iter().enumerate().filter(|(_, v)| v.scans.iter().all(|s| s.written)).map(move |(v, _)| (i, v))
        })
        .collect();
    if eligible.len() < cfg.n_corrupt {
        return Err(DataError::Invalid {
            key: "n_corrupt".into(),
            message: format!(
                "{} known-corrupt visits asked for, but the cohort has only {} visits of CN or AD patients with every \
                 image written; expected n_corrupt ≤ {} (or more CN/AD patients, or a smaller missing_fraction)",
                cfg.n_corrupt,
                eligible.len(),
                eligible.len()
            ),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, stream::CORRUPT, 0));
    for k in rand::seq::index::sample(&mut rng, eligible.len(), cfg.n_corrupt) {
        let (p, v) = eligible[k];
        for scan in &mut patients[p].visits[v].scans {
            scan.corrupt = true;
        }
    }
    Ok(())
}

/// The known-corrupt visits as `PTID/Visit` (the `Visit` of the table, e.g. `Month 12`),
/// sorted and without repeats.
pub(crate) fn known_corrupt(patients: &[PatientPlan]) -> Vec<String> {
    let mut out: Vec<String> = patients
        .iter()
        .flat_map(|p| p.visits.iter().flat_map(|v| v.scans.iter()))
        .filter(|s| s.corrupt)
        .map(|s| format!("{}/{}", s.record.ptid, s.record.visit))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2006, 9, 12), 13_403);
        for z in [-1000, 0, 13_403, 13_938, 20_000, 40_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(days_from_civil(2008, 2, 29) + 1), (2008, 3, 1));
    }

    #[test]
    fn start_date_is_checked() {
        assert!(parse_start_date("2005-09-01").is_ok());
        for bad in ["2005-9-01", "1999-12-31", "2005-02-30", "yesterday"] {
            let e = parse_start_date(bad).unwrap_err().to_string();
            assert!(e.contains("start_date"), "{e}");
        }
    }

    #[test]
    fn corrupt_visits_are_whole_written_cn_or_ad_visits_and_leave_the_rest_alone() {
        let cfg = SynthConfig { n_corrupt: 3, ..SynthConfig::quick() };
        let plan = plan_cohort(&cfg, 4).unwrap();
        let plain = plan_cohort(&SynthConfig { n_corrupt: 0, ..cfg.clone() }, 4).unwrap();
        let mut corrupt_visits = 0;
        for (p, q) in plan.iter().zip(&plain) {
            for (v, w) in p.visits.iter().zip(&q.visits) {
                let n = v.scans.iter().filter(|s| s.corrupt).count();
                assert!(n == 0 || n == v.scans.len(), "all scans of a visit or none");
                if n > 0 {
                    corrupt_visits += 1;
                    assert_ne!(p.group, PatientGroup::MCI);
                    assert!(v.scans.iter().all(|s| s.written && s.record.dx != Diagnosis::MCI));
                }
                for (s, t) in v.scans.iter().zip(&w.scans) {
                    assert_eq!((s.record.image_id, s.written), (t.record.image_id, t.written));
                    assert!(!t.corrupt);
                }
            }
        }
        assert_eq!(corrupt_visits, 3);
        let list = known_corrupt(&plan);
        assert_eq!(list.len(), 3);
        assert!(list.windows(2).all(|w| w[0] < w[1]));
        assert!(known_corrupt(&plain).is_empty());

        let err = plan_cohort(&SynthConfig { n_corrupt: 100, ..SynthConfig::quick() }, 4).unwrap_err();
        assert!(matches!(&err, DataError::Invalid { key, .. } if key == "n_corrupt"), "{err}");
    }

    #[test]
    fn mix_separates_streams() {
        assert_ne!(mix(1, 2, 3), mix(1, 3, 2));
        assert_ne!(mix(1, 2, 3), mix(2, 2, 3));
        assert_eq!(mix(1, 2, 3), mix(1, 2, 3));
    }
}
