//! Cohort scans → normalised input tensors, loaded lazily batch by batch.
//!
//! A scan goes through the fold-independent preprocessing of `adni_data::preprocess` (NaN → 0,
//! brain mask, downsampling; cached on disk by [`PreprocessCache`]) and then through the fold's
//! [`Normalizer`], fitted on that fold's training scans only. Nothing is kept in memory between
//! batches: a batch reads its scans from the cache (uncompressed NIfTI, so cheap to read again),
//! which keeps the memory of a 1 mm ADNI-size cohort at one batch of volumes.
//!
//! Tensor layout: a volume's array axes (i, j, k) become (D, H, W) of a `[N, 1, D, H, W]` input,
//! in C order, as the original fed its nibabel arrays to PyTorch.

use std::path::{Path, PathBuf};

use adni_data::cohort::CohortScan;
use adni_data::preprocess::{Normalizer, PreprocessCache, PreprocessSpec, downsample_mask, select_fit_scans};
use adni_data::volume::{read_header, read_volume};
use adni_data::{DataError, Grid};
use burn::prelude::{Backend, Int, Tensor, TensorData};
use ndarray::Array3;
use rayon::prelude::*;

/// One scan as training sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanItem {
    /// The scan's `Image.ID`.
    pub image_id: i64,
    /// Patient id.
    pub ptid: String,
    /// 1 = AD, 0 = CN.
    pub label: u8,
    /// The source image (registered, not yet preprocessed).
    pub path: PathBuf,
}

impl ScanItem {
    /// The item of a cohort scan.
    pub fn from_cohort(scan: &CohortScan) -> ScanItem {
        ScanItem {
            image_id: scan.record.image_id,
            ptid: scan.record.ptid.clone(),
            label: scan.label,
            path: scan.path.clone(),
        }
    }
}

/// Where preprocessed volumes come from: the on-disk cache, the fold-independent preprocessing,
/// the grid every source image must lie on, and the brain mask on the model's grid (what the
/// normaliser zeroes outside), exactly as `cargo xtask preprocess` sets them up.
#[derive(Debug, Clone)]
pub struct VolumeSource {
    /// The preprocessing cache.
    pub cache: PreprocessCache,
    /// NaN → 0, mask, downsampling.
    pub spec: PreprocessSpec,
    /// The grid of the source images (the mask's grid, or else the first image's).
    pub source_grid: Grid,
    /// The brain mask downsampled to the model grid (1 inside), if the spec has a mask.
    pub model_mask: Option<Array3<f32>>,
}

impl VolumeSource {
    /// Sets up the source: the grid is the mask's when `spec` has a mask, else the header grid of
    /// `first_scan`; the mask is binarised and downsampled like the scans.
    pub fn open(cache_dir: &Path, spec: PreprocessSpec, first_scan: &Path) -> Result<VolumeSource, DataError> {
        spec.validate()?;
        let (source_grid, model_mask) = match &spec.mask {
            Some(m) => {
                let (mask, _, _) = read_volume(m)?;
                let small = downsample_mask(&mask, spec.downsample);
                (mask.grid(), Some(small.data))
            }
            None => {
                let info = read_header(first_scan)?;
                if info.dims.len() < 3 {
                    return Err(DataError::Grid {
                        path: first_scan.to_path_buf(),
                        message: format!("expected a 3-D image, found dimensions {:?}", info.dims),
                    });
                }
                (Grid { shape: [info.dims[0], info.dims[1], info.dims[2]], affine: info.affine }, None)
            }
        };
        Ok(VolumeSource { cache: PreprocessCache::new(cache_dir), spec, source_grid, model_mask })
    }

    /// The grid the model sees (the source grid downsampled by the spec's factor).
    pub fn model_grid(&self) -> Grid {
        self.source_grid.downsampled(self.spec.downsample)
    }

    /// The preprocessed (not normalised) volume of `scan`, from the cache or computed into it.
    pub fn load(&self, scan: &ScanItem) -> Result<Array3<f32>, DataError> {
        let (vol, _) = self.cache.load_or_compute(&scan.path, &self.spec, &self.source_grid)?;
        Ok(vol.data)
    }

