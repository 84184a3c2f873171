//! Preprocessing of registered scans for the model, as in the study: NaN → 0, brain mask,
//! optional downsampling, and the voxel-wise z-score fitted on a fold's training scans.
//!
//! The per-scan part (NaN → 0, mask, downsample) does not depend on the fold and is cached on
//! disk by [`PreprocessCache`]; the z-score ([`Normalizer`]) does and is applied afterwards.
//!
//! *Architecture invariant:* nothing here knows about a model or a tensor library; volumes are
//! `ndarray` arrays.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use ndarray::{Array3, Zip};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};
use crate::fsutil::write_bytes_atomically;
use crate::volume::{Affine, Grid, OutputType, Volume, read_volume, read_volume_on_grid, write_volume};

/// The constant added to the standard deviation before dividing, as in the study.
pub const NORM_EPSILON: f64 = 1e-10;

/// The study's cap on the number of training scans the normaliser is fitted on.
pub const DEFAULT_FIT_SCANS: usize = 200;

/// File names written by [`Normalizer::save`].
pub const NORM_MEAN_FILE: &str = "norm_mean.nii.gz";
/// See [`NORM_MEAN_FILE`].
pub const NORM_STD_FILE: &str = "norm_std.nii.gz";
/// See [`NORM_MEAN_FILE`]; written only for a normaliser with a mask.
pub const NORM_MASK_FILE: &str = "norm_mask.nii.gz";
/// See [`NORM_MEAN_FILE`]; written last, so its presence marks a complete save.
pub const NORM_META_FILE: &str = "normalization.json";

fn shape3(a: &Array3<f32>) -> [usize; 3] {
    let s = a.shape();
    [s[0], s[1], s[2]]
}

/// Sets every voxel outside the brain mask (mask value ≤ 0.5) to 0. Errors when the shapes
/// differ.
pub fn apply_mask(data: &mut Array3<f32>, mask: &Array3<f32>) -> Result<()> {
    if data.shape() != mask.shape() {
        return Err(DataError::Invalid {
            key: "mask".into(),
            message: format!(
                "mask shape {:?} differs from volume shape {:?} (put the mask on the scan's grid)",
                mask.shape(),
                data.shape()
            ),
        });
    }
    Zip::from(data).and(mask).for_each(|v, &m| {
        if m.partial_cmp(&0.5) != Some(std::cmp::Ordering::Greater) {
            *v = 0.0;
        }
    });
    Ok(())
}

/// The input indices and integer tent weights of each output voxel along one axis: output
/// `o` sits on input `f·o` and averages inputs `f·o − (f−1) … f·o + (f−1)` with weights
/// `f − |d|`, the ones outside the axis dropped.
fn tent_taps(n_in: usize, f: usize) -> Vec<(usize, Vec<f64>)> {
    let n_out = n_in.div_ceil(f);
    (0..n_out)
        .map(|o| {
            let c = f * o;
            let lo = c.saturating_sub(f - 1);
            let hi = (c + f - 1).min(n_in - 1);
            let w = (lo..=hi).map(|x| (f - x.abs_diff(c)) as f64).collect();
            (lo, w)
        })
        .collect()
}

