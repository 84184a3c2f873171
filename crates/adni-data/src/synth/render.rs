//! Rendering one synthetic scan from the template: plant the disease (tissue loss, local
//! contraction, ventricle widening) in template space, warp with the patient's smooth random
//! deformation, then apply the acquisition's intensity scale, bias field and Rician noise.
//!
//! All warps are pull-backs, `out(x) = in(ψ(x))`, evaluated per output voxel with trilinear
//! interpolation; ψ is computed analytically per voxel instead of being stored as a field.

use std::borrow::Cow;

use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};

use crate::atlas::{Hemisphere, Region};
use crate::error::{DataError, Result};

use super::SynthConfig;
use super::anatomy::Anatomy;
use super::cohort::{PatientPlan, ScanPlan, VisitPlan, mix, stream};
use super::field::{BoxField, Sampler, label_bboxes};

/// Tissue fraction replaced by CSF at the core of a region of weight 1, for severity 1 and
/// `effect_size` 1.
pub const TISSUE_LOSS_AT_UNIT: f64 = 0.35;
/// Upper bound of the planted tissue loss in any voxel.
pub const MAX_TISSUE_LOSS: f64 = 0.9;
/// Inward shift (mm) of the boundary of a region of weight 1, for severity 1 and effect 1.
pub const CONTRACTION_MM_AT_UNIT: f64 = 1.0;
/// Outward shift (mm) of the ventricle walls per unit of ageing (everyone ages).
pub const AGEING_VENTRICLE_MM: f64 = 2.0;
/// Diffuse tissue fraction lost in the whole brain per unit of ageing.
pub const AGEING_DIFFUSE_LOSS: f64 = 0.05;
/// Blur (mm) of the ventricle indicators whose gradient moves the ventricle walls.
pub const VENTRICLE_SMOOTHING_MM: f64 = 3.0;
/// Brain volume (mm³) of the ICBM152 2009c brain mask: the adult brain that the lengths of the
/// config refer to. A smaller anatomy (the phantom) scales them by the cube root of its brain
/// volume over this one.
pub const REFERENCE_BRAIN_MM3: f64 = 1_886_539.0;
/// Number of Gaussian bumps in a patient's local displacement field.
const BUMPS: usize = 6;
/// Radius range (mm) of a displacement bump.
const BUMP_RADIUS_MM: (f64, f64) = (10.0, 25.0);
/// Output intensities are rounded to multiples of 1/QUANT: far below the noise, and it lets
/// gzip find repeated low-order bytes.
const QUANT: f32 = 64.0;

/// One label of a region the disease acts on, with its smoothed indicator.
#[derive(Debug, Clone)]
pub(crate) struct TargetField {
    /// The atlas region.
    pub region: Region,
    /// The configured weight of its pair name.
    pub weight: f64,
    /// Smoothed indicator (peak 1) in the region's bounding box.
    pub field: BoxField,
    /// Largest boundary shift (mm) this field can carry without folding the warp.
    pub max_shift_mm: f64,
    /// Per-mm scale: the potential coefficient that moves the boundary by 1 mm.
    pub coef_per_mm: f64,
}

/// The anatomy, prepared once per generation.
pub(crate) struct Prepared<'a> {
    pub dims: [usize; 3],
    t1: Cow<'a, [f32]>,
    mask: Cow<'a, [f32]>,
    /// Median T1 intensity in the ventricle regions: what lost tissue turns into.
    pub csf: f32,
    /// 95th percentile of T1 inside the brain: the reference for the noise level.
    pub white: f32,
    centre: [f64; 3],
    bbox: ([f64; 3], [f64; 3]),
    /// Voxels per "adult" millimetre: lengths of the config are given for an adult brain and
    /// shrink with the cube root of the anatomy's brain volume (see [`REFERENCE_BRAIN_MM3`]).
    vox_per_mm: f64,
    /// Atrophy-region labels, in the order of [`PatientPlan::asymmetry`].
    pub atrophy: Vec<TargetField>,
    /// Ventricle labels whose walls move outward.
    pub ventricles: Vec<TargetField>,
    /// Origin and extent of the union of the boxes of all region fields.
    support: ([usize; 3], [usize; 3]),
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Looks up configured region names (case-insensitively) among the atlas pair names; an unknown
/// name is an error naming the closest and listing every valid name.
pub(crate) fn resolve_regions(
    key: &str,
    names: &[String],
    regions: &[Region],
    atlas: &str,
) -> Result<Vec<Vec<Region>>> {
    let mut valid: Vec<&str> = regions.iter().map(|r| r.pair_name.as_str()).collect();
    valid.sort_unstable();
    valid.dedup();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let found: Vec<Region> =
            regions.iter().filter(|r| r.pair_name.eq_ignore_ascii_case(name.trim())).cloned().collect();
        if found.is_empty() {
            let closest = valid
                .iter()
                .min_by_key(|v| edit_distance(&v.to_lowercase(), &name.trim().to_lowercase()))
                .copied()
                .unwrap_or("");
            return Err(DataError::Invalid {
                key: key.into(),
                message: format!(
                    "unknown region `{name}` in atlas `{atlas}` (did you mean `{closest}`?); valid names: {}",
                    valid.join(", ")
                ),
            });
        }
        out.push(found);
    }
    Ok(out)
}

