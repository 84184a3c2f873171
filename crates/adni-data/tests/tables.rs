//! Integration tests for ADNI tables, the image layout, the cohort filters and split files.

use std::fs;
use std::path::{Path, PathBuf};

use adni_data::DataError;
use adni_data::cohort::{CohortFilter, build_cohort};
use adni_data::layout::{image_path, image_relpath};
use adni_data::splits::{
    Split, SplitRow, SplitSet, check_no_leakage, holdout_split, kfold_splits, read_split_csv, write_split_csv,
};
use adni_data::table::{
    AdniTable, COLUMNS_3T, COLUMNS_15T, Diagnosis, FieldStrength, ScanDate, ScanRecord, read_adni_table,
    write_adni_table,
};

const HEADER_15T: &str = "RID,PTID,VISCODE,DX,EXAMDATE,Image.ID,Scan.Date,Sequence,Visit,Month_bl,Screen.Diagnosis,Study.ID,Series.ID,label_three_fold,label_CN_AD,label_CN_MCI,label_MCI_AD";

/// A 1.5 T table as R's `write.csv` writes it (strings quoted), with an extra trailing column.
fn table_15t_text() -> String {
    format!(
        "{HEADER_15T},extra\n\
         3,\"011_S_0003\",\"bl\",\"Dementia\",\"2005-09-12\",32237,\"9/1/05\",\"MPR; GradWarp; B1 Correction; N3; Scaled\",\"Screening\",0,\"AD\",2120,1432,2,1,\"N/A\",1,\"x\"\n\
         3,\"011_S_0003\",\"m12\",\"Dementia\",\"2006-09-12\",35576,\"9/12/06\",\"MPR; GradWarp; B1 Correction; N3; Scaled\",\"Month 12\",11.9672131147541,\"AD\",2121,1433,2,1,\"N/A\",1,\"\"\n\
         3,\"011_S_0003\",\"m12\",\"Dementia\",\"2006-09-12\",35577,\"9/12/06\",\"MPR; GradWarp; B1 Correction; N3; Scaled_2\",\"Month 12\",11.9672131147541,\"AD\",2121,1434,2,1,\"N/A\",1,\"\"\n\
         5,\"011_S_0005\",\"bl\",\"CN\",\"2005-09-07\",32240,\"9/7/05\",\"MPR; GradWarp; B1 Correction; N3; Scaled\",\"Screening\",0,\"NL\",2130,1440,0,0,0,\"N/A\",\"\"\n\
         8,\"011_S_0008\",\"m24\",\"MCI\",\"2007-10-01\",88000,\"10/1/07\",\"MPR-R; GradWarp; N3; Scaled\",\"Month 24\",24.5,\"MCI\",2140,1450,1,N/A,1,0,\"\"\n"
    )
}

