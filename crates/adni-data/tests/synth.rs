//! The synthetic ADNI-like cohort on the procedural phantom: determinism, the ADNI table and
//! folder layout, the known-corrupt scans, the brain mask, the ground truth, and the planted
//! disease effect.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use adni_data::DataError;
use adni_data::cohort::{CohortFilter, build_cohort};
use adni_data::layout::{image_relpath, visit_dir};
use adni_data::synth::{
    Anatomy, AnatomySource, BRAIN_MASK_FILE, CORRUPT_KEPT_BYTES, IMAGES_DIR, KNOWN_CORRUPT_FILE, SynthConfig,
    SynthSummary, TABLE_FILE, generate,
};
use adni_data::table::{COLUMNS_15T, Diagnosis, ScanRecord, read_adni_table};
use adni_data::volume::{read_volume, read_volume_on_grid};
use ndarray::Array3;

/// A generated cohort shared by the tests that only read it.
struct Fixture {
    dir: PathBuf,
    anatomy: Anatomy,
    summary: SynthSummary,
}

fn quick() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let cfg = SynthConfig::quick();
        let anatomy = Anatomy::phantom(cfg.phantom_shape).unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("synth_quick");
        let summary = generate(&cfg, &anatomy, &dir, &|_, _| {}).unwrap();
        Fixture { dir, anatomy, summary }
    })
}

/// Every file under `dir`, by `/`-separated relative path, with its bytes.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A small CSV reader for the ground-truth tables (no commas inside fields).
fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines.map(|l| header.iter().cloned().zip(l.split(',').map(|f| f.trim_matches('"').to_string())).collect()).collect()
}

fn records(dir: &Path) -> Vec<ScanRecord> {
    read_adni_table(&dir.join(TABLE_FILE)).unwrap().records
}

fn labels_of(anatomy: &Anatomy, pair: &str) -> BTreeSet<i32> {
    anatomy.atlas.regions.iter().filter(|r| r.pair_name == pair).map(|r| r.label).collect()
}

/// Mean of `data` over the voxels whose label is in `labels`.
fn mean_in(data: &Array3<f32>, anatomy: &Anatomy, labels: &BTreeSet<i32>) -> f64 {
    let (mut s, mut n) = (0.0, 0.0);
    for (v, l) in data.iter().zip(anatomy.atlas.labels.iter()) {
        if labels.contains(l) {
            s += *v as f64;
            n += 1.0;
        }
    }
    s / n
}

fn mean_in_mask(data: &Array3<f32>, anatomy: &Anatomy) -> f64 {
    let (mut s, mut n) = (0.0, 0.0);
    for (v, m) in data.iter().zip(anatomy.brain_mask.iter()) {
        if *m > 0.5 {
            s += *v as f64;
            n += 1.0;
        }
    }
    s / n
}

/// The lines of `known_corrupt.txt`.
fn known_corrupt_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(KNOWN_CORRUPT_FILE)).unwrap().lines().map(String::from).collect()
}

/// Image.IDs of the rows that `ground_truth/scans.csv` marks corrupt.
fn corrupt_ids(dir: &Path) -> BTreeSet<i64> {
    read_csv(&dir.join("ground_truth/scans.csv"))
        .iter()
        .filter(|s| s["corrupt"] == "yes")
        .map(|s| s["Image.ID"].parse().unwrap())
        .collect()
}

/// Reads a volume, turning a panic of the reader into a test failure that names the file.
fn read_outcome(path: &Path) -> Result<(), String> {
    let p = path.to_path_buf();
    match std::panic::catch_unwind(move || read_volume(&p).map(|_| ()).map_err(|e| e.to_string())) {
        Ok(r) => r,
        Err(_) => panic!("reading {} panicked instead of returning an error", path.display()),
    }
}

fn image(dir: &Path, anatomy: &Anatomy, rec: &ScanRecord) -> Array3<f32> {
    read_volume_on_grid(&dir.join("images").join(image_relpath(rec)), &anatomy.grid()).unwrap().0.data
}

fn atrophy(dir: &Path, anatomy: &Anatomy, image_id: i64) -> Array3<f32> {
    let p = dir.join(format!("ground_truth/atrophy/{image_id}_atrophy.nii.gz"));
    read_volume_on_grid(&p, &anatomy.grid()).unwrap().0.data
}