/// The nearest-rank `q`-quantile, 0 for no values (the cohort's intensity levels).
fn percentile(v: Vec<f32>, q: f64) -> f32 {
    crate::stats::percentile(v, q, crate::stats::Rank::Nearest).unwrap_or(0.0)
}

/// Voxels darker than this fraction of the white-matter intensity that connect to the border
/// of the grid are air.
const AIR_LEVEL: f32 = 0.12;

/// The template with the air around the head set to 0: air is every voxel below `level` that
/// is 6-connected to the border of the grid (dark tissue inside the head, such as the skull,
/// is enclosed and stays). A zero background keeps the noise, and the file size, to the head.
fn zero_air(t1: &[f32], dims: [usize; 3], level: f32) -> Vec<f32> {
    let mut out = t1.to_vec();
    let strides = [dims[1] * dims[2], dims[2], 1];
    let mut seen = vec![false; t1.len()];
    let mut stack = Vec::new();
    for i in 0..dims[0] {
        for j in 0..dims[1] {
            for k in 0..dims[2] {
                let border = i == 0 || j == 0 || k == 0 || i + 1 == dims[0] || j + 1 == dims[1] || k + 1 == dims[2];
                let v = i * strides[0] + j * strides[1] + k;
                if border && t1[v] < level && !seen[v] {
                    seen[v] = true;
                    stack.push([i, j, k]);
                }
            }
        }
    }
    while let Some(p) = stack.pop() {
        out[p[0] * strides[0] + p[1] * strides[1] + p[2]] = 0.0;
        for a in 0..3 {
            for up in [false, true] {
                let mut q = p;
                if up {
                    if q[a] + 1 >= dims[a] {
                        continue;
                    }
                    q[a] += 1;
                } else {
                    if q[a] == 0 {
                        continue;
                    }
                    q[a] -= 1;
                }
                let v = q[0] * strides[0] + q[1] * strides[1] + q[2];
                if !seen[v] && t1[v] < level {
                    seen[v] = true;
                    stack.push(q);
                }
            }
        }
    }
    out
}

/// Largest |∇S| and largest |∂²S/∂a²| (per voxel) of a box field, by finite differences.
fn gradient_stats(f: &BoxField) -> (f64, f64) {
    let d = f.dims;
    let s = [d[1] * d[2], d[2], 1];
    let mut gmax = 0f64;
    let mut hmax = 0f64;
    for i in 1..d[0].saturating_sub(1) {
        for j in 1..d[1].saturating_sub(1) {
            for k in 1..d[2].saturating_sub(1) {
                let c = i * s[0] + j * s[1] + k;
                let v = f.data[c] as f64;
                let mut g2 = 0.0;
                for st in s {
                    let (a, b) = (f.data[c - st] as f64, f.data[c + st] as f64);
                    g2 += ((b - a) / 2.0).powi(2);
                    hmax = hmax.max((a + b - 2.0 * v).abs());
                }
                gmax = gmax.max(g2.sqrt());
            }
        }
    }
    (gmax, hmax)
}