    /// Fits the voxel-wise z-score on a seeded sample of at most `max_scans` of `train`
    /// ([`select_fit_scans`]), reading one volume at a time.
    pub fn fit_normalizer(&self, train: &[ScanItem], max_scans: usize, seed: u64) -> Result<Normalizer, DataError> {
        let ids: Vec<i64> = train.iter().map(|s| s.image_id).collect();
        let chosen = select_fit_scans(&ids, max_scans, seed);
        let scans = chosen.into_iter().map(|id| {
            let scan = train.iter().find(|s| s.image_id == id).ok_or_else(|| {
                DataError::Split(format!("Image.ID {id} was chosen for the normalisation but is not a training scan"))
            })?;
            let (vol, _) = self.cache.load_or_compute(&scan.path, &self.spec, &self.source_grid)?;
            Ok((id, vol))
        });
        Normalizer::fit(scans, self.model_mask.clone())
    }
}

/// A set of scans (a fold's training, validation or test scans) with the fold's normaliser:
/// batches are read and normalised on demand.
#[derive(Debug, Clone, Copy)]
pub struct NormalizedScans<'a> {
    /// Where volumes come from.
    pub source: &'a VolumeSource,
    /// The fold's z-score.
    pub normalizer: &'a Normalizer,
    /// The scans, in a fixed order that batches index into.
    pub scans: &'a [ScanItem],
}

/// One batch as plain data: `values` in `[N, 1, D, H, W]` C order, and the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchData {
    /// Voxel values.
    pub values: Vec<f32>,
    /// `[N, 1, D, H, W]`.
    pub shape: [usize; 5],
    /// 1 = AD, 0 = CN, one per scan.
    pub labels: Vec<u8>,
}

impl<'a> NormalizedScans<'a> {
    /// Number of scans.
    pub fn len(&self) -> usize {
        self.scans.len()
    }

    /// Whether there are no scans.
    pub fn is_empty(&self) -> bool {
        self.scans.is_empty()
    }

    /// The normalised volume of scan `index`.
    pub fn volume(&self, index: usize) -> Result<Array3<f32>, DataError> {
        let scan = self.scans.get(index).ok_or_else(|| DataError::Invalid {
            key: "index".into(),
            message: format!("scan index {index} is out of range, the set has {} scans", self.scans.len()),
        })?;
        let mut data = self.source.load(scan)?;
        self.normalizer.apply(&mut data).map_err(|e| match e {
            DataError::Invalid { key, message } => DataError::Invalid {
                key,
                message: format!("image {} ({}): {message}", scan.image_id, scan.path.display()),
            },
            other => other,
        })?;
        Ok(data)
    }

    /// Reads and normalises the scans at `indices` (in parallel) into one batch.
    pub fn batch(&self, indices: &[usize]) -> Result<BatchData, DataError> {
        let vols: Vec<Array3<f32>> =
            indices.par_iter().map(|&i| self.volume(i)).collect::<Result<Vec<_>, DataError>>()?;
        let [d, h, w] = self.normalizer.grid().shape;
        let mut values = Vec::with_capacity(indices.len() * d * h * w);
        for v in &vols {
            values.extend(v.as_standard_layout().iter().copied());
        }
        let labels = indices.iter().map(|&i| self.scans[i].label).collect();
        Ok(BatchData { values, shape: [indices.len(), 1, d, h, w], labels })
    }
}

impl BatchData {
    /// The batch as an input tensor `[N, 1, D, H, W]` and a label tensor `[N]` on `device`.
    pub fn into_tensors<B: Backend>(self, device: &B::Device) -> (Tensor<B, 5>, Tensor<B, 1, Int>) {
        let n = self.labels.len();
        let x = Tensor::from_data(TensorData::new(self.values, self.shape), device);
        let labels: Vec<i64> = self.labels.iter().map(|&l| i64::from(l)).collect();
        let y = Tensor::from_data(TensorData::new(labels, [n]), device);
        (x, y)
    }
}