#[test]
fn same_seed_gives_byte_identical_files_whatever_the_thread_count() {
    let cfg = SynthConfig::quick();
    let anatomy = Anatomy::phantom(cfg.phantom_shape).unwrap();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    generate(&cfg, &anatomy, a.path(), &|_, _| {}).unwrap();
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    one_thread.install(|| generate(&cfg, &anatomy, b.path(), &|_, _| {})).unwrap();
    let (ta, tb) = (read_tree(a.path()), read_tree(b.path()));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (name, bytes) in &ta {
        assert!(bytes == &tb[name], "{name} differs between two runs with the same seed");
    }
    assert!(ta.keys().any(|k| k.ends_with("_Warped.nii.gz")));
    assert!(!ta[KNOWN_CORRUPT_FILE].is_empty() && ta.contains_key(BRAIN_MASK_FILE));
}

#[test]
fn another_seed_gives_other_files() {
    let fx = quick();
    let cfg = SynthConfig { seed: 7, ..SynthConfig::quick() };
    let dir = tempfile::tempdir().unwrap();
    generate(&cfg, &fx.anatomy, dir.path(), &|_, _| {}).unwrap();
    let (a, b) = (read_tree(&fx.dir), read_tree(dir.path()));
    assert_ne!(a[TABLE_FILE], b[TABLE_FILE]);
    let images_a: BTreeSet<&Vec<u8>> =
        a.iter().filter(|(k, _)| k.ends_with("_Warped.nii.gz")).map(|(_, v)| v).collect();
    assert!(b.iter().filter(|(k, _)| k.ends_with("_Warped.nii.gz")).all(|(_, v)| !images_a.contains(v)));
}

#[test]
fn table_has_the_exact_header_and_realistic_values() {
    let fx = quick();
    let text = std::fs::read_to_string(fx.dir.join(TABLE_FILE)).unwrap();
    assert_eq!(text.lines().next().unwrap(), COLUMNS_15T.join(","));
    let recs = records(&fx.dir);
    assert_eq!(recs.len(), fx.summary.scans);
    let ids: BTreeSet<i64> = recs.iter().map(|r| r.image_id).collect();
    assert_eq!(ids.len(), recs.len(), "Image.IDs are unique");
    assert!(recs.iter().all(|r| (10_000..1_000_000).contains(&r.image_id)));
    let mut by_visit: BTreeMap<(String, String), Vec<&ScanRecord>> = BTreeMap::new();
    for r in &recs {
        let b = r.ptid.as_bytes();
        assert!(
            b.len() == 10
                && b[..3].iter().all(u8::is_ascii_digit)
                && &b[3..6] == b"_S_"
                && b[6..].iter().all(u8::is_ascii_digit),
            "PTID {} is not NNN_S_NNNN",
            r.ptid
        );
        assert_eq!(r.ptid[6..].parse::<i64>().unwrap(), r.rid, "PTID ends with the RID");
        let (viscode, month) = match r.visit.as_str() {
            "Screening" => ("bl", 0.0),
            "Month 12" => ("m12", 12.0),
            "Month 24" => ("m24", 24.0),
            other => panic!("unexpected Visit {other}"),
        };
        assert_eq!(r.viscode, viscode);
        assert!((r.month_bl - month).abs() < 2.0, "Month_bl {} for {}", r.month_bl, r.visit);
        let exam: Vec<i32> = r.examdate.split('-').map(|s| s.parse().unwrap()).collect();
        let (sd, ed) = (r.scan_date, (exam[0], exam[1], exam[2]));
        let days = |y: i32, m: i32, d: i32| y * 372 + m * 31 + d; // monotone, close enough for a bound
        let gap = days(sd.full_year(), sd.month as i32, sd.day as i32) - days(ed.0, ed.1, ed.2);
        assert!((-40..=40).contains(&gap), "Scan.Date {} far from EXAMDATE {}", sd, r.examdate);
        let expected = match r.dx {
            Diagnosis::CN => [Some(0), Some(0), Some(0), None],
            Diagnosis::MCI => [Some(1), None, Some(1), Some(0)],
            Diagnosis::Dementia => [Some(2), Some(1), None, Some(1)],
        };
        assert_eq!(
            [r.label_three_fold, r.label_cn_ad, r.label_cn_mci, r.label_mci_ad],
            expected,
            "labels of {}",
            r.image_id
        );
        assert!(["NL", "MCI", "AD"].contains(&r.screen_diagnosis.as_str()));
        assert!(
            r.sequence.starts_with("MPR; GradWarp; B1 Correction; N3; Scaled")
                || r.sequence.starts_with("MPR-R; GradWarp; B1 Correction; N3; Scaled")
        );
        by_visit.entry((r.ptid.clone(), r.visit.clone())).or_default().push(r);
    }
    // Duplicates: a second reconstruction of the same acquisition.
    let mut duplicates = 0;
    for rows in by_visit.values() {
        assert!(rows.len() <= 2);
        if rows.len() == 2 {
            duplicates += 1;
            let (p, d) = (rows[0], rows[1]);
            assert!(!p.sequence.ends_with("_2") && d.sequence == format!("{}_2", p.sequence));
            assert_eq!((p.study_id, p.series_id, p.dx, &p.scan_date), (d.study_id, d.series_id, d.dx, &d.scan_date));
        }
    }
    assert!(duplicates > 0, "the quick cohort has duplicate Scaled_2 rows");
    assert_eq!(duplicates, fx.summary.duplicates);
    // Patients have 1-3 visits, starting at Screening.
    let mut visits: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &recs {
        visits.entry(&r.ptid).or_default().insert(&r.viscode);
    }
    assert_eq!(visits.len(), 8);
    assert!(visits.values().all(|v| v.contains("bl") && (!v.contains("m24") || v.contains("m12"))));
}