impl<'a> Prepared<'a> {
    /// Checks the anatomy, resolves the configured regions and smooths their indicators.
    pub fn new(cfg: &SynthConfig, anatomy: &'a Anatomy) -> Result<Prepared<'a>> {
        anatomy.check()?;
        let dims = anatomy.grid().shape;
        let t1: Cow<[f32]> = match anatomy.t1.data.as_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(anatomy.t1.data.as_standard_layout().iter().copied().collect()),
        };
        let mask: Cow<[f32]> = match anatomy.brain_mask.as_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(anatomy.brain_mask.as_standard_layout().iter().copied().collect()),
        };
        let labels: Cow<[i32]> = match anatomy.atlas.labels.as_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(anatomy.atlas.labels.as_standard_layout().iter().copied().collect()),
        };
        let atlas = &anatomy.atlas;
        let atrophy_groups = resolve_regions("atrophy_regions", &cfg.atrophy_regions, &atlas.regions, &atlas.name)?;
        let ventricle_groups =
            resolve_regions("ventricle_regions", &cfg.ventricle_regions, &atlas.regions, &atlas.name)?;
        let vs = anatomy.t1.affine.voxel_sizes();
        let voxel_mm3 = vs[0] * vs[1] * vs[2];
        let brain_voxels = mask.iter().filter(|&&m| m > 0.5).count() as f64;
        let size = (brain_voxels * voxel_mm3 / REFERENCE_BRAIN_MM3).cbrt().clamp(0.1, 3.0);
        let vox_per_mm = size / voxel_mm3.cbrt();
        let sigma_a = vs.map(|v| (cfg.atrophy_smoothing_mm * size / v).max(0.5));
        let sigma_v = vs.map(|v| (VENTRICLE_SMOOTHING_MM * size / v).max(0.5));

        let mut wanted: Vec<i32> = atrophy_groups.iter().chain(&ventricle_groups).flatten().map(|r| r.label).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let boxes = label_bboxes(&labels, dims, &wanted);
        let make = |group: &[Region], weight: f64, sigma: [f64; 3], key: &str| -> Result<Vec<TargetField>> {
            let mut out = Vec::new();
            for region in group {
                let w = wanted.iter().position(|&l| l == region.label).unwrap_or(0);
                let Some(field) = BoxField::smoothed_indicator(&labels, dims, boxes[w], region.label, sigma) else {
                    continue;
                };
                let (gmax, hmax) = gradient_stats(&field);
                if gmax <= 0.0 {
                    continue;
                }
                // A potential c·S moves points by c·∇S voxels: c = mm · vox_per_mm / gmax
                // gives a boundary shift of `mm`; c·hmax < 0.8 keeps the warp from folding.
                let coef_per_mm = vox_per_mm / gmax;
                let max_shift_mm = if hmax > 0.0 { 0.8 / (hmax * coef_per_mm) } else { f64::INFINITY };
                out.push(TargetField { region: region.clone(), weight, field, max_shift_mm, coef_per_mm });
            }
            if out.is_empty() && !group.is_empty() {
                return Err(DataError::Invalid {
                    key: key.into(),
                    message: format!(
                        "region `{}` has no voxels in atlas `{}` (use a larger phantom_shape or another region)",
                        group[0].pair_name, atlas.name
                    ),
                });
            }
            Ok(out)
        };
        let mut atrophy = Vec::new();
        for (g, group) in atrophy_groups.iter().enumerate() {
            let weight = cfg.region_weights.get(g).copied().unwrap_or(1.0);
            atrophy.extend(make(group, weight, sigma_a, "atrophy_regions")?);
        }
        let mut ventricles = Vec::new();
        for group in &ventricle_groups {
            ventricles.extend(make(group, 1.0, sigma_v, "ventricle_regions")?);
        }

        let vent_labels: Vec<i32> = ventricles.iter().map(|t| t.region.label).collect();
        let mut csf_vals = Vec::new();
        let mut brain_vals = Vec::new();
        let mut sum = [0f64; 3];
        let mut count = 0f64;
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        let mut idx = 0;
        for i in 0..dims[0] {
            for j in 0..dims[1] {
                for k in 0..dims[2] {
                    if mask[idx] > 0.5 {
                        brain_vals.push(t1[idx]);
                        for (a, v) in [i, j, k].into_iter().enumerate() {
                            sum[a] += v as f64;
                            lo[a] = lo[a].min(v as f64);
                            hi[a] = hi[a].max(v as f64);
                        }
                        count += 1.0;
                    }
                    if vent_labels.contains(&labels[idx]) {
                        csf_vals.push(t1[idx]);
                    }
                    idx += 1;
                }
            }
        }
        let white = percentile(brain_vals.clone(), 0.95);
        let t1 = Cow::Owned(zero_air(&t1, dims, AIR_LEVEL * white));
        let csf = if csf_vals.is_empty() { percentile(brain_vals, 0.02) } else { percentile(csf_vals, 0.5) };
        let centre = sum.map(|s| s / count.max(1.0));
        let mut s_lo = dims;
        let mut s_hi = [0usize; 3];
        for f in atrophy.iter().chain(&ventricles) {
            for a in 0..3 {
                s_lo[a] = s_lo[a].min(f.field.origin[a]);
                s_hi[a] = s_hi[a].max(f.field.origin[a] + f.field.dims[a]);
            }
        }
        let support = if s_hi.iter().all(|&h| h > 0) {
            (s_lo, [s_hi[0] - s_lo[0], s_hi[1] - s_lo[1], s_hi[2] - s_lo[2]])
        } else {
            ([0; 3], [0; 3])
        };
        Ok(Prepared { dims, t1, mask, csf, white, centre, bbox: (lo, hi), vox_per_mm, atrophy, ventricles, support })
    }

    /// Number of voxels per volume.
    fn len(&self) -> usize {
        self.dims.iter().product()
    }
}