/// One separable pass along `axis` of a standard-layout `[a, b, c]` buffer.
fn tent_pass(src: &[f32], shape: [usize; 3], axis: usize, f: usize) -> (Vec<f32>, [usize; 3]) {
    let taps = tent_taps(shape[axis], f);
    let mut out_shape = shape;
    out_shape[axis] = taps.len();
    let [_, b, c] = shape;
    let mut out = vec![0f32; out_shape.iter().product()];
    match axis {
        0 => {
            let slab = b * c;
            out.par_chunks_mut(slab).zip(taps.par_iter()).for_each(|(dst, (lo, w))| {
                let mut acc = vec![0f64; slab];
                for (t, &wt) in w.iter().enumerate() {
                    let s = &src[(lo + t) * slab..(lo + t + 1) * slab];
                    acc.iter_mut().zip(s).for_each(|(x, &v)| *x += wt * v as f64);
                }
                let total: f64 = w.iter().sum();
                dst.iter_mut().zip(&acc).for_each(|(d, &x)| *d = (x / total) as f32);
            });
        }
        1 => {
            let m = taps.len();
            out.par_chunks_mut(m * c).enumerate().for_each(|(i, dst)| {
                let mut acc = vec![0f64; c];
                for (o, (lo, w)) in taps.iter().enumerate() {
                    acc.iter_mut().for_each(|x| *x = 0.0);
                    for (t, &wt) in w.iter().enumerate() {
                        let row = (i * b + lo + t) * c;
                        acc.iter_mut().zip(&src[row..row + c]).for_each(|(x, &v)| *x += wt * v as f64);
                    }
                    let total: f64 = w.iter().sum();
                    dst[o * c..(o + 1) * c].iter_mut().zip(&acc).for_each(|(d, &x)| *d = (x / total) as f32);
                }
            });
        }
        _ => {
            let m = taps.len();
            out.par_chunks_mut(b * m).enumerate().for_each(|(i, dst)| {
                for j in 0..b {
                    let row = &src[(i * b + j) * c..(i * b + j + 1) * c];
                    for (o, (lo, w)) in taps.iter().enumerate() {
                        let s: f64 = w.iter().enumerate().map(|(t, &wt)| wt * row[lo + t] as f64).sum();
                        let total: f64 = w.iter().sum();
                        dst[j * m + o] = (s / total) as f32;
                    }
                }
            });
        }
    }
    (out, out_shape)
}

/// Downsamples by an integer `factor` (0 is taken as 1): output voxel `i` sits on input voxel
/// `factor·i`, so the result lies on [`Grid::downsampled`] (193×229×193 → 97×115×97 at 2), and
/// holds the separable tent-filter average of inputs `factor·i − (factor−1) … factor·i +
/// (factor−1)` with weights `factor − |d|`, renormalised where the window leaves the volume
/// (a constant volume stays constant up to the borders).
pub fn downsample(vol: &Volume, factor: usize) -> Volume {
    let f = factor.max(1);
    let grid = vol.grid().downsampled(f);
    if f == 1 {
        return Volume { data: vol.data.as_standard_layout().into_owned(), affine: grid.affine };
    }
    let shape = shape3(&vol.data);
    if shape.contains(&0) {
        return Volume { data: Array3::zeros(grid.shape), affine: grid.affine };
    }
    let std = vol.data.as_standard_layout();
    let mut buf: Vec<f32> = std.iter().copied().collect();
    let mut cur = shape;
    for axis in 0..3 {
        let (next, s) = tent_pass(&buf, cur, axis, f);
        buf = next;
        cur = s;
    }
    let data = Array3::from_shape_vec(cur, buf).unwrap_or_else(|_| Array3::zeros(grid.shape));
    Volume { data, affine: grid.affine }
}

/// Downsamples a brain mask: binarised first (> 0.5), then [`downsample`], then kept where the
/// averaged value is ≥ 0.5. The result holds 0 and 1.
pub fn downsample_mask(mask: &Volume, factor: usize) -> Volume {
    let binary = Volume { data: mask.data.mapv(|v| if v > 0.5 { 1.0 } else { 0.0 }), affine: mask.affine };
    let mut out = downsample(&binary, factor);
    out.data.mapv_inplace(|v| if v >= 0.5 { 1.0 } else { 0.0 });
    out
}