#[test]
fn written_images_lie_at_the_layout_path_on_the_template_grid_and_missing_rows_are_absent() {
    let fx = quick();
    let scans = read_csv(&fx.dir.join("ground_truth/scans.csv"));
    let recs = records(&fx.dir);
    assert_eq!(scans.len(), recs.len());
    let (mut written, mut missing) = (0, 0);
    for (rec, gt) in recs.iter().zip(&scans) {
        assert_eq!(gt["Image.ID"], rec.image_id.to_string());
        let path = fx.dir.join("images").join(image_relpath(rec));
        let atr = fx.dir.join(format!("ground_truth/atrophy/{}_atrophy.nii.gz", rec.image_id));
        if gt["image_written"] == "yes" {
            written += 1;
            assert_eq!(fx.dir.join(&gt["image_path"]), path);
            if gt["corrupt"] == "yes" {
                assert!(path.is_file(), "the corrupt {} exists", path.display());
                assert!(read_outcome(&path).is_err(), "{} is unreadable", path.display());
            } else {
                assert_eq!(gt["corrupt"], "no");
                let (vol, _) = read_volume_on_grid(&path, &fx.anatomy.grid()).unwrap();
                assert!(vol.data.iter().any(|&v| v > 0.0));
            }
            assert!(atr.exists());
        } else {
            assert_eq!(gt["corrupt"], "no", "a corrupt row has its (corrupt) file");
            missing += 1;
            assert!(!path.exists(), "{} should be missing", path.display());
            assert!(!atr.exists());
        }
    }
    assert_eq!((written, missing), (fx.summary.images_written, fx.summary.missing_rows));
    assert!(missing >= 1, "missing_fraction 0.1 leaves rows without a file");
}

#[test]
fn manifest_lists_every_file_with_its_size() {
    let fx = quick();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.dir.join("manifest.json")).unwrap()).unwrap();
    let listed: BTreeMap<String, u64> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_string(), f["bytes"].as_u64().unwrap()))
        .collect();
    let tree = read_tree(&fx.dir);
    let on_disk: BTreeMap<String, u64> =
        tree.iter().filter(|(k, _)| *k != "manifest.json").map(|(k, v)| (k.clone(), v.len() as u64)).collect();
    assert_eq!(listed, on_disk);
    for f in [
        "synth_config.json",
        "ground_truth/atlas.nii.gz",
        "ground_truth/atlas_labels.csv",
        "ground_truth/regions.csv",
        KNOWN_CORRUPT_FILE,
        BRAIN_MASK_FILE,
    ] {
        assert!(listed.contains_key(f), "{f} in the manifest");
    }
    let in_manifest: Vec<String> =
        manifest["known_corrupt"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(in_manifest, known_corrupt_lines(&fx.dir));
    assert_eq!(manifest["brain_mask"], BRAIN_MASK_FILE);
    let cfg: SynthConfig = serde_json::from_slice(&tree["synth_config.json"]).unwrap();
    assert_eq!(cfg, SynthConfig::quick());
}