/// What was planted in one scan (template space, before the subject warp).
#[derive(Debug, Clone)]
pub(crate) struct Planted {
    /// Peak tissue loss per atrophy field (same order as [`Prepared::atrophy`]).
    pub tissue_loss: Vec<f64>,
    /// Inward boundary shift (mm) per atrophy field.
    pub contraction_mm: Vec<f64>,
    /// Outward wall shift (mm) per ventricle field.
    pub widening_mm: Vec<f64>,
    /// Diffuse (ageing) tissue loss in the whole brain.
    pub diffuse_loss: f64,
}

/// The disease and ageing effects of a visit.
pub(crate) fn planted(cfg: &SynthConfig, prep: &Prepared, patient: &PatientPlan, visit: &VisitPlan) -> Planted {
    let sev = visit.severity * cfg.effect_size;
    let mut tissue_loss = Vec::with_capacity(prep.atrophy.len());
    let mut contraction_mm = Vec::with_capacity(prep.atrophy.len());
    for (t, target) in prep.atrophy.iter().enumerate() {
        let amount = sev * target.weight * patient.asymmetry.get(t).copied().unwrap_or(1.0);
        tissue_loss.push((TISSUE_LOSS_AT_UNIT * amount).clamp(0.0, MAX_TISSUE_LOSS));
        contraction_mm.push((CONTRACTION_MM_AT_UNIT * amount).clamp(0.0, target.max_shift_mm));
    }
    let widening_mm = prep
        .ventricles
        .iter()
        .map(|t| (cfg.disease_ventricle_mm * sev + AGEING_VENTRICLE_MM * visit.ageing).clamp(0.0, t.max_shift_mm))
        .collect();
    Planted {
        tissue_loss,
        contraction_mm,
        widening_mm,
        diffuse_loss: (AGEING_DIFFUSE_LOSS * visit.ageing).clamp(0.0, 0.5),
    }
}

/// A Gaussian displacement bump, separable into per-axis tables.
struct Bump {
    amp: [f32; 3],
    tables: [Vec<f32>; 3],
}

/// A patient's (plus the visit's) smooth deformation, in voxel units.
struct Warp {
    centre: [f32; 3],
    inv_scale: [f32; 3],
    shift: [f32; 3],
    bumps: Vec<Bump>,
}

