//! The scans the checks run on: the AD test scans `interpret` explains, with the trained
//! model's maps.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use ndarray::Array3;

use adni_data::preprocess::Normalizer;
use adni_data::run_layout::RelevanceLayout;
use adni_data::volume::read_volume;
use model::data::ScanItem;
use model::{ClassificationModel3D, Cpu};
use relevance::Target;
use relevance::methods::compute_map;

use super::{for_class, probabilities};
use crate::commands::progress_bar;
use crate::inputs::ScanInputs;
use crate::interpret_cmd::Params;
use crate::relevance_config::Method;

/// One AD test scan: its inputs, explained class, ground truth and the trained model's maps.
pub(super) struct Scan {
    pub(super) item: ScanItem,
    /// Preprocessed, not normalised.
    pub(super) raw: Array3<f32>,
    /// Normalised with the trained model's statistics.
    pub(super) x: Array3<f32>,
    /// The class explained (the trained model's target rule), kept for every other model.
    pub(super) target: usize,
    pub(super) truth: Option<Array3<bool>>,
    pub(super) maps: BTreeMap<Method, Array3<f32>>,
}

/// The AD scans among `items` that `interpret` explains (as many per patient), loaded and
/// normalised, with the class the trained model's maps explain and the ground-truth mask.
pub(super) fn ad_scans(
    items: &[ScanItem],
    inputs: &ScanInputs,
    model: &ClassificationModel3D<Cpu>,
    norm: &Normalizer,
    params: &Params,
) -> Result<Vec<Scan>> {
    let mut per_patient: BTreeMap<&str, usize> = BTreeMap::new();
    let limit = params.section.scans_per_patient_of(true);
    let mut scans: Vec<Scan> = Vec::new();
    for item in items.iter().filter(|i| i.label == 1) {
        let seen = per_patient.entry(item.ptid.as_str()).or_default();
        *seen += 1;
        if limit > 0 && *seen > limit {
            continue;
        }
        let raw = inputs.source.load(item)?;
        let mut x = raw.clone();
        norm.apply(&mut x).with_context(|| format!("image {} ({})", item.image_id, item.path.display()))?;
        let probs = probabilities(model, &x)?;
        let target = match params.target() {
            Target::Predicted => usize::from(probs[1] > probs[0]),
            Target::Class(c) => c,
        };
        let truth = match &inputs.truth {
            Some(t) => t.mask(item.image_id, inputs.source.spec.downsample, params.section.ground_truth_fraction)?,
            None => None,
        };
        scans.push(Scan { item: item.clone(), raw, x, target, truth, maps: BTreeMap::new() });
    }
    Ok(scans)
}

/// The trained model's map of every scan and method: read from `saved`, the relevance folder
/// where `interpret` saved it (`save_scan_maps`) for this model and settings, computed otherwise.
pub(super) fn trained_maps(
    scans: &mut [Scan],
    saved: Option<&RelevanceLayout>,
    model: &ClassificationModel3D<Cpu>,
    labels: Option<&Array3<i32>>,
    params: &Params,
) -> Result<()> {
    let methods = &params.section.methods;
    let shape = model.input_shape();
    let trained_ad = ClassificationModel3D::<Autodiff<Cpu>>::from_inner(model.clone());
    let bar = progress_bar(scans.len() * methods.len(), "maps");
    let mut computed = 0;
    for scan in scans.iter_mut() {
        let pc = for_class(params, scan.target, scan.item.image_id);
        for &method in methods {
            let read = saved.and_then(|s| read_volume(&s.scan_map(method.name(), scan.item.image_id)).ok());
            let map = match read {
                Some((v, _, _)) if v.data.shape() == shape.as_slice() => v.data,
                _ => {
                    computed += 1;
                    compute_map(method, &trained_ad, model, &scan.x, labels, &pc)
                        .with_context(|| format!("{method} of image {}", scan.item.image_id))?
                        .0
                }
            };
            scan.maps.insert(method, map);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    if computed > 0 {
        eprintln!("sanity: computed {computed} trained-model maps (not saved by `interpret`)");
    }
    Ok(())
}