#[test]
fn ad_scans_have_more_atrophy_in_the_target_regions_than_cn() {
    let cfg = SynthConfig {
        n_cn: 6,
        n_ad: 6,
        n_mci: 0,
        missing_fraction: 0.0,
        n_corrupt: 0,
        phantom_shape: [64, 76, 64],
        ..SynthConfig::quick()
    };
    let anatomy = Anatomy::phantom(cfg.phantom_shape).unwrap();
    let dir = tempfile::tempdir().unwrap();
    generate(&cfg, &anatomy, dir.path(), &|_, _| {}).unwrap();
    let hippo = labels_of(&anatomy, "Hippocampus");
    let control = labels_of(&anatomy, "Superior Frontal");
    let mut by_dx: BTreeMap<Diagnosis, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for rec in records(dir.path()) {
        let img = image(dir.path(), &anatomy, &rec);
        let brain = mean_in_mask(&img, &anatomy);
        let atr = atrophy(dir.path(), &anatomy, rec.image_id);
        by_dx.entry(rec.dx).or_default().push((
            atr.sum() as f64,
            mean_in(&img, &anatomy, &hippo) / brain,
            mean_in(&img, &anatomy, &control) / brain,
        ));
    }
    let mean = |v: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let (cn, ad) = (&by_dx[&Diagnosis::CN], &by_dx[&Diagnosis::Dementia]);
    assert!(cn.iter().all(|s| s.0 == 0.0), "CN scans carry no planted atrophy");
    assert!(ad.iter().all(|s| s.0 > 1.0), "every AD scan has planted atrophy: {ad:?}");
    let concentration = {
        let rec = records(dir.path()).into_iter().find(|r| r.dx == Diagnosis::Dementia).unwrap();
        let atr = atrophy(dir.path(), &anatomy, rec.image_id);
        mean_in(&atr, &anatomy, &hippo) / (atr.sum() as f64 / atr.len() as f64)
    };
    assert!(
        concentration > 20.0,
        "the atrophy map concentrates in the hippocampus ({concentration:.1}× its volume mean)"
    );
    let hippo_drop = mean(cn, |s| s.1) - mean(ad, |s| s.1);
    let control_drop = mean(cn, |s| s.2) - mean(ad, |s| s.2);
    let sd = |v: &[(f64, f64, f64)]| {
        let m = mean(v, |s| s.1);
        (v.iter().map(|s| (s.1 - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    };
    let t = hippo_drop / (sd(cn).powi(2) / cn.len() as f64 + sd(ad).powi(2) / ad.len() as f64).sqrt();
    assert!(hippo_drop > 0.015 && t > 3.0, "hippocampus relative intensity CN − AD = {hippo_drop:.4} (t = {t:.1})");
    assert!(
        hippo_drop > 3.0 * control_drop.abs(),
        "effect is regional: hippocampus {hippo_drop:.4}, superior frontal {control_drop:.4}"
    );
    let regions = read_csv(&dir.path().join("ground_truth/regions.csv"));
    assert!(regions.iter().any(|r| r["region"] == "Hippocampus" && r["tissue_loss"].parse::<f64>().unwrap() > 0.0));
}

#[test]
fn severity_and_atrophy_grow_over_visits_for_ad_patients() {
    let cfg = SynthConfig {
        n_cn: 1,
        n_ad: 4,
        n_mci: 0,
        visit_weights: [0.0, 0.0, 1.0],
        missing_fraction: 0.0,
        ..SynthConfig::quick()
    };
    let anatomy = Anatomy::phantom(cfg.phantom_shape).unwrap();
    let dir = tempfile::tempdir().unwrap();
    generate(&cfg, &anatomy, dir.path(), &|_, _| {}).unwrap();
    let hippo = labels_of(&anatomy, "Hippocampus");
    let scans = read_csv(&dir.path().join("ground_truth/scans.csv"));
    let mut per_patient: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in scans.iter().filter(|s| s["group"] == "AD" && s["duplicate"] == "no") {
        let atr = atrophy(dir.path(), &anatomy, s["Image.ID"].parse().unwrap());
        per_patient
            .entry(s["PTID"].clone())
            .or_default()
            .push((s["severity"].parse().unwrap(), mean_in(&atr, &anatomy, &hippo)));
    }
    assert_eq!(per_patient.len(), 4);
    for (ptid, v) in per_patient {
        assert_eq!(v.len(), 3, "{ptid} has three visits");
        for w in v.windows(2) {
            assert!(w[1].0 > w[0].0, "{ptid}: severity grows {v:?}");
            assert!(w[1].1 > w[0].1, "{ptid}: hippocampal atrophy grows {v:?}");
        }
    }
}

#[test]
fn mci_rows_exist_and_converters_change_dx_but_not_screen_diagnosis() {
    assert!(records(&quick().dir).iter().any(|r| r.dx == Diagnosis::MCI));
    let cfg = SynthConfig {
        n_cn: 0,
        n_ad: 0,
        n_mci: 4,
        n_corrupt: 0,
        mci_conversion_fraction: 1.0,
        visit_weights: [0.0, 0.0, 1.0],
        ..SynthConfig::quick()
    };
    let anatomy = Anatomy::phantom(cfg.phantom_shape).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(&cfg, &anatomy, dir.path(), &|_, _| {}).unwrap();
    assert_eq!((summary.patients_mci, summary.mci_converters), (4, 4));
    let mut by_patient: BTreeMap<String, Vec<ScanRecord>> = BTreeMap::new();
    for r in records(dir.path()) {
        by_patient.entry(r.ptid.clone()).or_default().push(r);
    }
    for (ptid, rows) in by_patient {
        assert!(rows.iter().all(|r| r.screen_diagnosis == "MCI"), "{ptid}");
        assert_eq!(rows[0].dx, Diagnosis::MCI, "{ptid} is MCI at Screening");
        assert_eq!(rows.last().unwrap().dx, Diagnosis::Dementia, "{ptid} converts");
        let dx: Vec<Diagnosis> = rows.iter().map(|r| r.dx).collect();
        assert!(dx.windows(2).all(|w| w[0] <= w[1]), "{ptid}: no reversion {dx:?}");
    }
}

#[test]
fn unknown_atrophy_region_is_an_error_listing_the_valid_names() {
    let cfg =
        SynthConfig { atrophy_regions: vec!["Hipocampus".into()], region_weights: vec![], ..SynthConfig::quick() };
    let anatomy = Anatomy::phantom(cfg.phantom_shape).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cohort");
    let err = generate(&cfg, &anatomy, &out, &|_, _| {}).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Invalid { .. }), "{msg}");
    for part in ["atrophy_regions", "`Hipocampus`", "did you mean `Hippocampus`", "Amygdala", "Middle Temporal"] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    assert!(!out.exists(), "nothing is written for a bad config");
    // Matching is case-insensitive.
    let cfg =
        SynthConfig { atrophy_regions: vec!["hippocampus".into()], region_weights: vec![], ..SynthConfig::quick() };
    generate(&cfg, &anatomy, &out, &|_, _| {}).unwrap();
}

#[test]
fn scans_of_one_patient_are_not_identical() {
    let fx = quick();
    let recs = records(&fx.dir);
    let scans = read_csv(&fx.dir.join("ground_truth/scans.csv"));
    let written: Vec<&ScanRecord> = recs
        .iter()
        .zip(&scans)
        .filter(|(_, s)| s["image_written"] == "yes" && s["corrupt"] == "no")
        .map(|(r, _)| r)
        .collect();
    let mut compared = 0;
    for (a, b) in written.iter().zip(written.iter().skip(1)) {
        if a.ptid != b.ptid {
            continue;
        }
        let (ia, ib) = (image(&fx.dir, &fx.anatomy, a), image(&fx.dir, &fx.anatomy, b));
        let diff = ia.iter().zip(ib.iter()).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / ia.len() as f64;
        assert!(diff > 0.1, "{} and {} differ by only {diff}", a.image_id, b.image_id);
        compared += 1;
    }
    assert!(compared >= 2, "the quick cohort has patients with several scans");
    // Two patients' Screening scans differ in shape too: their heads do not coincide.
    let first = written.iter().find(|r| r.viscode == "bl").unwrap();
    let second = written.iter().find(|r| r.viscode == "bl" && r.ptid != first.ptid).unwrap();
    let screening = [first, second];
    let (ia, ib) = (image(&fx.dir, &fx.anatomy, screening[0]), image(&fx.dir, &fx.anatomy, screening[1]));
    let head = |a: &Array3<f32>| a.iter().filter(|&&v| v > 0.0).count();
    assert_ne!(head(&ia), head(&ib));
}

#[test]
fn progress_counts_every_written_image() {
    let cfg = SynthConfig { n_cn: 2, n_ad: 1, n_mci: 0, ..SynthConfig::quick() };
    let anatomy = Anatomy::phantom(cfg.phantom_shape).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let calls = AtomicUsize::new(0);
    let last = AtomicUsize::new(0);
    let summary = generate(&cfg, &anatomy, dir.path(), &|done, total| {
        calls.fetch_add(1, Ordering::SeqCst);
        last.fetch_max(done, Ordering::SeqCst);
        assert!(done <= total);
    })
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), summary.images_written + 1);
    assert_eq!(last.load(Ordering::SeqCst), summary.images_written);
    assert!(summary.seconds > 0.0 && summary.seconds_per_image > 0.0);
}