fn patient_warp(cfg: &SynthConfig, prep: &Prepared, patient: &PatientPlan, acq: &mut ChaCha8Rng) -> Warp {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, stream::ANATOMY, patient.index as u64));
    let g = cfg.global_scale.abs();
    let mut inv_scale = [1f32; 3];
    for s in &mut inv_scale {
        let subject = if g > 0.0 { 1.0 + rng.random_range(-g..g) } else { 1.0 };
        let visit = 1.0 + acq.random_range(-0.005..0.005);
        *s = (1.0 / (subject * visit)) as f32;
    }
    let shift = [0; 3].map(|_: i32| (acq.random_range(-0.5..0.5) * prep.vox_per_mm) as f32);
    let amp_sd = cfg.deformation_mm * prep.vox_per_mm;
    // The config is validated (finite, ≥ 0), so this only guards against misuse.
    let normal = Normal::new(0.0, amp_sd).ok();
    let mut bumps = Vec::with_capacity(BUMPS);
    for _ in 0..BUMPS {
        let mu: [f64; 3] = std::array::from_fn(|a| {
            let (lo, hi) = (prep.bbox.0[a], prep.bbox.1[a]);
            if hi > lo { rng.random_range(lo..hi) } else { lo }
        });
        let rho = rng.random_range(BUMP_RADIUS_MM.0..BUMP_RADIUS_MM.1) * prep.vox_per_mm;
        let amp = [0; 3].map(|_: i32| normal.map_or(0.0, |d| d.sample(&mut rng)) as f32);
        let tables = std::array::from_fn(|a| {
            (0..prep.dims[a]).map(|n| (-((n as f64 - mu[a]).powi(2)) / (2.0 * rho * rho)).exp() as f32).collect()
        });
        bumps.push(Bump { amp, tables });
    }
    Warp { centre: prep.centre.map(|c| c as f32), inv_scale, shift, bumps }
}

/// A rendered scan: the image and the planted atrophy map, both on the template grid.
pub(crate) struct Rendered {
    pub image: Array3<f32>,
    pub atrophy: Array3<f32>,
}