/// Training-time augmentation of a batch: random left–right mirroring and random whole-voxel
/// translations, drawn per scan from a seeded stream. Off by default (the paper used none).
///
/// Mirroring flips the first array axis (x, left–right on the RAS template grids of the study and
/// of the synthetic cohort; the ICBM152 2009c *symmetric* template makes a mirrored brain a
/// plausible brain). A translation moves the volume by up to `max_shift` voxels along each axis
/// and fills the uncovered border with 0 (the training mean after z-scoring, and the value
/// outside the brain mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Augmentation {
    /// Mirror each scan left–right with probability ½.
    pub flip_lr: bool,
    /// Largest translation in voxels per axis (0: none).
    pub max_shift: usize,
}

impl Augmentation {
    /// Whether this augmentation changes anything.
    pub fn is_identity(&self) -> bool {
        !self.flip_lr && self.max_shift == 0
    }

    /// Augments every scan of `batch` in place; `seed` fixes every draw (same seed, same batch).
    pub fn apply(&self, batch: &mut BatchData, seed: u64) {
        use rand::{Rng, SeedableRng};
        if self.is_identity() {
            return;
        }
        let [n, c, d, h, w] = batch.shape;
        let vol = c * d * h * w;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let s = self.max_shift as i64;
        for i in 0..n {
            let flip = self.flip_lr && rng.random_bool(0.5);
            let shift: [i64; 3] = if s > 0 { std::array::from_fn(|_| rng.random_range(-s..=s)) } else { [0; 3] };
            if !flip && shift == [0; 3] {
                continue;
            }
            let scan = &mut batch.values[i * vol..(i + 1) * vol];
            let src = scan.to_vec();
            for ch in 0..c {
                let base = ch * d * h * w;
                for z in 0..d {
                    // output voxel z takes input voxel (z - shift), mirrored first when flipping
                    let zs = z as i64 - shift[0];
                    let zs = if flip { d as i64 - 1 - zs } else { zs };
                    for y in 0..h {
                        let ys = y as i64 - shift[1];
                        let out = base + (z * h + y) * w;
                        let row_ok = (0..d as i64).contains(&zs) && (0..h as i64).contains(&ys);
                        for x in 0..w {
                            let xs = x as i64 - shift[2];
                            scan[out + x] = if row_ok && (0..w as i64).contains(&xs) {
                                src[base + ((zs as usize) * h + ys as usize) * w + xs as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod augmentation_tests {
    use super::*;

    fn ramp(n: usize, d: usize, h: usize, w: usize) -> BatchData {
        let values = (0..n * d * h * w).map(|v| v as f32 + 1.0).collect();
        BatchData { values, shape: [n, 1, d, h, w], labels: vec![0; n] }
    }

    #[test]
    fn identity_leaves_the_batch_alone() {
        let mut b = ramp(2, 3, 4, 5);
        let before = b.clone();
        Augmentation::default().apply(&mut b, 7);
        assert_eq!(b, before);
    }

    #[test]
    fn flip_mirrors_the_first_axis_and_is_its_own_inverse() {
        // over many seeds, about half the scans are mirrored; a mirrored scan equals the
        // original read backwards along the first axis
        let aug = Augmentation { flip_lr: true, max_shift: 0 };
        let (d, h, w) = (4, 3, 2);
        let mut flipped = 0;
        for seed in 0..200 {
            let mut b = ramp(1, d, h, w);
            let orig = b.values.clone();
            aug.apply(&mut b, seed);
            if b.values != orig {
                flipped += 1;
                for z in 0..d {
                    for r in 0..h * w {
                        assert_eq!(b.values[z * h * w + r], orig[(d - 1 - z) * h * w + r]);
                    }
                }
            }
        }
        assert!((70..=130).contains(&flipped), "{flipped} of 200 flipped");
    }

    #[test]
    fn shifts_move_values_and_fill_with_zero() {
        let aug = Augmentation { flip_lr: false, max_shift: 1 };
        let mut b = ramp(8, 5, 5, 5);
        let orig = b.clone();
        aug.apply(&mut b, 3);
        assert_ne!(b.values, orig.values);
        // same multiset minus what left the grid: every non-zero output value exists in the input
        for (i, v) in b.values.iter().enumerate() {
            if *v != 0.0 {
                let scan = i / 125;
                assert!(orig.values[scan * 125..(scan + 1) * 125].contains(v));
            }
        }
        // deterministic
        let mut again = orig.clone();
        aug.apply(&mut again, 3);
        assert_eq!(again, b);
    }
}