fn table_3t_text() -> String {
    format!(
        "{},Notes\n\
         21,\"023_S_0031\",\"bl\",\"CN\",\"2006-01-30\",12345,\"1/30/06\",\"MPR; GradWarp; B1 Correction; N3\",\"Baseline\",0,\"NL\",100,200,\"\"\n\
         22,\"023_S_0042\",\"m12\",\"Dementia\",\"2007-02-28\",12346,\"2/28/07\",\"MPR; GradWarp; B1 Correction; N3\",\"Month 12\",12.1,\"AD\",101,201,\"note\"\n",
        COLUMNS_3T.join(",")
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

/// The table error message of reading `text` (must fail with `DataError::Table` naming the file).
fn table_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad_table.csv", text);
    match read_adni_table(&p) {
        Err(DataError::Table { path, message }) => {
            assert_eq!(path, p);
            let full = DataError::Table { path, message: message.clone() }.to_string();
            assert!(full.contains("bad_table.csv"), "{full}");
            message
        }
        other => panic!("expected a table error, got {other:?}"),
    }
}

/// The 1.5 T example text with one field of data row `row` (0-based) replaced.
fn with_field(row: usize, column: &str, value: &str) -> String {
    let col = COLUMNS_15T.iter().position(|c| *c == column).unwrap();
    let mut out = String::new();
    for (i, line) in table_15t_text().lines().enumerate() {
        if i == row + 1 {
            // The example has no commas inside quoted fields, so a plain split is safe here.
            let mut fields: Vec<String> = line.split(',').map(str::to_owned).collect();
            fields[col] = value.to_owned();
            out.push_str(&fields.join(","));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn reads_a_15t_table() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "adni_15t.csv", &table_15t_text());
    let t = read_adni_table(&p).unwrap();
    assert_eq!(t.field_strength, FieldStrength::T15);
    assert_eq!(t.path, p);
    assert_eq!(t.len(), 5);
    let r = &t.records[1];
    assert_eq!(r.rid, 3);
    assert_eq!(r.ptid, "011_S_0003");
    assert_eq!(r.viscode, "m12");
    assert_eq!(r.dx, Diagnosis::Dementia);
    assert_eq!(r.examdate, "2006-09-12");
    assert_eq!(r.image_id, 35576);
    assert_eq!(r.scan_date, ScanDate { month: 9, day: 12, year: 6 });
    assert_eq!(r.sequence, "MPR; GradWarp; B1 Correction; N3; Scaled");
    assert_eq!(r.visit, "Month 12");
    assert_eq!(r.month_bl, 11.9672131147541);
    assert_eq!(r.screen_diagnosis, "AD");
    assert_eq!((r.study_id, r.series_id), (2121, 1433));
    assert_eq!((r.label_three_fold, r.label_cn_ad, r.label_cn_mci, r.label_mci_ad), (Some(2), Some(1), None, Some(1)));
    assert_eq!(t.records[2].sequence, "MPR; GradWarp; B1 Correction; N3; Scaled_2");
    let mci = &t.records[4];
    assert_eq!(mci.dx, Diagnosis::MCI);
    assert_eq!(
        (mci.label_three_fold, mci.label_cn_ad, mci.label_cn_mci, mci.label_mci_ad),
        (Some(1), None, Some(1), Some(0))
    );
    assert_eq!(
        image_relpath(r),
        PathBuf::from("011_S_0003/Month12/011_S_0003_9-12-06_Month12_35576_Dementia_Warped.nii.gz")
    );
}

#[test]
fn reads_a_3t_table() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "adni_3t.csv", &table_3t_text());
    let t = read_adni_table(&p).unwrap();
    assert_eq!(t.field_strength, FieldStrength::T3);
    assert_eq!(t.len(), 2);
    assert_eq!(t.records[0].visit, "Baseline");
    assert_eq!(t.records[1].scan_date.to_string(), "2/28/07");
    assert!(t.records.iter().all(|r| r.label_three_fold.is_none()
        && r.label_cn_ad.is_none()
        && r.label_cn_mci.is_none()
        && r.label_mci_ad.is_none()));
    let df = t.to_dataframe().unwrap();
    assert_eq!(df.width(), 13);
    assert_eq!(df.get_column_names().iter().map(|c| c.as_str()).collect::<Vec<_>>(), COLUMNS_3T);
}

#[test]
fn dataframe_has_typed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let t = read_adni_table(&write(dir.path(), "t.csv", &table_15t_text())).unwrap();
    let df = t.to_dataframe().unwrap();
    assert_eq!(df.shape(), (5, 17));
    assert_eq!(df.column("Image.ID").unwrap().i64().unwrap().get(1), Some(35576));
    assert_eq!(df.column("Month_bl").unwrap().f64().unwrap().get(4), Some(24.5));
    let cn_mci = df.column("label_CN_MCI").unwrap().i32().unwrap();
    assert_eq!(cn_mci.get(0), None);
    assert_eq!(cn_mci.get(3), Some(0));
    assert_eq!(df.column("Scan.Date").unwrap().str().unwrap().get(1), Some("9/12/06"));
}

#[test]
fn write_then_read_is_identity() {
    let dir = tempfile::tempdir().unwrap();
    let original = read_adni_table(&write(dir.path(), "in.csv", &table_15t_text())).unwrap();
    let mut records = original.records.clone();
    // Free text that needs quoting, and labels that are all missing.
    records[0].sequence = "MPR; GradWarp, \"odd\"; N3".into();
    records[0].label_three_fold = None;
    records[0].label_cn_ad = None;
    records[0].label_mci_ad = None;
    records[1].month_bl = 0.1 + 0.2;
    let out = dir.path().join("nested/out.csv");
    write_adni_table(&out, &records, FieldStrength::T15).unwrap();
    let text = fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().next(), Some(HEADER_15T), "exact header");
    assert!(text.contains("N/A"), "missing labels are written as N/A: {text}");
    let back = read_adni_table(&out).unwrap();
    assert_eq!(back.field_strength, FieldStrength::T15);
    assert_eq!(back.records, records);

    // 3 T round trip: 13 columns, no labels.
    let t3 = read_adni_table(&write(dir.path(), "in3.csv", &table_3t_text())).unwrap();
    let out3 = dir.path().join("out3.csv");
    write_adni_table(&out3, &t3.records, FieldStrength::T3).unwrap();
    assert_eq!(fs::read_to_string(&out3).unwrap().lines().next(), Some(COLUMNS_3T.join(",").as_str()));
    let back3 = read_adni_table(&out3).unwrap();
    assert_eq!(back3.field_strength, FieldStrength::T3);
    assert_eq!(back3.records, t3.records);
}