/// A seeded, sorted sample of at most `max_n` distinct image ids to fit the normaliser on
/// (the study used up to [`DEFAULT_FIT_SCANS`] training scans). The result depends only on
/// the set of ids, `max_n` and `seed`, not on the order of `ids`.
pub fn select_fit_scans(ids: &[i64], max_n: usize, seed: u64) -> Vec<i64> {
    let mut all = ids.to_vec();
    all.sort_unstable();
    all.dedup();
    if all.len() <= max_n {
        return all;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut picked: Vec<i64> =
        rand::seq::index::sample(&mut rng, all.len(), max_n).into_iter().map(|i| all[i]).collect();
    picked.sort_unstable();
    picked
}

/// The voxel-wise z-score of the study: `(x − mean) / (std + ε)` with mean and population
/// standard deviation over the training scans of a fold, and 0 outside the brain mask.
/// Saved beside the model (the original never saved it).
#[derive(Debug, Clone, PartialEq)]
pub struct Normalizer {
    /// Voxel-wise mean of the fitted scans.
    pub mean: Array3<f32>,
    /// Voxel-wise population standard deviation (numpy's default, `ddof = 0`).
    pub std: Array3<f32>,
    /// Brain mask (1 inside); [`Normalizer::apply`] sets voxels outside it to 0. Without a
    /// mask, voxels that were 0 in every fitted scan still come out 0 for masked inputs.
    pub mask: Option<Array3<f32>>,
    /// Number of scans fitted on.
    pub n_scans: usize,
    /// Image ids of the scans fitted on, in the order they were fed.
    pub image_ids: Vec<i64>,
    /// The constant added to the standard deviation ([`NORM_EPSILON`]).
    pub epsilon: f64,
    /// Voxel-to-world transform of the grid the statistics lie on.
    pub affine: Affine,
}

/// Contents of `normalization.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NormalizationMeta {
    n_scans: usize,
    image_ids: Vec<i64>,
    epsilon: f64,
    grid: Grid,
    mask: bool,
}

impl Normalizer {
    /// Fits mean and population standard deviation voxel by voxel over `scans` (image id and
    /// volume, typically already NaN-free, masked and downsampled), with f64 accumulators
    /// (Welford). All volumes must share one grid; `mask`, if given, must have its shape.
    pub fn fit<I>(scans: I, mask: Option<Array3<f32>>) -> Result<Normalizer>
    where
        I: IntoIterator<Item = Result<(i64, Volume)>>,
    {
        let mut grid: Option<Grid> = None;
        let mut mean: Vec<f64> = Vec::new();
        let mut m2: Vec<f64> = Vec::new();
        let mut ids = Vec::new();
        for item in scans {
            let (id, vol) = item?;
            let g = vol.grid();
            match &grid {
                None => {
                    mean = vec![0.0; g.len()];
                    m2 = vec![0.0; g.len()];
                    grid = Some(g);
                }
                Some(first) => {
                    if g.shape != first.shape || g.affine.max_abs_diff(&first.affine) > 1e-3 {
                        return Err(DataError::Invalid {
                            key: format!("image {id}"),
                            message: format!(
                                "grid {:?} with affine {:?} differs from the first scan's grid {:?} with affine {:?}; all scans of a fit must share one grid",
                                g.shape, g.affine.0, first.shape, first.affine.0
                            ),
                        });
                    }
                }
            }
            ids.push(id);
            let n = ids.len() as f64;
            let data = vol.data.as_standard_layout();
            let values = data.as_slice().ok_or_else(|| DataError::Invalid {
                key: format!("image {id}"),
                message: "volume data is not contiguous".into(),
            })?;
            const CHUNK: usize = 1 << 14;
            mean.par_chunks_mut(CHUNK).zip(m2.par_chunks_mut(CHUNK)).zip(values.par_chunks(CHUNK)).for_each(
                |((mu, s2), x)| {
                    for ((mu, s2), &x) in mu.iter_mut().zip(s2.iter_mut()).zip(x) {
                        let x = x as f64;
                        let d = x - *mu;
                        *mu += d / n;
                        *s2 += d * (x - *mu);
                    }
                },
            );
        }
        let Some(grid) = grid else {
            return Err(DataError::Invalid {
                key: "scans".into(),
                message: "no scans to fit the normaliser on, expected at least one".into(),
            });
        };
        if let Some(m) = &mask
            && shape3(m) != grid.shape
        {
            return Err(DataError::Invalid {
                key: "mask".into(),
                message: format!("mask shape {:?} differs from the scans' shape {:?}", m.shape(), grid.shape),
            });
        }
        let n = ids.len() as f64;
        let mean_arr = Array3::from_shape_vec(grid.shape, mean.iter().map(|&v| v as f32).collect())
            .map_err(|e| DataError::Invalid { key: "scans".into(), message: e.to_string() })?;
        let std_arr = Array3::from_shape_vec(grid.shape, m2.iter().map(|&v| (v / n).max(0.0).sqrt() as f32).collect())
            .map_err(|e| DataError::Invalid { key: "scans".into(), message: e.to_string() })?;
        Ok(Normalizer {
            mean: mean_arr,
            std: std_arr,
            mask: mask.map(|m| m.mapv(|v| if v > 0.5 { 1.0 } else { 0.0 })),
            n_scans: ids.len(),
            image_ids: ids,
            epsilon: NORM_EPSILON,
            affine: grid.affine,
        })
    }

