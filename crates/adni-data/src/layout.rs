//! Where a scan's registered image lives, exactly as in the original folder layout:
//! `<root>/<PTID>/<Visit without spaces>/<PTID>_<Scan.Date with / replaced by ->_<Visit without
//! spaces>_<Image.ID>_<DX>_Warped.nii.gz`.

use std::path::{Path, PathBuf};

use crate::table::ScanRecord;

/// The suffix of every registered image file.
pub const IMAGE_SUFFIX: &str = "_Warped.nii.gz";

/// `Visit` without spaces, as used for folder and file names (`Month 12` → `Month12`).
pub fn visit_dir(visit: &str) -> String {
    visit.replace(' ', "")
}

/// The image file name of `rec`, e.g. `011_S_0003_9-12-06_Month12_35576_Dementia_Warped.nii.gz`.
pub fn image_file_name(rec: &ScanRecord) -> String {
    format!(
        "{}_{}_{}_{}_{}{}",
        rec.ptid,
        rec.scan_date.to_string().replace('/', "-"),
        visit_dir(&rec.visit),
        rec.image_id,
        rec.dx.as_str(),
        IMAGE_SUFFIX
    )
}

/// The image path of `rec` relative to the images root, with `/` separators on every platform
/// (the form used to join the table with the files found on disk).
pub fn image_relpath_str(rec: &ScanRecord) -> String {
    format!("{}/{}/{}", rec.ptid, visit_dir(&rec.visit), image_file_name(rec))
}

/// The image path of `rec` relative to the images root: `<PTID>/<Visit>/<file name>`.
pub fn image_relpath(rec: &ScanRecord) -> PathBuf {
    PathBuf::from(&rec.ptid).join(visit_dir(&rec.visit)).join(image_file_name(rec))
}

/// The image path of `rec` under `root`.
pub fn image_path(root: &Path, rec: &ScanRecord) -> PathBuf {
    root.join(image_relpath(rec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Diagnosis, ScanDate};

    fn example() -> ScanRecord {
        ScanRecord {
            rid: 3,
            ptid: "011_S_0003".into(),
            viscode: "m12".into(),
            dx: Diagnosis::Dementia,
            examdate: "2006-09-12".into(),
            image_id: 35576,
            scan_date: ScanDate { month: 9, day: 12, year: 6 },
            sequence: "MPR; GradWarp; B1 Correction; N3; Scaled".into(),
            visit: "Month 12".into(),
            month_bl: 11.9672131147541,
            screen_diagnosis: "AD".into(),
            study_id: 1,
            series_id: 2,
            label_three_fold: Some(2),
            label_cn_ad: Some(1),
            label_cn_mci: None,
            label_mci_ad: Some(1),
        }
    }

    #[test]
    fn path_matches_the_paper_example() {
        let rec = example();
        let expected = "011_S_0003/Month12/011_S_0003_9-12-06_Month12_35576_Dementia_Warped.nii.gz";
        assert_eq!(image_relpath_str(&rec), expected);
        assert_eq!(image_relpath(&rec), PathBuf::from(expected));
        assert_eq!(image_path(Path::new("/data/adni"), &rec), Path::new("/data/adni").join(expected));
    }

    #[test]
    fn screening_visit_keeps_its_name() {
        let mut rec = example();
        rec.visit = "Screening".into();
        rec.dx = Diagnosis::CN;
        rec.scan_date = ScanDate { month: 1, day: 3, year: 10 };
        assert_eq!(image_relpath_str(&rec), "011_S_0003/Screening/011_S_0003_1-3-10_Screening_35576_CN_Warped.nii.gz");
    }
}