#[test]
fn writer_refuses_records_that_would_not_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let t = read_adni_table(&write(dir.path(), "in.csv", &table_15t_text())).unwrap();
    let out = dir.path().join("out.csv");

    let mut bad = t.records.clone();
    bad[2].ptid = "11_S_3".into();
    let err = write_adni_table(&out, &bad, FieldStrength::T15).unwrap_err().to_string();
    assert!(err.contains("record 3") && err.contains("PTID"), "{err}");

    let mut dup = t.records.clone();
    dup[3].image_id = dup[0].image_id;
    let err = write_adni_table(&out, &dup, FieldStrength::T15).unwrap_err().to_string();
    assert!(err.contains("records 1 and 4"), "{err}");

    let err = write_adni_table(&out, &t.records, FieldStrength::T3).unwrap_err().to_string();
    assert!(err.contains("3 T table has no label columns"), "{err}");

    let mut date = t.records.clone();
    date[0].scan_date = ScanDate { month: 2, day: 30, year: 6 };
    assert!(write_adni_table(&out, &date, FieldStrength::T15).is_err());
    assert!(!out.exists(), "nothing written on error");
}

#[test]
fn missing_column_names_column_and_file() {
    let text = table_15t_text().replacen("Image.ID", "ImageID", 1);
    let msg = table_error(&text);
    assert!(msg.contains("missing column `Image.ID`"), "{msg}");
    // Only some label columns: a 1.5 T table with a column missing.
    let text = table_15t_text().replacen("label_CN_MCI", "label_X", 1);
    let msg = table_error(&text);
    assert!(msg.contains("missing column `label_CN_MCI`"), "{msg}");
    let msg = table_error("RID,PTID\n1,011_S_0003\n");
    assert!(msg.contains("missing column `VISCODE`"), "{msg}");
}

#[test]
fn bad_scan_date_names_row_column_and_value() {
    let msg = table_error(&with_field(1, "Scan.Date", "09/12/06"));
    assert!(msg.contains("row 3"), "{msg}");
    assert!(msg.contains("`Scan.Date`"), "{msg}");
    assert!(msg.contains("`09/12/06`"), "{msg}");
    assert!(msg.contains("M/D/YY"), "{msg}");
    let msg = table_error(&with_field(0, "EXAMDATE", "2005-02-30"));
    assert!(msg.contains("row 2") && msg.contains("`EXAMDATE`") && msg.contains("2005-02-30"), "{msg}");
}

#[test]
fn bad_label_is_reported() {
    let msg = table_error(&with_field(3, "label_CN_AD", "3"));
    assert!(msg.contains("row 5") && msg.contains("`label_CN_AD`") && msg.contains("`3`"), "{msg}");
    assert!(msg.contains("N/A"), "{msg}");
    let msg = table_error(&with_field(3, "label_CN_AD", "NA"));
    assert!(msg.contains("`NA`"), "{msg}");
}

#[test]
fn bad_ptid_and_other_values_are_reported() {
    let msg = table_error(&with_field(4, "PTID", "011-S-0008"));
    assert!(msg.contains("row 6") && msg.contains("`PTID`") && msg.contains("011-S-0008"), "{msg}");
    assert!(msg.contains("NNN_S_NNNN"), "{msg}");
    let msg = table_error(&with_field(0, "DX", "AD"));
    assert!(msg.contains("`DX`") && msg.contains("CN, MCI or Dementia"), "{msg}");
    let msg = table_error(&with_field(2, "Image.ID", "35577.5"));
    assert!(msg.contains("row 4") && msg.contains("`Image.ID`") && msg.contains("integer"), "{msg}");
    let msg = table_error(&with_field(2, "Month_bl", "NaN"));
    assert!(msg.contains("`Month_bl`") && msg.contains("finite"), "{msg}");
    let msg = table_error(&with_field(2, "Visit", ""));
    assert!(msg.contains("`Visit`") && msg.contains("non-empty"), "{msg}");
}