/// Renders one scan.
pub(crate) fn render_scan(
    cfg: &SynthConfig,
    prep: &Prepared,
    patient: &PatientPlan,
    scan: &ScanPlan,
    planted: &Planted,
) -> Rendered {
    let dims = prep.dims;
    let n = prep.len();

    // 1. Disease in template space: tissue-loss map A and potential Φ (whose gradient moves
    //    boundaries: ventricles outward, atrophied regions inward). Both vanish outside the
    //    support box of the region fields, so they are stored for that box only.
    let (so, sd) = prep.support;
    let sn = sd[0] * sd[1] * sd[2];
    let mut loss = vec![0f32; sn];
    let mut potential = vec![0f32; sn];
    for (t, target) in prep.atrophy.iter().enumerate() {
        target.field.add_into(&mut loss, so, sd, planted.tissue_loss[t] as f32);
        target.field.add_into(&mut potential, so, sd, -(planted.contraction_mm[t] * target.coef_per_mm) as f32);
    }
    for (t, target) in prep.ventricles.iter().enumerate() {
        target.field.add_into(&mut potential, so, sd, (planted.widening_mm[t] * target.coef_per_mm) as f32);
    }
    let csf = prep.csf;
    let diffuse = planted.diffuse_loss as f32;
    let max_loss = MAX_TISSUE_LOSS as f32;
    let mut tissue: Vec<f32> = prep
        .t1
        .iter()
        .zip(prep.mask.iter())
        .map(|(&i0, &m)| if m > 0.0 { i0 + (csf - i0) * (diffuse * m).min(max_loss) } else { i0 })
        .collect();
    for i in 0..sd[0] {
        for j in 0..sd[1] {
            for k in 0..sd[2] {
                let b = (i * sd[1] + j) * sd[2] + k;
                let v = ((so[0] + i) * dims[1] + so[1] + j) * dims[2] + so[2] + k;
                let m = prep.mask[v];
                let a = (loss[b] * m).min(max_loss);
                loss[b] = a;
                if a > 0.0 {
                    let i0 = prep.t1[v];
                    tissue[v] = i0 + (csf - i0) * (a + diffuse * m).min(max_loss);
                }
            }
        }
    }

    // 2. Acquisition: visit jitter of the registration, intensity scale, bias field, noise.
    let mut acq = ChaCha8Rng::seed_from_u64(scan.acquisition_seed);
    let warp = patient_warp(cfg, prep, patient, &mut acq);
    let z: f64 = acq.sample(StandardNormal);
    let scale = ((1.0 + cfg.intensity_scale_sd * z).clamp(0.5, 1.5) * scan.rescale) as f32;
    let bias: [Vec<f32>; 3] = std::array::from_fn(|a| {
        let c1: f64 = cfg.bias_field * acq.sample::<f64, _>(StandardNormal);
        let c2: f64 = cfg.bias_field * acq.sample::<f64, _>(StandardNormal);
        let len = dims[a];
        (0..len)
            .map(|n| {
                let u = if len > 1 { 2.0 * n as f64 / (len - 1) as f64 - 1.0 } else { 0.0 };
                (c1 * u + c2 * (u * u - 1.0 / 3.0)).exp() as f32
            })
            .collect()
    });
    let sigma = (cfg.noise_sd * prep.white as f64) as f32;

    let tissue_s = Sampler { data: &tissue, dims };
    let loss_s = Sampler { data: &loss, dims: sd };
    let pot_s = Sampler { data: &potential, dims: sd };
    let lo = so.map(|o| o as f32 - 1.0);
    let hi = [0, 1, 2].map(|a| (so[a] + sd[a]) as f32);
    let in_support = |p: [f32; 3]| (0..3).all(|a| p[a] > lo[a] && p[a] < hi[a]);
    let local = |p: [f32; 3]| [p[0] - so[0] as f32, p[1] - so[1] as f32, p[2] - so[2] as f32];
    let mut image = vec![0f32; n];
    let mut atrophy = vec![0f32; n];
    let plane = dims[1] * dims[2];
    let noise_seed = mix(scan.acquisition_seed, stream::NOISE, 0);
    let mut exy = vec![0f32; warp.bumps.len()];
    for i in 0..dims[0] {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(noise_seed, stream::NOISE, i as u64));
        let img_plane = &mut image[i * plane..(i + 1) * plane];
        let atr_plane = &mut atrophy[i * plane..(i + 1) * plane];
        let px = warp.centre[0] + (i as f32 - warp.centre[0]) * warp.inv_scale[0] + warp.shift[0];
        for j in 0..dims[1] {
            for (e, b) in exy.iter_mut().zip(&warp.bumps) {
                *e = b.tables[0][i] * b.tables[1][j];
            }
            let py = warp.centre[1] + (j as f32 - warp.centre[1]) * warp.inv_scale[1] + warp.shift[1];
            let bij = bias[0][i] * bias[1][j] * scale;
            #[allow(clippy::needless_range_loop)] // k indexes the bias, bump tables and the output alike
            for k in 0..dims[2] {
                let pz = warp.centre[2] + (k as f32 - warp.centre[2]) * warp.inv_scale[2] + warp.shift[2];
                let mut p = [px, py, pz];
                for (e, b) in exy.iter().zip(&warp.bumps) {
                    let w = e * b.tables[2][k];
                    p[0] += w * b.amp[0];
                    p[1] += w * b.amp[1];
                    p[2] += w * b.amp[2];
                }
                let o = j * dims[2] + k;
                if in_support(p) {
                    if let Some(g) = pot_s.gradient(local(p)) {
                        p = [p[0] + g[0], p[1] + g[1], p[2] + g[2]];
                    }
                    if in_support(p) {
                        atr_plane[o] = loss_s.sample(local(p));
                    }
                }
                let mut v = tissue_s.sample(p);
                if v > 0.0 {
                    v *= bij * bias[2][k];
                    if sigma > 0.0 {
                        let n1: f32 = rng.sample(StandardNormal);
                        let n2: f32 = rng.sample(StandardNormal);
                        let re = v + sigma * n1;
                        let im = sigma * n2;
                        v = (re * re + im * im).sqrt();
                    }
                    // v ≥ 0, so ⌊v·Q + ½⌋ rounds to nearest (without a libm call).
                    img_plane[o] = ((v * QUANT + 0.5) as u32) as f32 / QUANT;
                }
            }
        }
    }
    let to3 = |v: Vec<f32>| Array3::from_shape_vec(dims, v).expect("buffer matches the grid");
    Rendered { image: to3(image), atrophy: to3(atrophy) }
}

/// Which side a region is on, as written in the ground-truth tables.
pub(crate) fn side_name(h: Option<Hemisphere>) -> &'static str {
    match h {
        Some(Hemisphere::Left) => "left",
        Some(Hemisphere::Right) => "right",
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("hippocampus", "hippocampus"), 0);
        assert_eq!(edit_distance("hipocampus", "hippocampus"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