#[test]
fn rerun_replaces_a_previous_cohort_and_foreign_folders_are_refused() {
    let anatomy = Anatomy::phantom([40, 48, 40]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cohort");
    let big = SynthConfig { n_cn: 4, ..SynthConfig::quick() };
    let small = SynthConfig { n_cn: 1, n_ad: 1, n_mci: 0, seed: 3, ..SynthConfig::quick() };
    generate(&big, &anatomy, &out, &|_, _| {}).unwrap();
    generate(&small, &anatomy, &out, &|_, _| {}).unwrap();
    let fresh = dir.path().join("fresh");
    generate(&small, &anatomy, &fresh, &|_, _| {}).unwrap();
    assert_eq!(read_tree(&out), read_tree(&fresh), "no stale file of the first run is left");

    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let msg = generate(&small, &anatomy, &foreign, &|_, _| {}).unwrap_err().to_string();
    assert!(msg.contains("not empty"), "{msg}");
    assert_eq!(std::fs::read_to_string(foreign.join("notes.txt")).unwrap(), "mine");

    // The CLI may write its TOML config into the folder first; it is kept.
    let with_toml = dir.path().join("with_toml");
    std::fs::create_dir_all(&with_toml).unwrap();
    std::fs::write(with_toml.join("synth_config.toml"), "seed = 3\n").unwrap();
    generate(&small, &anatomy, &with_toml, &|_, _| {}).unwrap();
    assert_eq!(std::fs::read_to_string(with_toml.join("synth_config.toml")).unwrap(), "seed = 3\n");
}

#[test]
fn config_rejects_unknown_keys_and_bad_values() {
    let err = serde_json::from_str::<SynthConfig>(r#"{"sed": 3}"#).unwrap_err().to_string();
    assert!(err.contains("unknown field `sed`") && err.contains("seed"), "{err}");
    let cfg: SynthConfig = serde_json::from_str(r#"{"anatomy": "phantom", "n_ad": 2}"#).unwrap();
    assert_eq!((cfg.anatomy, cfg.n_ad, cfg.seed), (AnatomySource::Phantom, 2, 2018));
    let bad = [
        (SynthConfig { effect_size: -1.0, ..SynthConfig::default() }, "effect_size"),
        (SynthConfig { missing_fraction: 1.0, ..SynthConfig::default() }, "missing_fraction"),
        (SynthConfig { region_weights: vec![1.0], ..SynthConfig::default() }, "region_weights"),
        (SynthConfig { sites: vec![1000], ..SynthConfig::default() }, "sites"),
        (SynthConfig { start_date: "2005-13-01".into(), ..SynthConfig::default() }, "start_date"),
        (SynthConfig { n_cn: 0, n_ad: 0, n_mci: 0, ..SynthConfig::default() }, "n_cn"),
        (SynthConfig { visit_weights: [0.0; 3], ..SynthConfig::default() }, "visit_weights"),
        (SynthConfig { n_cn: 0, n_ad: 0, n_mci: 3, ..SynthConfig::default() }, "n_corrupt"),
        (SynthConfig { n_cn: 1, n_ad: 1, n_corrupt: 7, ..SynthConfig::default() }, "n_corrupt"),
    ];
    for (cfg, key) in bad {
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.contains(key), "{key}: {msg}");
    }
    SynthConfig::default().validate().unwrap();
    SynthConfig { n_cn: 0, n_ad: 0, n_mci: 3, n_corrupt: 0, ..SynthConfig::default() }.validate().unwrap();
    assert_eq!(SynthConfig::default().n_corrupt, 1);
    // More corrupt visits than whole written CN/AD visits: refused before anything is written.
    let cfg = SynthConfig { n_cn: 1, n_ad: 0, n_mci: 0, visit_weights: [1.0, 0.0, 0.0], ..SynthConfig::quick() };
    let anatomy = Anatomy::phantom(cfg.phantom_shape).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cohort");
    let cfg = SynthConfig { n_corrupt: 2, missing_fraction: 0.0, ..cfg };
    let msg = generate(&cfg, &anatomy, &out, &|_, _| {}).unwrap_err().to_string();
    assert!(msg.contains("n_corrupt"), "{msg}");
    assert!(!out.exists(), "nothing is written for an impossible n_corrupt");
}

#[test]
fn known_corrupt_scans_exist_fail_to_read_and_only_the_first_filter_removes_them() {
    let fx = quick();
    let lines = known_corrupt_lines(&fx.dir);
    assert_eq!(lines.len(), 1, "quick() has one known-corrupt visit");
    let mut sorted = lines.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(lines, sorted, "sorted, no repeats");

    // The list is exactly the visits of the corrupt rows, and every scan of those visits is one.
    let recs = records(&fx.dir);
    let ids = corrupt_ids(&fx.dir);
    assert_eq!(ids.len(), fx.summary.corrupt_scans);
    let visit_of = |r: &ScanRecord| format!("{}/{}", r.ptid, r.visit);
    let listed: BTreeSet<String> = lines.iter().cloned().collect();
    let from_rows: BTreeSet<String> = recs.iter().filter(|r| ids.contains(&r.image_id)).map(visit_of).collect();
    assert_eq!(listed, from_rows);
    let corrupt_rows: Vec<&ScanRecord> = recs.iter().filter(|r| listed.contains(&visit_of(r))).collect();
    assert_eq!(corrupt_rows.iter().map(|r| r.image_id).collect::<BTreeSet<_>>(), ids);
    for r in &corrupt_rows {
        assert!(matches!(r.dx, Diagnosis::CN | Diagnosis::Dementia), "{} is CN or AD", r.image_id);
        assert!(["NL", "AD"].contains(&r.screen_diagnosis.as_str()), "a CN or AD patient");
        let path = fx.dir.join(IMAGES_DIR).join(image_relpath(r));
        assert!(path.is_file(), "{} exists at its layout path", path.display());
        let err = read_outcome(&path).unwrap_err();
        assert!(!err.is_empty());
        // A valid gzip stream of the real header and the start of the data.
        let mut content = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()).read_to_end(&mut content).unwrap();
        assert_eq!(content.len(), CORRUPT_KEPT_BYTES);
        assert_eq!(i32::from_le_bytes(content[..4].try_into().unwrap()), 348, "a NIfTI-1 header");
    }

    // The cohort filter: the first step removes exactly the corrupt rows, which the later
    // filters would have kept.
    let table = read_adni_table(&fx.dir.join(TABLE_FILE)).unwrap();
    let root = fx.dir.join(IMAGES_DIR);
    let filter = CohortFilter { known_corrupt: lines.clone(), ..CohortFilter::default() };
    let with = build_cohort(&table, &root, &filter).unwrap();
    let without = build_cohort(&table, &root, &CohortFilter { known_corrupt: vec![], ..filter.clone() }).unwrap();
    assert_eq!(with.report.steps[0].name, "known corrupt");
    assert_eq!(with.report.steps[0].removed, ids.len());
    assert_eq!(without.report.steps[0].removed, 0);
    for (a, b) in with.report.steps.iter().zip(&without.report.steps).skip(1) {
        assert_eq!(a.removed, b.removed, "{}: the later filters remove the same rows", a.name);
    }
    let kept = |c: &adni_data::cohort::Cohort| c.scans.iter().map(|s| s.record.image_id).collect::<BTreeSet<i64>>();
    let dropped: BTreeSet<i64> = kept(&without).difference(&kept(&with)).copied().collect();
    assert_eq!(dropped, ids, "exactly the corrupt rows leave the cohort");
    assert!(kept(&with).is_subset(&kept(&without)));
    // Every retained scan reads.
    for s in &with.scans {
        read_volume_on_grid(&s.path, &fx.anatomy.grid()).unwrap();
    }
    // The folder form of the visit (`Month12`) selects the same rows.
    let folder_form: Vec<String> = lines
        .iter()
        .map(|l| {
            let (ptid, visit) = l.split_once('/').unwrap();
            format!("{ptid}/{}", visit_dir(visit))
        })
        .collect();
    let same = build_cohort(&table, &root, &CohortFilter { known_corrupt: folder_form, ..filter }).unwrap();
    assert_eq!(kept(&same), kept(&with));
}

#[test]
fn duplicates_of_a_corrupt_visit_are_corrupt_too_and_the_rest_does_not_change() {
    let cfg = SynthConfig {
        n_cn: 1,
        n_ad: 1,
        n_mci: 0,
        duplicate_fraction: 1.0,
        missing_fraction: 0.0,
        visit_weights: [0.0, 0.0, 1.0],
        n_corrupt: 2,
        ..SynthConfig::quick()
    };
    let anatomy = Anatomy::phantom(cfg.phantom_shape).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(&cfg, &anatomy, dir.path(), &|_, _| {}).unwrap();
    assert_eq!(summary.corrupt_scans, 4, "two visits of a primary and a Scaled_2 duplicate each");
    let lines = known_corrupt_lines(dir.path());
    assert_eq!(lines.len(), 2);
    let recs = records(dir.path());
    let ids = corrupt_ids(dir.path());
    for r in &recs {
        let path = dir.path().join(IMAGES_DIR).join(image_relpath(r));
        let listed = lines.contains(&format!("{}/{}", r.ptid, r.visit));
        assert_eq!(listed, ids.contains(&r.image_id), "{}", r.image_id);
        assert_eq!(read_outcome(&path).is_err(), listed, "{}", path.display());
    }
    assert_eq!(recs.iter().filter(|r| ids.contains(&r.image_id) && r.sequence.ends_with("_2")).count(), 2);

    // Without corrupt visits every other file is byte-identical.
    let plain = tempfile::tempdir().unwrap();
    let summary0 = generate(&SynthConfig { n_corrupt: 0, ..cfg.clone() }, &anatomy, plain.path(), &|_, _| {}).unwrap();
    assert_eq!(summary0.corrupt_scans, 0);
    assert!(known_corrupt_lines(plain.path()).is_empty());
    let (a, b) = (read_tree(dir.path()), read_tree(plain.path()));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let corrupt_paths: BTreeSet<String> = recs
        .iter()
        .filter(|r| ids.contains(&r.image_id))
        .map(|r| format!("{IMAGES_DIR}/{}", adni_data::layout::image_relpath_str(r)))
        .collect();
    for (name, bytes) in &a {
        let differs = bytes != &b[name];
        let expected = corrupt_paths.contains(name)
            || [KNOWN_CORRUPT_FILE, "manifest.json", "synth_config.json", "ground_truth/scans.csv"]
                .contains(&name.as_str());
        assert_eq!(differs, expected, "{name}");
    }
}

#[test]
fn brain_mask_file_is_the_anatomy_mask() {
    let fx = quick();
    let path = fx.dir.join(BRAIN_MASK_FILE);
    let (vol, info, _) = read_volume(&path).unwrap();
    assert_eq!(info.datatype, "uint8");
    vol.grid().check_matches(&fx.anatomy.grid(), &path, 1e-6).unwrap();
    assert_eq!(vol.data, fx.anatomy.brain_mask);
    assert!(vol.data.iter().all(|&v| v == 0.0 || v == 1.0));
    assert!(vol.data.iter().any(|&v| v == 1.0));
}

#[test]
fn phantom_has_the_named_regions_and_a_t1_contrast() {
    let a = Anatomy::phantom([40, 48, 40]).unwrap();
    let volumes = a.atlas.region_volumes();
    for pair in [
        "Hippocampus",
        "Amygdala",
        "Entorhinal",
        "Parahippocampal",
        "Inferior temporal",
        "Middle Temporal",
        "Lateral Ventricle",
    ] {
        for label in labels_of(&a, pair) {
            assert!(volumes[&label] > 0, "{pair} ({label}) has voxels");
        }
        assert_eq!(labels_of(&a, pair).len(), 2, "{pair} has two sides");
    }
    // Left is at negative x (RAS).
    let left = a.atlas.regions.iter().find(|r| r.name == "Hippocampus (left)").unwrap().label;
    let xs: Vec<f64> = a
        .atlas
        .labels
        .indexed_iter()
        .filter(|(_, l)| **l == left)
        .map(|((i, j, k), _)| a.t1.affine.apply([i as f64, j as f64, k as f64])[0])
        .collect();
    assert!(xs.iter().all(|&x| x < 0.0));
    // The grid centre is world 0.
    let c = a.t1.affine.apply([19.5, 23.5, 19.5]);
    assert!(c.iter().all(|v| v.abs() < 1e-9), "{c:?}");
    let gm = mean_in(&a.t1.data, &a, &labels_of(&a, "Middle Temporal"));
    let csf = mean_in(&a.t1.data, &a, &labels_of(&a, "Lateral Ventricle"));
    let thal = mean_in(&a.t1.data, &a, &labels_of(&a, "Thalamus"));
    assert!(csf < gm && gm < thal, "T1 contrast CSF {csf} < GM {gm} < deep GM {thal}");
    assert!(Anatomy::phantom([10, 40, 40]).is_err());
    let real = SynthConfig::default();
    let msg = Anatomy::from_config(&real, None).unwrap_err().to_string();
    assert!(msg.contains("anatomy") && msg.contains("fetch-data"), "{msg}");
    assert_eq!(Anatomy::from_config(&SynthConfig::quick(), None).unwrap().grid().shape, [40, 48, 40]);
}

#[test]
fn is_complete_detects_a_finished_cohort_and_any_damage() {
    use adni_data::synth::{SynthConfig, is_complete};
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig::quick();
    let anatomy = adni_data::synth::Anatomy::phantom(cfg.phantom_shape).unwrap();
    assert!(!is_complete(dir.path(), &cfg), "an empty folder is not a cohort");
    adni_data::synth::generate(&cfg, &anatomy, dir.path(), &|_, _| {}).unwrap();
    assert!(is_complete(dir.path(), &cfg));
    let other = SynthConfig { seed: cfg.seed + 1, ..cfg.clone() };
    assert!(!is_complete(dir.path(), &other), "another config is not this cohort");
    // Truncate one listed file: no longer complete.
    let table = dir.path().join(adni_data::synth::TABLE_FILE);
    let text = std::fs::read(&table).unwrap();
    std::fs::write(&table, &text[..text.len() - 1]).unwrap();
    assert!(!is_complete(dir.path(), &cfg), "a truncated table must be noticed");
}
