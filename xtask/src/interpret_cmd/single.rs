//! Single-scan mode: one method's map of one scan, from a run's fold folder or a weights file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::backend::Autodiff;
use burn::module::AutodiffModule;

use adni_data::Grid;
use adni_data::atlas::Atlas;
use adni_data::preprocess::{Normalizer, downsample};
use adni_data::run_layout::{FoldLayout, RESOLVED_CONFIG_FILE};
use adni_data::volume::{OutputType, Volume, read_volume, write_volume};
use model::train::load_fold_model;
use model::weights::WeightsFile;
use model::{ClassificationModel3D, Cpu};
use relevance::methods::compute_map;

use super::{InterpretArgs, Params, apply_overrides};
use crate::commands::{find_config, load_config_file};
use crate::config::ProjectConfig;
use crate::relevance_config::RelevanceSection;

/// Single-scan mode.
pub(super) fn single_mode(a: &InterpretArgs) -> Result<()> {
    let (Some(weights), Some(scan_path), Some(method), Some(out)) = (&a.weights, &a.scan, a.method, &a.out) else {
        bail!("single-scan mode needs --weights FILE --scan FILE --method NAME --out FILE");
    };
    // Before any work: a map computed for minutes should not then fail on its file name.
    adni_data::volume::check_nifti_output_path(out).context("--out")?;
    if method == relevance::methods::Method::AreaOcclusion && a.atlas.is_none() {
        // `[relevance] atlas` names an atlas of a run's project (fetched, or the synthetic
        // cohort's); one scan on its own needs the label volume itself.
        bail!(
            "area-occlusion of one scan needs --atlas FILE.nii.gz (a label volume; [relevance] atlas applies to runs)"
        );
    }
    let mut section = match &a.config {
        Some(c) => load_config_file(&find_config(c)?)?.relevance,
        None => RelevanceSection::default(),
    };
    apply_overrides(&mut section, a);
    section.methods = vec![method];
    let params = Params::new(section)?;
    let device = Default::default();

    let (vol, _, report) = read_volume(scan_path)?;
    if report.non_finite_replaced > 0 {
        eprintln!("interpret: {}: {} NaN/Inf voxels read as 0", scan_path.display(), report.non_finite_replaced);
    }
    // The weights: a run's fold folder (with its normalisation), or a weights file.
    let (model, default_norm): (ClassificationModel3D<Cpu>, Option<PathBuf>) = if weights.is_dir() {
        let m = load_fold_model::<Cpu>(weights, &device).with_context(|| {
            format!("{} is not a fold folder of a run (network.json, model.safetensors)", weights.display())
        })?;
        (m, Some(FoldLayout::new(weights).normalization()))
    } else {
        let file = WeightsFile::open(weights)?;
        let config = file.inferred_config()?;
        let grid = match file.recorded_grid()? {
            Some(grid) => grid,
            // A file without a recorded grid (PyTorch's): the scan's grid or the one it
            // downsamples to (by 2, 3 or 4) whose flatten size is dense_1's input; else the
            // scan's, whose mismatch `into_model` explains.
            None => {
                let scan = vol.grid();
                let candidates: Vec<[usize; 3]> = (1..=4).map(|f| scan.downsampled(f).shape).collect();
                file.fitting_grid(&config, &candidates).unwrap_or(scan.shape)
            }
        };
        (file.into_model::<Cpu>(&config, Some(grid), &device)?, None)
    };
    let grid = model.input_shape();
    // A fold of a run: its preprocessing (brain mask before downsampling) applies to a raw scan.
    let run_mask = if weights.is_dir() && vol.grid().shape != grid {
        let resolved = weights.join("../..").join(RESOLVED_CONFIG_FILE);
        match ProjectConfig::load(&resolved) {
            Ok(run_cfg) => run_cfg.preprocess.mask_path(),
            Err(_) => None,
        }
    } else {
        None
    };
    let default_norm_dir = default_norm.clone();
    let normalizer = match (a.normalization.as_deref(), default_norm) {
        (Some("none"), _) => None,
        (Some(dir), _) => Some((Normalizer::load(Path::new(dir))?, PathBuf::from(dir))),
        (None, Some(dir)) => Some((Normalizer::load(&dir)?, dir)),
        (None, None) => bail!(
            "--normalization is needed with a weights file: a run's normalization folder \
             (results/<run>/folds/<split>/normalization) or `none` for a scan that is already z-scored"
        ),
    };
    let mut vol = vol;
    if let Some(mask) = run_mask {
        // The mask of the run's preprocessing lies on the raw scans' grid: a scan elsewhere is
        // not one the run could have seen.
        let (m, _, _) = read_volume(&mask)?;
        vol.grid().check_matches(&m.grid(), scan_path, 1e-3).with_context(|| {
            format!(
                "the scan is not on the grid of the run's brain mask {} (the scans this model was trained on); \
                 reorient or resample it onto that grid first",
                mask.display()
            )
        })?;
        eprintln!("interpret: masking with the run's brain mask {}", mask.display());
        adni_data::preprocess::apply_mask(&mut vol.data, &m.data)?;
    }
    let vol = fit_to_grid(vol, grid, scan_path)?;
    if let Some((norm, dir)) = &normalizer {
        // Same shape is not enough: a flipped or shifted scan would be explained voxel by voxel
        // against another place in the brain.
        vol.grid().check_matches(&norm.grid(), scan_path, 1e-3).with_context(|| {
            format!(
                "the scan (on the model's grid) is not on the grid of the normalisation {} the model was \
                 trained with; reorient or resample it onto the run's grid first",
                dir.display()
            )
        })?;
    }
    if let (None, Some(dir)) = (&normalizer, &default_norm_dir) {
        // `--normalization none` with a run's fold: the scan is z-scored already, but it must
        // still lie where the fold's scans lay (the normalisation's grid records where that is).
        if let Ok(norm) = Normalizer::load(dir) {
            vol.grid().check_matches(&norm.grid(), scan_path, 1e-3).with_context(|| {
                format!(
                    "the scan (on the model's grid) is not on the grid of the fold's scans (recorded in {}); \
                     reorient or resample it onto the run's grid first",
                    dir.display()
                )
            })?;
        }
    }
    let mut x = vol.data;
    if let Some((norm, _)) = &normalizer {
        norm.apply(&mut x)?;
    }
    let atlas = match &a.atlas {
        None => None,
        Some(path) => {
            let (labels, affine) = adni_data::atlas::read_label_volume(path)?;
            let ids: std::collections::BTreeSet<i32> = labels.iter().copied().filter(|&l| l != 0).collect();
            let regions = ids.iter().map(|&l| adni_data::atlas::Region::from_name(l, &format!("label_{l}"))).collect();
            let atlas = Atlas::new(path.display().to_string(), labels, affine, regions)?;
            Some(
                atlas
                    .resample_to(&Grid { shape: grid, affine: vol.affine }, adni_data::atlas::Placement::World)?
                    .labels,
            )
        }
    };
    // What the model says about the scan, so that the map can be read against it (the label is
    // unknown here: `Prediction` only gives P(AD) and the arg-max class).
    let logits: Vec<f32> = model
        .forward_eval(relevance::methods::to_tensor::<Cpu>(&x, &device))
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| anyhow::anyhow!("the model's output for {}: {e:?}", scan_path.display()))?;
    if let [cn, ad] = logits[..] {
        let p = model::metrics::Prediction::from_logits(0, [cn, ad]);
        let class = if p.predicted == 1 { "AD" } else { "CN" };
        let explains = match params.methods.target {
            relevance::Target::Predicted => format!("the predicted class ({class})"),
            t => format!("class {}", t.name()),
        };
        eprintln!("interpret: the model predicts {class} (P(AD) {:.3}); the map explains {explains}", p.p_ad);
    }
    let trained = ClassificationModel3D::<Autodiff<Cpu>>::from_inner(model.clone());
    let t = Instant::now();
    let (map, balance) = compute_map(method, &trained, &model, &x, atlas.as_ref(), &params.methods)?;
    if let Some(b) = balance {
        eprintln!(
            "interpret: LRP conservation: Σ relevance {:.4} of logit {:.4} ({:.1} % absorbed by biases and ε)",
            b.total,
            b.logit,
            100.0 * (1.0 - f64::from(b.total) / f64::from(b.logit))
        );
    }
    write_volume(out, &Volume { data: map, affine: vol.affine }, OutputType::Float32)?;
    eprintln!(
        "interpret: {method} of {} in {:.1} s → {}",
        scan_path.display(),
        t.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// The scan on the model's grid: as is, or downsampled by the integer factor that gives the grid.
fn fit_to_grid(vol: Volume, grid: [usize; 3], path: &Path) -> Result<Volume> {
    let shape = vol.grid().shape;
    if shape == grid {
        return Ok(vol);
    }
    for f in 2..=4 {
        if vol.grid().downsampled(f).shape == grid {
            eprintln!(
                "interpret: downsampling {} by {f} to the model grid {}",
                path.display(),
                model::format_grid(grid)
            );
            return Ok(downsample(&vol, f));
        }
    }
    bail!(
        "{}: the scan's grid {} does not match the model's grid {} (nor downsamples to it by 2, 3 or 4)",
        path.display(),
        model::format_grid(shape),
        model::format_grid(grid)
    )
}
