//! The sanity stage's parts on a tiny fixture: four 26³ scans on disk (two AD scans of one
//! patient, one of another, one CN), a seeded tiny network of the paper's shape and sensitivity
//! maps, so that every test runs in well under a second.

use std::path::PathBuf;

use adni_data::preprocess::{Normalizer, PreprocessSpec};
use adni_data::run_layout::RelevanceLayout;
use adni_data::volume::{Affine, OutputType, Volume, write_volume};
use adni_data::{Grid, volume::read_volume};
use burn::tensor::backend::Backend;
use model::data::{ScanItem, VolumeSource};
use ndarray::Array3;
use relevance::Target;

use super::randomisation::{cascade_check, data_randomisation_check, shuffled_metrics};
use super::scans::{ad_scans, trained_maps};
use super::*;

const GRID: [usize; 3] = [26, 26, 26];

/// The paper's network shrunk to work on 26³ grids.
fn tiny_network() -> model::NetworkConfig {
    model::NetworkConfig {
        channels: [2, 2, 2, 2],
        pools: [2, 2, 1, 1],
        kernel: 3,
        dense: [8, 4],
        dropout: 0.5,
        classes: 2,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    items: Vec<ScanItem>,
    inputs: ScanInputs,
    model: ClassificationModel3D<Cpu>,
    norm: Normalizer,
    cfg: ProjectConfig,
}

impl Fixture {
    fn params(&self, scans_per_patient: usize, target: Target) -> Params {
        let mut section = self.cfg.relevance.clone();
        section.scans_per_patient = scans_per_patient;
        section.target = target;
        Params::new(section).unwrap()
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let scans: [(&str, i64, u8); 4] =
        [("002_S_0001", 1, 1), ("002_S_0001", 2, 1), ("002_S_0002", 3, 1), ("002_S_0003", 4, 0)];
    let mut items = Vec::new();
    for (ptid, image_id, label) in scans {
        let data = Array3::from_shape_fn(GRID, |(i, j, k)| {
            let r = (i * 31 + j * 17 + k * 7) as f32 * 0.1 + image_id as f32;
            r.sin() + if label == 1 && i < 8 { 1.0 } else { 0.0 }
        });
        let path: PathBuf = dir.path().join(format!("{image_id}.nii.gz"));
        write_volume(&path, &Volume { data, affine: Affine::identity() }, OutputType::Float32).unwrap();
        items.push(ScanItem { image_id, ptid: ptid.into(), label, path });
    }
    let spec = PreprocessSpec { mask: None, downsample: 1 };
    let source = VolumeSource::open(&dir.path().join("cache"), spec, &items[0].path).unwrap();
    let grid: Grid = source.model_grid();
    assert_eq!(grid.shape, GRID);
    let volumes = items.iter().map(|i| -> adni_data::Result<(i64, Volume)> {
        Ok((i.image_id, source.cache.load_or_compute(&i.path, &source.spec, &source.source_grid)?.0))
    });
    let norm = Normalizer::fit(volumes, None).unwrap();
    let mut cfg = ProjectConfig { model: tiny_network(), ..ProjectConfig::default() };
    cfg.relevance.methods = vec![Method::Sensitivity];
    // About half the random tiny networks are dead (a constant output, zero maps), on which the
    // tests could not fail: the first seed whose outputs differ between an AD and the CN scan.
    let device = Default::default();
    let live = |model: &ClassificationModel3D<Cpu>| {
        let p = |item: &ScanItem| {
            let mut x = source.load(item).unwrap();
            norm.apply(&mut x).unwrap();
            probabilities(model, &x).unwrap()[1]
        };
        (p(&items[0]) - p(&items[3])).abs() > 1e-4
    };
    let model = (0..64)
        .find_map(|seed| {
            <Cpu as Backend>::seed(&device, seed);
            let model = cfg.model.init::<Cpu>(GRID, &device).unwrap();
            relevance::materialize_parameters(&model);
            live(&model).then_some(model)
        })
        .expect("a live tiny network among 64 seeds");
    let inputs = ScanInputs { source, grid, network: cfg.model.clone(), atlas: None, truth: None, brain: None };
    Fixture { dir, items, inputs, model, norm, cfg }
}

#[test]
fn ad_scans_are_the_explained_ad_test_scans_normalised_with_their_class() {
    let f = fixture();
    // one scan per patient: the first AD scan of each AD patient, never the CN scan
    let scans = ad_scans(&f.items, &f.inputs, &f.model, &f.norm, &f.params(1, Target::Predicted)).unwrap();
    let ids: Vec<i64> = scans.iter().map(|s| s.item.image_id).collect();
    assert_eq!(ids, [1, 3]);
    for s in &scans {
        let mut x = s.raw.clone();
        f.norm.apply(&mut x).unwrap();
        assert_eq!(s.x, x, "the scan is normalised with the trained model's statistics");
        let p = probabilities(&f.model, &s.x).unwrap();
        assert_eq!(s.target, usize::from(p[1] > p[0]), "the predicted class is explained");
        assert!(s.truth.is_none() && s.maps.is_empty());
    }
    // every scan of every patient (0 = all); a fixed class is kept whatever the model predicts
    let scans = ad_scans(&f.items, &f.inputs, &f.model, &f.norm, &f.params(0, Target::Class(0))).unwrap();
    assert_eq!(scans.iter().map(|s| s.item.image_id).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(scans.iter().all(|s| s.target == 0));
}

#[test]
fn trained_maps_are_read_where_interpret_saved_them_and_computed_otherwise() {
    let f = fixture();
    let params = f.params(0, Target::Predicted);
    let mut computed = ad_scans(&f.items, &f.inputs, &f.model, &f.norm, &params).unwrap();
    let saved = RelevanceLayout::new(f.dir.path().join("relevance"));
    trained_maps(&mut computed, Some(&saved), &f.model, None, &params).unwrap();
    let method = Method::Sensitivity;
    let map = &computed[0].maps[&method];
    assert_eq!(map.shape(), GRID.as_slice());
    assert!(map.iter().any(|&v| v != 0.0), "a live network has a non-zero sensitivity map");

    // scan 1: a saved map of the right grid is used as it is; scan 2: one of another grid is not
    let marker = Array3::from_elem(GRID, 0.25f32);
    let write = |id: i64, data: Array3<f32>| {
        let path = saved.scan_map(method.name(), id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_volume(&path, &Volume { data, affine: Affine::identity() }, OutputType::Float32).unwrap();
    };
    write(1, marker.clone());
    write(2, Array3::from_elem([4, 4, 4], 0.25f32));
    let mut scans = ad_scans(&f.items, &f.inputs, &f.model, &f.norm, &params).unwrap();
    trained_maps(&mut scans, Some(&saved), &f.model, None, &params).unwrap();
    assert_eq!(scans[0].maps[&method], marker);
    assert_eq!(read_volume(&saved.scan_map(method.name(), 1)).unwrap().0.data, marker);
    assert_eq!(scans[1].maps[&method], computed[1].maps[&method]);
    assert_eq!(scans[2].maps[&method], computed[2].maps[&method]);
}

#[test]
fn the_cascade_has_a_row_per_layer_scan_and_method_and_starts_at_the_output() {
    let f = fixture();
    let params = f.params(1, Target::Predicted);
    let mut scans = ad_scans(&f.items, &f.inputs, &f.model, &f.norm, &params).unwrap();
    trained_maps(&mut scans, Some(&RelevanceLayout::new(f.dir.path())), &f.model, None, &params).unwrap();
    let chosen: Vec<&Scan> = scans.iter().collect();
    let brain = Array3::from_elem(GRID, true);
    let rows = cascade_check(&f.cfg, &f.model, &chosen, &f.cfg.relevance.methods, None, &brain, &params).unwrap();
    let layers = f.model.cascade_layers();
    assert_eq!(rows.len(), layers.len() * chosen.len());
    assert!(rows.iter().all(|r| r.trained_map_ranks), "a live network's sensitivity maps rank voxels");
    assert_eq!(rows[0].layer, "dense_3");
    assert_eq!(rows.last().unwrap().layer, "block1");
    for (k, pair) in rows.chunks(chosen.len()).enumerate() {
        assert!(pair.iter().all(|r| r.step == k + 1 && r.layer == layers[k] && r.method == "sensitivity"));
        assert_eq!(pair.iter().map(|r| r.image_id).collect::<Vec<_>>(), [1, 3]);
    }
    // a fully randomised model's maps are not the trained model's (a dead random network gives
    // constant maps, whose rank correlation is undefined)
    let last = &rows[rows.len() - chosen.len()..];
    assert!(last.iter().all(|r| r.spearman.is_nan() || r.spearman < 1.0 - 1e-9), "{last:?}");
}

#[test]
fn a_constant_trained_map_has_no_similarity_in_either_randomisation_test() {
    let f = fixture();
    let params = f.params(1, Target::Predicted);
    let mut scans = ad_scans(&f.items, &f.inputs, &f.model, &f.norm, &params).unwrap();
    trained_maps(&mut scans, Some(&RelevanceLayout::new(f.dir.path())), &f.model, None, &params).unwrap();
    // scan 1's trained map is all zero (as guided backpropagation's can be): constant on the brain
    scans[0].maps.insert(Method::Sensitivity, Array3::zeros(GRID));
    let chosen: Vec<&Scan> = scans.iter().collect();
    let brain = Array3::from_elem(GRID, true);
    let rows = cascade_check(&f.cfg, &f.model, &chosen, &f.cfg.relevance.methods, None, &brain, &params).unwrap();
    for r in &rows {
        assert_eq!(r.trained_map_ranks, r.image_id != 1, "{r:?}");
        if r.image_id == 1 {
            // two constant maps would have SSIM 1 whatever the weights: undefined instead
            assert!(r.spearman.is_nan() && r.ssim.is_nan(), "{r:?}");
        } else {
            assert!(r.ssim.is_finite(), "{r:?}");
        }
    }
    let rows =
        data_randomisation_check(&f.model, &f.norm, &chosen, &f.cfg.relevance.methods, None, &brain, &params).unwrap();
    assert!(rows[0].spearman.is_nan() && rows[0].ssim.is_nan(), "{:?}", rows[0]);
    assert!((rows[1].spearman - 1.0).abs() < 1e-9, "{:?}", rows[1]);
}

#[test]
fn data_randomisation_of_the_trained_model_itself_finds_identical_maps() {
    let f = fixture();
    let params = f.params(1, Target::Predicted);
    let mut scans = ad_scans(&f.items, &f.inputs, &f.model, &f.norm, &params).unwrap();
    trained_maps(&mut scans, Some(&RelevanceLayout::new(f.dir.path())), &f.model, None, &params).unwrap();
    let all: Vec<&Scan> = scans.iter().collect();
    let brain = Array3::from_elem(GRID, true);
    // the "shuffled" model is the trained one: its maps are the trained maps
    let rows =
        data_randomisation_check(&f.model, &f.norm, &all, &f.cfg.relevance.methods, None, &brain, &params).unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!((r.spearman - 1.0).abs() < 1e-9 && (r.ssim - 1.0).abs() < 1e-6, "{r:?}");
        // no ground truth: the scores are missing, not zero
        assert!(r.truth.mass_accuracy.is_nan() && r.truth.pointing_hit.is_none());
    }
    // both "models" alike: the same metrics on every test scan, against the true labels
    let [trained, shuffled] =
        shuffled_metrics(&f.inputs.source, &f.items, [(&f.model, &f.norm), (&f.model, &f.norm)]).unwrap();
    assert_eq!((trained.model, shuffled.model), ("trained", "shuffled"));
    assert_eq!(trained.n_scans, 4);
    assert_eq!(
        (trained.accuracy, trained.balanced_accuracy, trained.roc_auc),
        (shuffled.accuracy, shuffled.balanced_accuracy, shuffled.roc_auc)
    );
}