    /// The grid the statistics lie on.
    pub fn grid(&self) -> Grid {
        Grid { shape: shape3(&self.mean), affine: self.affine }
    }

    /// Z-scores `data` in place: `(x − mean) / (std + ε)` (computed in f64), then 0 outside
    /// the mask. Errors when the shape differs from the fitted grid.
    pub fn apply(&self, data: &mut Array3<f32>) -> Result<()> {
        if data.shape() != self.mean.shape() {
            return Err(DataError::Invalid {
                key: "volume".into(),
                message: format!(
                    "volume shape {:?} differs from the normaliser's grid {:?} (same preprocessing and downsampling expected)",
                    data.shape(),
                    self.mean.shape()
                ),
            });
        }
        let eps = self.epsilon;
        let z = |x: f32, mu: f32, sd: f32| ((x as f64 - mu as f64) / (sd as f64 + eps)) as f32;
        match (data.as_slice_mut(), self.mean.as_slice(), self.std.as_slice()) {
            (Some(x), Some(mu), Some(sd)) => {
                x.par_chunks_mut(1 << 14).zip(mu.par_chunks(1 << 14)).zip(sd.par_chunks(1 << 14)).for_each(
                    |((x, mu), sd)| {
                        for ((x, &mu), &sd) in x.iter_mut().zip(mu).zip(sd) {
                            *x = z(*x, mu, sd);
                        }
                    },
                );
            }
            _ => Zip::from(&mut *data).and(&self.mean).and(&self.std).for_each(|x, &mu, &sd| *x = z(*x, mu, sd)),
        }
        if let Some(mask) = &self.mask {
            apply_mask(data, mask)?;
        }
        Ok(())
    }