#[test]
fn duplicate_image_id_names_both_rows() {
    let msg = table_error(&with_field(3, "Image.ID", "35576"));
    assert!(msg.contains("rows 3 and 5"), "{msg}");
    assert!(msg.contains("35576"), "{msg}");
}

#[test]
fn empty_and_malformed_files_are_errors() {
    let msg = table_error("");
    assert!(msg.contains("empty file"), "{msg}");
    let msg = table_error("\n  \n");
    assert!(msg.contains("empty file"), "{msg}");
    // Header only: a valid, empty table.
    let dir = tempfile::tempdir().unwrap();
    let t = read_adni_table(&write(dir.path(), "h.csv", &format!("{HEADER_15T}\n"))).unwrap();
    assert!(t.is_empty());
    // A ragged row and binary garbage give errors, not panics.
    let ragged = format!("{}\n1,2,3\n", table_15t_text().trim_end());
    assert!(read_adni_table(&write(dir.path(), "r.csv", &ragged)).is_err());
    fs::write(dir.path().join("g.csv"), [0xff, 0xfe, 0x00, 0x01, b'\n', 0x80]).unwrap();
    assert!(read_adni_table(&dir.path().join("g.csv")).is_err());
    match read_adni_table(&dir.path().join("absent.csv")) {
        Err(DataError::Io { path, .. }) => assert!(path.ends_with("absent.csv")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- cohort

fn record(rid: i64, ptid: &str, visit: &str, dx: Diagnosis, image_id: i64) -> ScanRecord {
    ScanRecord {
        rid,
        ptid: ptid.into(),
        viscode: match visit {
            "Screening" => "bl".into(),
            "Month 12" => "m12".into(),
            _ => "m24".into(),
        },
        dx,
        examdate: "2006-03-04".into(),
        image_id,
        scan_date: ScanDate { month: 3, day: 4, year: 6 },
        sequence: "MPR; GradWarp; B1 Correction; N3; Scaled".into(),
        visit: visit.into(),
        month_bl: 0.0,
        screen_diagnosis: "NL".into(),
        study_id: image_id + 1,
        series_id: image_id + 2,
        label_three_fold: None,
        label_cn_ad: None,
        label_cn_mci: None,
        label_mci_ad: None,
    }
}

/// 12 rows: 4 AD patients, 3 CN, 1 MCI, plus the known-corrupt scan; some files missing.
/// Returns the tempdir, the table and the Image.IDs whose files exist.
fn cohort_fixture() -> (tempfile::TempDir, AdniTable) {
    use Diagnosis::*;
    let rows = vec![
        // (record, file present)
        (record(77, "067_S_0077", "Screening", CN, 1), true), // known corrupt (file present)
        (record(77, "067_S_0077", "Month 12", CN, 2), true),
        (record(1, "002_S_0001", "Screening", Dementia, 3), true),
        (record(1, "002_S_0001", "Month 12", Dementia, 4), false), // missing
        (record(2, "002_S_0002", "Screening", Dementia, 5), true),
        (record(3, "003_S_0003", "Screening", CN, 6), true),
        (record(3, "003_S_0003", "Month 12", Dementia, 7), true), // converter: patient counts as AD
        (record(4, "004_S_0004", "Screening", MCI, 8), true),     // MCI removed
        (record(4, "004_S_0004", "Month 24", MCI, 9), false),     // missing (removed before MCI)
        (record(5, "005_S_0005", "Screening", CN, 10), true),
        (record(6, "006_S_0006", "Month 24", Dementia, 11), false), // missing: patient disappears
        (record(7, "007_S_0007", "Screening", CN, 12), true),
    ];
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    for (r, present) in &rows {
        if *present {
            let p = image_path(&root, r);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, b"not really a nifti").unwrap();
        }
    }
    // Unrelated image files count as found but match no row; other files are not images.
    fs::create_dir_all(root.join("999_S_0999/Screening")).unwrap();
    fs::write(root.join("999_S_0999/Screening/other.nii"), b"x").unwrap();
    fs::write(root.join("README.txt"), b"x").unwrap();
    let records: Vec<ScanRecord> = rows.into_iter().map(|(r, _)| r).collect();
    let table_path = dir.path().join("table.csv");
    write_adni_table(&table_path, &records, FieldStrength::T15).unwrap();
    let table = read_adni_table(&table_path).unwrap();
    (dir, table)
}

#[test]
fn filters_count_each_step_in_order() {
    let (dir, table) = cohort_fixture();
    let root = dir.path().join("images");
    let cohort = build_cohort(&table, &root, &CohortFilter::default()).unwrap();
    let r = &cohort.report;
    assert_eq!(r.table_rows, 12);
    assert_eq!(r.image_files_found, Some(10), "9 table images + 1 unrelated .nii");
    let steps: Vec<(&str, usize, usize)> = r.steps.iter().map(|s| (s.name.as_str(), s.removed, s.remaining)).collect();
    assert_eq!(
        steps,
        vec![("known corrupt", 1, 11), ("missing image file", 3, 8), ("diagnosis not in [CN, Dementia]", 1, 7)]
    );
    assert_eq!(r.total_scans, 7);
    assert_eq!(r.total_patients, 6);
    let classes: Vec<(&str, usize, usize)> =
        r.classes.iter().map(|c| (c.class.as_str(), c.scans, c.patients)).collect();
    // AD scans: ids 3, 5, 7; AD patients: 002_S_0001, 002_S_0002, 003_S_0003 (converter).
    // CN scans: ids 2, 6, 10, 12; CN patients: 067_S_0077, 005_S_0005, 007_S_0007.
    assert_eq!(classes, vec![("AD", 3, 3), ("CN", 4, 3)]);

    let ids: Vec<i64> = cohort.scans.iter().map(|s| s.record.image_id).collect();
    assert_eq!(ids, vec![2, 3, 5, 6, 7, 10, 12], "table order kept");
    for s in &cohort.scans {
        assert_eq!(s.label, u8::from(s.record.dx == Diagnosis::Dementia));
        assert_eq!(s.path, image_path(&root, &s.record));
        assert!(s.path.is_file());
    }
    assert_eq!(cohort.patient_count(), 6);

    let df = cohort.scans_dataframe().unwrap();
    assert_eq!(df.height(), 7);
    for c in ["PTID", "Image.ID", "DX", "label", "path", "Visit", "Scan.Date"] {
        assert!(df.column(c).is_ok(), "missing {c}");
    }
    let labels = df.column("label").unwrap().i32().unwrap();
    assert_eq!((0..df.height()).filter_map(|i| labels.get(i)).sum::<i32>(), 3);

    let report_df = r.to_dataframe().unwrap();
    assert_eq!(
        report_df.get_column_names().iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        ["stage", "measure", "count"]
    );
    // rows, files found, 3 steps × 2, 2 classes × 2, total × 2.
    assert_eq!(report_df.height(), 1 + 1 + 6 + 4 + 2);

    let text = r.to_string();
    assert!(text.contains("image files found under"), "{text}");
    assert!(text.contains("removed 3 rows: missing image file (8 remain)"), "{text}");
    assert!(text.contains("final: 7 scans of 6 patients"), "{text}");
    assert!(text.contains("AD: 3 scans of 3 patients"), "{text}");
    assert!(text.contains("CN: 4 scans of 3 patients"), "{text}");

    let json: serde_json::Value = serde_json::to_value(r).unwrap();
    assert_eq!(json["total_scans"], 7);
    assert_eq!(json["steps"][1]["removed"], 3);
}

#[test]
fn filters_without_file_check_and_with_custom_settings() {
    let (dir, table) = cohort_fixture();
    let root = dir.path().join("images");
    let filter = CohortFilter {
        known_corrupt: vec!["067_S_0077/Month 12".into(), "067_S_0077/Screening".into()],
        check_files: false,
        diagnoses: vec![Diagnosis::MCI, Diagnosis::Dementia],
    };
    let cohort = build_cohort(&table, &root, &filter).unwrap();
    let steps: Vec<(usize, usize)> = cohort.report.steps.iter().map(|s| (s.removed, s.remaining)).collect();
    assert_eq!(steps, vec![(2, 10), (3, 7)], "no file step; CN rows 6, 10, 12 removed");
    assert_eq!(cohort.report.image_files_found, None);
    assert!(cohort.report.to_string().contains("image files not checked"));
    let classes: Vec<(&str, usize, usize)> =
        cohort.report.classes.iter().map(|c| (c.class.as_str(), c.scans, c.patients)).collect();
    assert_eq!(classes, vec![("AD", 5, 4), ("CN", 0, 0), ("MCI", 2, 1)]);
    // Expected paths are reported even when files are not checked.
    assert_eq!(cohort.scans[0].path, image_path(&root, &cohort.scans[0].record));
}

#[test]
fn missing_images_root_and_bad_filter_are_errors() {
    let (dir, table) = cohort_fixture();
    let err = build_cohort(&table, &dir.path().join("nowhere"), &CohortFilter::default()).unwrap_err();
    assert!(matches!(&err, DataError::Io { path, .. } if path.ends_with("nowhere")), "{err}");
    let filter = CohortFilter { known_corrupt: vec!["067_S_0077 Screening".into()], ..CohortFilter::default() };
    let err = build_cohort(&table, &dir.path().join("images"), &filter).unwrap_err().to_string();
    assert!(err.contains("known_corrupt") && err.contains("`067_S_0077 Screening`"), "{err}");
}

#[test]
fn decompressed_images_are_found() {
    let (dir, table) = cohort_fixture();
    let root = dir.path().join("images");
    // Decompress (rename) the image of Image.ID 3 to .nii.
    let rec = table.records.iter().find(|r| r.image_id == 3).unwrap();
    let gz = image_path(&root, rec);
    let nii = gz.with_extension(""); // strips ".gz"
    fs::rename(&gz, &nii).unwrap();
    let cohort = build_cohort(&table, &root, &CohortFilter::default()).unwrap();
    let scan = cohort.scans.iter().find(|s| s.record.image_id == 3).unwrap();
    assert_eq!(scan.path, nii);
    assert_eq!(cohort.report.total_scans, 7);
}

// ---------------------------------------------------------------- splits

#[test]
fn split_files_round_trip_and_refuse_leakage() {
    let (dir, table) = cohort_fixture();
    let filter = CohortFilter { check_files: false, ..CohortFilter::default() };
    let cohort = build_cohort(&table, &dir.path().join("images"), &filter).unwrap();
    let folds = kfold_splits(&cohort.scans, 2, 11).unwrap();
    let p = dir.path().join("splits/fold1.csv");
    write_split_csv(&p, &folds[0]).unwrap();
    assert_eq!(fs::read_to_string(&p).unwrap().lines().next(), Some("PTID,Image.ID,set"));
    let back = read_split_csv(&p).unwrap();
    assert_eq!(back, folds[0]);

    let holdout = holdout_split(&cohort.scans, 1, 2, 5).unwrap();
    check_no_leakage(&holdout).unwrap();
    assert_eq!(holdout.patients(SplitSet::Test).len(), 3);

    // A hand-made leaky split is refused by the writer, which writes nothing.
    let leaky = Split {
        name: "leaky".into(),
        rows: vec![
            SplitRow { ptid: "011_S_0003".into(), image_id: 1, set: SplitSet::Train },
            SplitRow { ptid: "011_S_0003".into(), image_id: 2, set: SplitSet::Test },
        ],
    };
    let out = dir.path().join("leaky.csv");
    let err = write_split_csv(&out, &leaky).unwrap_err().to_string();
    assert!(err.contains("011_S_0003"), "{err}");
    assert!(!out.exists());

    // A hand-edited leaky CSV is refused by the reader.
    let text = "PTID,Image.ID,set\n011_S_0003,1,train\n011_S_0005,3,test\n011_S_0003,2,validation\n";
    let err = read_split_csv(&write(dir.path(), "edited.csv", text)).unwrap_err().to_string();
    assert!(err.contains("edited.csv") && err.contains("011_S_0003 (train, validation)"), "{err}");
}

#[test]
fn bad_split_files_name_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_split_csv(&write(dir.path(), "a.csv", "PTID,Image.ID,set\n011_S_0003,1,training\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.csv") && err.contains("row 2") && err.contains("`set`") && err.contains("training"),
        "{err}"
    );
    let err = read_split_csv(&write(dir.path(), "b.csv", "PTID,set\n011_S_0003,train\n")).unwrap_err().to_string();
    assert!(err.contains("b.csv") && err.contains("missing column `Image.ID`"), "{err}");
    let err =
        read_split_csv(&write(dir.path(), "c.csv", "PTID,Image.ID,set\n011_S_0003,x,train\n")).unwrap_err().to_string();
    assert!(err.contains("row 2") && err.contains("`Image.ID`"), "{err}");
    let err = read_split_csv(&write(dir.path(), "d.csv", "")).unwrap_err().to_string();
    assert!(err.contains("d.csv") && err.contains("empty file"), "{err}");
}
