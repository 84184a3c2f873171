//! Reading the synthetic cohort's ground truth back: which atrophy map belongs to which scan
//! (`ground_truth/scans.csv`), and a scan's planted atrophy as a mask on the model's grid.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::Array3;

use crate::error::{DataError, Result};
use crate::preprocess::downsample;
use crate::table::{StringColumns, parse_i64, read_csv_as_strings};
use crate::volume::read_volume;

use super::output::{ATLAS_FILE, ATLAS_LABELS_FILE, GROUND_TRUTH_DIR, SCANS_FILE};

/// Whether `data_table` is the table of the synthetic cohort generated into `out_dir` (it lies
/// inside that folder). A user's own table (ADNI, or any other cohort) is not: nothing is
/// generated for it and it has no ground truth.
pub fn is_cohort_table(out_dir: &Path, data_table: &Path) -> bool {
    data_table.starts_with(out_dir)
}

/// The planted atrophy of a synthetic cohort: Image.ID → atrophy map.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    maps: BTreeMap<i64, PathBuf>,
}

impl GroundTruth {
    /// The ground truth of the cohort generated into `out_dir`, when the data table in use
    /// (`data_table`) is that cohort's (it lies inside `out_dir`) and the cohort has one;
    /// `Ok(None)` otherwise (ADNI, or a user's own table).
    pub fn of_cohort(out_dir: &Path, data_table: &Path) -> Result<Option<GroundTruth>> {
        let scans = out_dir.join(GROUND_TRUTH_DIR).join(SCANS_FILE);
        if !scans.exists() || !is_cohort_table(out_dir, data_table) {
            return Ok(None);
        }
        let df = read_csv_as_strings(&scans, "Image.ID,…,atrophy_path")?;
        let columns = StringColumns::new(&scans, &df, &["Image.ID", "atrophy_path"], "the synthetic ground truth")?;
        let mut maps = BTreeMap::new();
        for i in 0..df.height() {
            let id = columns.parse("Image.ID", i, parse_i64)?;
            // Empty for a scan that was not written (its image is missing on purpose).
            let path = columns.raw("atrophy_path", i);
            if !path.is_empty() {
                maps.insert(id, out_dir.join(path));
            }
        }
        Ok(Some(GroundTruth { maps }))
    }

    /// The atlas of the cohort generated into `out_dir`: the label volume and its label table.
    pub fn atlas_files(out_dir: &Path) -> (PathBuf, PathBuf) {
        let dir = out_dir.join(GROUND_TRUTH_DIR);
        (dir.join(ATLAS_FILE), dir.join(ATLAS_LABELS_FILE))
    }

    /// Scans with an atrophy map.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// The atrophy map of `image_id`, if the table lists the scan.
    pub fn map_path(&self, image_id: i64) -> Option<&Path> {
        self.maps.get(&image_id).map(PathBuf::as_path)
    }

    /// The planted atrophy of `image_id` on the model grid, as a mask: voxels at ≥ `fraction` of
    /// the map's maximum after downsampling by `downsample_factor` (as the scans are). `None`
    /// when the scan has no map or nothing was planted (CN).
    pub fn mask(&self, image_id: i64, downsample_factor: usize, fraction: f32) -> Result<Option<Array3<bool>>> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(DataError::Invalid {
                key: "ground_truth_fraction".into(),
                message: format!("{fraction}: expected 0 < fraction ≤ 1"),
            });
        }
        let Some(path) = self.maps.get(&image_id) else { return Ok(None) };
        let (vol, _, _) = read_volume(path)?;
        let vol = if downsample_factor > 1 { downsample(&vol, downsample_factor) } else { vol };
        let max = vol.data.iter().copied().fold(0.0f32, f32::max);
        if max <= 0.0 {
            return Ok(None);
        }
        Ok(Some(vol.data.mapv(|v| v >= fraction * max)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Affine, OutputType, Volume, write_volume};

    /// A cohort folder with two scans: 1 has an atrophy map (peak 2 in one 2×2×2 block), 2 was
    /// not written (empty `atrophy_path`).
    fn cohort() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let gt = dir.path().join(GROUND_TRUTH_DIR);
        std::fs::create_dir_all(gt.join("atrophy")).unwrap();
        std::fs::write(
            gt.join(SCANS_FILE),
            "Image.ID,PTID,atrophy_path\n1,002_S_0001,ground_truth/atrophy/1_atrophy.nii.gz\n2,002_S_0002,\n",
        )
        .unwrap();
        let mut data = Array3::<f32>::zeros((4, 4, 4));
        for ((i, j, k), v) in data.indexed_iter_mut() {
            if i < 2 && j < 2 && k < 2 {
                *v = 2.0;
            }
        }
        data[[3, 3, 3]] = 0.5;
        let vol = Volume { data, affine: Affine::identity() };
        write_volume(&gt.join("atrophy/1_atrophy.nii.gz"), &vol, OutputType::Float32).unwrap();
        dir
    }

    #[test]
    fn only_the_cohorts_own_table_has_a_ground_truth() {
        let dir = cohort();
        let inside = dir.path().join("ADNI_synth_1.5T.csv");
        let truth = GroundTruth::of_cohort(dir.path(), &inside).unwrap().unwrap();
        assert_eq!(truth.len(), 1);
        assert!(truth.map_path(1).unwrap().ends_with("ground_truth/atrophy/1_atrophy.nii.gz"));
        assert_eq!(truth.map_path(2), None);
        assert_eq!(GroundTruth::of_cohort(dir.path(), Path::new("/elsewhere/ADNI.csv")).unwrap(), None);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(GroundTruth::of_cohort(empty.path(), &empty.path().join("t.csv")).unwrap(), None);
    }

    #[test]
    fn the_mask_keeps_voxels_at_the_fraction_of_the_peak_after_downsampling() {
        let dir = cohort();
        let truth = GroundTruth::of_cohort(dir.path(), &dir.path().join("t.csv")).unwrap().unwrap();
        let full = truth.mask(1, 1, 0.2).unwrap().unwrap();
        assert_eq!(full.iter().filter(|&&v| v).count(), 9, "the 8-voxel block and the 0.5 voxel (≥ 0.4)");
        let strict = truth.mask(1, 1, 0.5).unwrap().unwrap();
        assert_eq!(strict.iter().filter(|&&v| v).count(), 8);
        let halved = truth.mask(1, 2, 0.5).unwrap().unwrap();
        assert_eq!(halved.dim(), (2, 2, 2));
        assert!(halved[[0, 0, 0]] && halved.iter().filter(|&&v| v).count() == 1);
        assert_eq!(truth.mask(2, 1, 0.5).unwrap(), None, "not written");
        assert_eq!(truth.mask(7, 1, 0.5).unwrap(), None, "not listed");
        let e = truth.mask(1, 1, 0.0).unwrap_err().to_string();
        assert!(e.contains("ground_truth_fraction") && e.contains("0 < fraction ≤ 1"), "{e}");
    }

    #[test]
    fn a_bad_image_id_names_the_file_row_and_column() {
        let dir = cohort();
        let file = dir.path().join(GROUND_TRUTH_DIR).join(SCANS_FILE);
        std::fs::write(&file, "Image.ID,atrophy_path\nabc,x.nii.gz\n").unwrap();
        let e = GroundTruth::of_cohort(dir.path(), &dir.path().join("t.csv")).unwrap_err().to_string();
        assert!(e.contains("scans.csv") && e.contains("row 2, column `Image.ID`") && e.contains("`abc`"), "{e}");
    }
}