    /// Writes `norm_mean.nii.gz`, `norm_std.nii.gz` (float32), `norm_mask.nii.gz` (uint8,
    /// with a mask) and, last, `normalization.json` (n_scans, image_ids, epsilon, grid) into
    /// `dir`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        write_volume(
            &dir.join(NORM_MEAN_FILE),
            &Volume { data: self.mean.clone(), affine: self.affine },
            OutputType::Float32,
        )?;
        write_volume(
            &dir.join(NORM_STD_FILE),
            &Volume { data: self.std.clone(), affine: self.affine },
            OutputType::Float32,
        )?;
        if let Some(mask) = &self.mask {
            write_volume(
                &dir.join(NORM_MASK_FILE),
                &Volume { data: mask.clone(), affine: self.affine },
                OutputType::Uint8,
            )?;
        }
        let meta = NormalizationMeta {
            n_scans: self.n_scans,
            image_ids: self.image_ids.clone(),
            epsilon: self.epsilon,
            grid: self.grid(),
            mask: self.mask.is_some(),
        };
        let path = dir.join(NORM_META_FILE);
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| DataError::Invalid { key: NORM_META_FILE.into(), message: e.to_string() })?;
        write_bytes_atomically(&path, &json)
    }

    /// Reads what [`Normalizer::save`] wrote; errors name the file at fault.
    pub fn load(dir: &Path) -> Result<Normalizer> {
        let meta_path = dir.join(NORM_META_FILE);
        let bytes = std::fs::read(&meta_path).map_err(|e| DataError::io(&meta_path, e))?;
        let meta: NormalizationMeta = serde_json::from_slice(&bytes).map_err(|e| DataError::Grid {
            path: meta_path.clone(),
            message: format!("not a normalisation record: {e} (expected n_scans, image_ids, epsilon, grid, mask)"),
        })?;
        if meta.n_scans != meta.image_ids.len() {
            return Err(DataError::Grid {
                path: meta_path,
                message: format!("n_scans is {} but {} image ids are listed", meta.n_scans, meta.image_ids.len()),
            });
        }
        if !(meta.epsilon.is_finite() && meta.epsilon >= 0.0) {
            return Err(DataError::Grid {
                path: meta_path,
                message: format!("epsilon is {}, expected a finite value ≥ 0", meta.epsilon),
            });
        }
        let read_on_grid = |name: &str| -> Result<Array3<f32>> {
            let path = dir.join(name);
            let (v, _) = read_volume_on_grid(&path, &meta.grid)?;
            Ok(v.data)
        };
        let mean = read_on_grid(NORM_MEAN_FILE)?;
        let std = read_on_grid(NORM_STD_FILE)?;
        let mask = if meta.mask { Some(read_on_grid(NORM_MASK_FILE)?) } else { None };
        Ok(Normalizer {
            mean,
            std,
            mask,
            n_scans: meta.n_scans,
            image_ids: meta.image_ids,
            epsilon: meta.epsilon,
            affine: meta.grid.affine,
        })
    }
}

/// The fold-independent preprocessing of one scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessSpec {
    /// Brain mask on the scans' grid (voxels with mask ≤ 0.5 are set to 0); default none.
    pub mask: Option<PathBuf>,
    /// Integer downsampling factor (see [`downsample`]); default 1 (the full 1 mm grid).
    pub downsample: usize,
}

impl Default for PreprocessSpec {
    fn default() -> Self {
        PreprocessSpec { mask: None, downsample: 1 }
    }
}

impl PreprocessSpec {
    /// Checks the values: `downsample` must be at least 1.
    pub fn validate(&self) -> Result<()> {
        if self.downsample == 0 {
            return Err(DataError::Invalid {
                key: "downsample".into(),
                message: "found 0, expected an integer factor ≥ 1 (1 keeps the full grid)".into(),
            });
        }
        Ok(())
    }
}

/// Whether [`PreprocessCache::load_or_compute`] found the result on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheHit {
    /// Read from the cache.
    Hit,
    /// Computed from the source scan and stored.
    Miss,
}

/// An on-disk cache of preprocessed scans (NaN → 0, masked, downsampled; not normalised,
/// since the normalisation depends on the fold), stored uncompressed as float32 so later
/// epochs and folds skip the gzip decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreprocessCache {
    /// Folder holding `<sha256>.nii` entries.
    pub dir: PathBuf,
}

/// What identifies a cached entry; hashed into its file name.
#[derive(Serialize)]
struct CacheKey<'a> {
    version: &'static str,
    scan: FileStamp,
    mask: Option<FileStamp>,
    downsample: usize,
    grid: &'a Grid,
}

#[derive(Serialize)]
struct FileStamp {
    path: String,
    size: u64,
    mtime_ns: u128,
}

