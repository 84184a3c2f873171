//! The randomisation checks: cascading model-parameter randomisation and data randomisation
//! (a shuffled-label model), see the parent module.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use ndarray::Array3;

use adni_data::preprocess::Normalizer;
use adni_data::run_layout::{RunLayout, SanityLayout};
use model::data::{ScanItem, VolumeSource};
use model::metrics::{BinaryMetrics, Prediction};
use model::train::TrainMode;
use model::{ClassificationModel3D, Cpu};
use relevance::methods::{compute_map, to_tensor};
use report::faithfulness::ranks_voxels;
use report::sanity_tables::{CascadeRow, DataRandomisationRow, ShuffledModelRow, TruthScores};

use super::{Scan, for_class, similarity};
use crate::commands::progress_bar;
use crate::config::ProjectConfig;
use crate::interpret_cmd::Params;
use crate::relevance_config::Method;
use crate::train_cmd::{TrainArgs, train_with};

/// The cascading randomisation: one step per layer from the output down, on `chosen` scans.
/// Each row records whether the trained model's map ranks the brain's voxels
/// (`trained_map_ranks`). Where it does not (a constant map, such as an
/// all-zero guided backpropagation map), every similarity to it is undefined (NaN): a constant
/// map has no ranks to correlate, and two constant maps are "identical" to SSIM whatever the
/// weights; the randomised map is not computed.
pub(super) fn cascade_check(
    cfg: &ProjectConfig,
    model: &ClassificationModel3D<Cpu>,
    chosen: &[&Scan],
    methods: &[Method],
    labels: Option<&Array3<i32>>,
    brain: &Array3<bool>,
    params: &Params,
) -> Result<Vec<CascadeRow>> {
    let device = Default::default();
    <Cpu as Backend>::seed(&device, cfg.sanity.seed);
    let fresh = cfg.model.init::<Cpu>(model.input_shape(), &device)?;
    // Lazily initialised parameters would be redrawn by every clone: fix them now.
    relevance::materialize_parameters(&fresh);
    let layers = model.cascade_layers();
    let mut rows = Vec::with_capacity(layers.len() * chosen.len() * methods.len());
    let bar = progress_bar(layers.len() * chosen.len() * methods.len(), "cascade");
    for (k, layer) in layers.iter().enumerate() {
        let randomised = model.with_top_layers_from(&fresh, k + 1)?;
        let autodiff = ClassificationModel3D::<Autodiff<Cpu>>::from_inner(randomised.clone());
        for scan in chosen {
            let pc = for_class(params, scan.target, scan.item.image_id);
            for &method in methods {
                bar.set_message(format!("{layer} · {method}"));
                let trained = &scan.maps[&method];
                let ranks = ranks_voxels(trained.view(), Some(brain.view()));
                let (rho, s) = if ranks {
                    let (map, _) = compute_map(method, &autodiff, &randomised, &scan.x, labels, &pc)
                        .with_context(|| format!("{method} of image {} with {layer} randomised", scan.item.image_id))?;
                    similarity(&map, trained, brain)?
                } else {
                    (f64::NAN, f64::NAN)
                };
                rows.push(CascadeRow {
                    step: k + 1,
                    layer: layer.clone(),
                    method: method.name().to_owned(),
                    ptid: scan.item.ptid.clone(),
                    image_id: scan.item.image_id,
                    spearman: rho,
                    ssim: s,
                    trained_map_ranks: ranks,
                });
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// Trains the shuffled-label hold-out model into `sanity/shuffled` (skipped when finished);
/// returns its run folder.
pub(super) fn train_shuffled(cfg: &ProjectConfig, out: &SanityLayout, resolved: &Path) -> Result<RunLayout> {
    let shuffled = out.shuffled_run();
    let mut c = shuffled_config(cfg);
    c.run.results_dir = out.dir().to_path_buf();
    c.run.name = shuffled.root().file_name().and_then(|n| n.to_str()).unwrap_or("shuffled").into();
    let dir = c.run.dir();
    eprintln!(
        "sanity: training the shuffled-label model ({} epochs, initial weights of seed {}) → {}",
        c.train.epochs,
        c.train.seed,
        dir.display()
    );
    let args = TrainArgs {
        config: resolved.to_path_buf(),
        fold: None,
        resume: true,
        merge: false,
        device: None,
        shuffle_labels: Some(cfg.sanity.seed),
    };
    train_with(c, &args).context("training the shuffled-label model")?;
    Ok(shuffled)
}

/// The config the shuffled-label model is trained with: the trained model's, in hold-out mode,
/// with `[sanity] shuffled_epochs` (when set) and initial weights, batch order and augmentation
/// of [`shuffled_train_seed`]. Starting from the trained model's initial weights, a few epochs
/// leave both models close to those weights and their maps alike whatever the labels taught.
pub(super) fn shuffled_config(cfg: &ProjectConfig) -> ProjectConfig {
    let mut c = cfg.clone();
    c.train.mode = TrainMode::Holdout;
    c.train.seed = shuffled_train_seed(cfg.train.seed, cfg.sanity.seed);
    if cfg.sanity.shuffled_epochs > 0 {
        c.train.epochs = cfg.sanity.shuffled_epochs;
    }
    c
}

/// The training seed of the shuffled-label model: derived from the sanity seed, and never the
/// trained model's `train_seed` (the default config gives both seeds the same value).
pub(super) fn shuffled_train_seed(train_seed: u64, sanity_seed: u64) -> u64 {
    // "SHUFFLED" in ASCII.
    let seed = sanity_seed ^ 0x5348_5546_464c_4544;
    if seed == train_seed { seed.wrapping_add(1) } else { seed }
}

/// How well the shuffled-label model fits the labels it was trained on: its accuracy (eval
/// mode: no dropout, no augmentation) on its training scans `items`, whose labels are the
/// shuffled ones. Row [`ShuffledModelRow::SHUFFLED_FIT`] of `shuffled_model.csv`.
pub(super) fn shuffled_fit(
    source: &VolumeSource,
    items: &[ScanItem],
    model: &ClassificationModel3D<Cpu>,
    norm: &Normalizer,
) -> Result<ShuffledModelRow> {
    let preds = predict(source, items, &[(model, norm)])?.pop().unwrap_or_default();
    Ok(metrics_row(ShuffledModelRow::SHUFFLED_FIT, BinaryMetrics::from_predictions(&preds)))
}

/// The predictions of each of `models` on `items` (against the items' labels).
fn predict(
    source: &VolumeSource,
    items: &[ScanItem],
    models: &[(&ClassificationModel3D<Cpu>, &Normalizer)],
) -> Result<Vec<Vec<Prediction>>> {
    let mut preds: Vec<Vec<Prediction>> = vec![Vec::new(); models.len()];
    for item in items {
        let raw = source.load(item)?;
        for (k, (model, norm)) in models.iter().enumerate() {
            let mut x = raw.clone();
            norm.apply(&mut x).with_context(|| format!("image {} ({})", item.image_id, item.path.display()))?;
            let logits: Vec<f32> = model
                .forward_eval(to_tensor::<Cpu>(&x, &Default::default()))
                .into_data()
                .convert::<f32>()
                .to_vec()
                .map_err(|e| anyhow!("{e:?}"))?;
            preds[k].push(Prediction::from_logits(item.label, [logits[0], logits[1]]));
        }
    }
    Ok(preds)
}

/// A row of `shuffled_model.csv` from a model's metrics.
fn metrics_row(model: &'static str, m: BinaryMetrics) -> ShuffledModelRow {
    ShuffledModelRow {
        model,
        n_scans: m.n,
        accuracy: m.accuracy,
        balanced_accuracy: m.balanced_accuracy,
        roc_auc: m.roc_auc,
    }
}

/// The trained and the shuffled model on every test scan, against the true labels.
pub(super) fn shuffled_metrics(
    source: &VolumeSource,
    items: &[ScanItem],
    models: [(&ClassificationModel3D<Cpu>, &Normalizer); 2],
) -> Result<[ShuffledModelRow; 2]> {
    let preds = predict(source, items, &models)?;
    let [trained, shuffled] = [&preds[0], &preds[1]].map(|p| BinaryMetrics::from_predictions(p));
    Ok([metrics_row(ShuffledModelRow::TRAINED, trained), metrics_row(ShuffledModelRow::SHUFFLED, shuffled)])
}

/// The shuffled model's maps of the AD `scans` (same class as the trained model's maps):
/// their similarity to the trained maps and their ground-truth scores.
pub(super) fn data_randomisation_check(
    shuffled: &ClassificationModel3D<Cpu>,
    norm: &Normalizer,
    scans: &[&Scan],
    methods: &[Method],
    labels: Option<&Array3<i32>>,
    brain: &Array3<bool>,
    params: &Params,
) -> Result<Vec<DataRandomisationRow>> {
    let autodiff = ClassificationModel3D::<Autodiff<Cpu>>::from_inner(shuffled.clone());
    let n = scans.len() * methods.len();
    let mut rows = Vec::with_capacity(n);
    let bar = progress_bar(n, "shuffled");
    for scan in scans {
        let mut x = scan.raw.clone();
        norm.apply(&mut x).with_context(|| format!("image {}", scan.item.image_id))?;
        let pc = for_class(params, scan.target, scan.item.image_id);
        for &method in methods {
            let (map, _) = compute_map(method, &autodiff, shuffled, &x, labels, &pc)
                .with_context(|| format!("{method} (shuffled-label model) of image {}", scan.item.image_id))?;
            // a constant trained map: no similarity is defined (see `cascade_check`)
            let trained = &scan.maps[&method];
            let (spearman, ssim) = if ranks_voxels(trained.view(), Some(brain.view())) {
                similarity(&map, trained, brain)?
            } else {
                (f64::NAN, f64::NAN)
            };
            let truth = match &scan.truth {
                Some(mask) => {
                    let g = report::ground_truth::score_map(map.view(), mask.view(), Some(brain.view()))?;
                    TruthScores {
                        mass_accuracy: g.mass_accuracy,
                        rank_accuracy: g.rank_accuracy,
                        pointing_hit: g.pointing_hit,
                        truth_fraction: g.chance,
                    }
                }
                None => TruthScores::NONE,
            };
            rows.push(DataRandomisationRow {
                method: method.name().to_owned(),
                ptid: scan.item.ptid.clone(),
                image_id: scan.item.image_id,
                spearman,
                ssim,
                truth,
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(rows)
}