fn file_stamp(path: &Path) -> Result<FileStamp> {
    let canonical = path.canonicalize().map_err(|e| DataError::io(path, e))?;
    let meta = std::fs::metadata(&canonical).map_err(|e| DataError::io(path, e))?;
    let mtime_ns =
        meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
    Ok(FileStamp { path: canonical.to_string_lossy().into_owned(), size: meta.len(), mtime_ns })
}

impl PreprocessCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PreprocessCache { dir: dir.into() }
    }

    /// The cache file for `scan_path` under `spec`: `<dir>/<key>.nii`, the key being the
    /// sha256 of the scan's canonical path, size and modification time, the spec (with the
    /// mask file's own path, size and time) and the expected grid. Errors when a file is
    /// missing.
    pub fn entry_path(&self, scan_path: &Path, spec: &PreprocessSpec, expected_grid: &Grid) -> Result<PathBuf> {
        let key = CacheKey {
            version: "adni-data/preprocess/1",
            scan: file_stamp(scan_path)?,
            mask: spec.mask.as_deref().map(file_stamp).transpose()?,
            downsample: spec.downsample,
            grid: expected_grid,
        };
        let json = serde_json::to_vec(&key)
            .map_err(|e| DataError::Invalid { key: "cache key".into(), message: e.to_string() })?;
        let digest = Sha256::digest(&json);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(self.dir.join(format!("{hex}.nii")))
    }

    /// The preprocessed scan (NaN → 0, masked, downsampled; on `expected_grid.downsampled(
    /// spec.downsample)`), from the cache when present, else computed and stored atomically.
    /// The source (and mask) must lie on `expected_grid`. An unreadable cache entry is
    /// recomputed.
    pub fn load_or_compute(
        &self,
        scan_path: &Path,
        spec: &PreprocessSpec,
        expected_grid: &Grid,
    ) -> Result<(Volume, CacheHit)> {
        spec.validate()?;
        let entry = self.entry_path(scan_path, spec, expected_grid)?;
        let out_grid = expected_grid.downsampled(spec.downsample);
        if entry.is_file()
            && let Ok((v, _, _)) = read_volume(&entry)
            && v.grid().check_matches(&out_grid, &entry, 1e-3).is_ok()
        {
            return Ok((Volume { data: v.data, affine: out_grid.affine }, CacheHit::Hit));
        }
        let (mut vol, _) = read_volume_on_grid(scan_path, expected_grid)?;
        if let Some(mask_path) = &spec.mask {
            let (mask, _) = read_volume_on_grid(mask_path, expected_grid)?;
            apply_mask(&mut vol.data, &mask.data)?;
        }
        let mut out = downsample(&vol, spec.downsample);
        out.affine = out_grid.affine;
        std::fs::create_dir_all(&self.dir).map_err(|e| DataError::io(&self.dir, e))?;
        write_volume(&entry, &out, OutputType::Float32)?;
        Ok((out, CacheHit::Miss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tent_taps_have_triangle_weights() {
        let t = tent_taps(7, 2);
        assert_eq!(t.len(), 4);
        assert_eq!(t[0], (0, vec![2.0, 1.0]));
        assert_eq!(t[1], (1, vec![1.0, 2.0, 1.0]));
        assert_eq!(t[3], (5, vec![1.0, 2.0]));
        let t = tent_taps(10, 3);
        assert_eq!(t[1], (1, vec![1.0, 2.0, 3.0, 2.0, 1.0]));
    }

    #[test]
    fn spec_rejects_unknown_keys_and_fills_defaults() {
        let s: PreprocessSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(s, PreprocessSpec::default());
        assert_eq!(s.downsample, 1);
        assert!(serde_json::from_str::<PreprocessSpec>(r#"{"downsampel": 2}"#).is_err());
        assert!(PreprocessSpec { mask: None, downsample: 0 }.validate().is_err());
    }
}
