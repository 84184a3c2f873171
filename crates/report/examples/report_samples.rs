//! Renders every table and figure of `report` from the project's template and atlases with
//! made-up relevance maps, to look at them and as a worked example of the API:
//!
//! ```text
//! cargo run --release -p report --example report_samples -- [data_root] [out_dir]
//! ```
//!
//! `data_root` defaults to `data` (needs `external/` from `cargo xtask fetch-data`); `out_dir`
//! to `target/report-samples`. The training run's curves are drawn when
//! `results/quick-train/metrics_epochs.csv` and `predictions.csv` exist.

use std::path::{Path, PathBuf};

use adni_data::atlas::{Atlas, load_aal, load_cerebra};
use adni_data::preprocess::downsample;
use adni_data::volume::read_volume;
use ndarray::{Array3, ArrayView3, Zip};
use polars::prelude::*;
use report::classification::read_run;
use report::compare::method_comparison;
use report::figures::{self, OverlayScale};
use report::ground_truth::{Bootstrap, per_scan_frame, score_map, summarise};
use report::patients::patient_table;
use report::regions::{Placement, place_atlas, region_scores};
use report::tables::{stack_with_keys, write_table};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A small deterministic generator (no extra dependency): uniform in [0, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }
}

/// Box blur of radius `r` along every axis (a cheap smoothing).
fn blur(v: &Array3<f32>, r: usize) -> Array3<f32> {
    let mut cur = v.clone();
    for axis in 0..3 {
        let n = cur.shape()[axis];
        let mut out = Array3::<f32>::zeros(cur.raw_dim());
        for (mut o, l) in out.lanes_mut(ndarray::Axis(axis)).into_iter().zip(cur.lanes(ndarray::Axis(axis))) {
            for i in 0..n {
                let (a, b) = (i.saturating_sub(r), (i + r + 1).min(n));
                o[i] = (a..b).map(|k| l[k]).sum::<f32>() / (b - a) as f32;
            }
        }
        cur = out;
    }
    cur
}

fn label_mask(atlas: &Atlas, names: &[&str]) -> Array3<f32> {
    let labels: Vec<i32> =
        atlas.regions.iter().filter(|r| names.contains(&r.pair_name.as_str())).map(|r| r.label).collect();
    atlas.labels.mapv(|l| if labels.contains(&l) { 1.0 } else { 0.0 })
}

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(args.get(1).map(String::as_str).unwrap_or("data"));
    let out = PathBuf::from(args.get(2).map(String::as_str).unwrap_or("target/report-samples"));
    let ext = data.join("external");
    let (template, _, _) = read_volume(&ext.join("icbm152_2009c/mni_icbm152_t1bet_tal_nlin_sym_09c.nii"))?;
    let bg = downsample(&template, 2);
    let grid = bg.grid();
    println!("background grid {:?}, voxel {:?} mm", grid.shape, grid.affine.voxel_sizes());
    let aal = load_aal(&ext.join("aal/AAL.nii"), &ext.join("aal/AAL.txt"))?;
    let cerebra = load_cerebra(
        &ext.join("cerebra/mni_icbm152_CerebrA_tal_nlin_sym_09c.nii"),
        &ext.join("cerebra/CerebrA_LabelDetails.csv"),
    )?;
    let aal_w = place_atlas(&aal, &grid, Placement::World)?;
    let aal_z = place_atlas(&aal, &grid, Placement::Zoom)?;
    let cer_w = place_atlas(&cerebra, &grid, Placement::World)?;

    // made-up maps: focal (occlusion-like, blocky, left hippocampus + inferior temporal), distributed
    // (gradient-like noise over the brain, stronger in the temporal lobe), and an all-zero map
    let mut rng = Lcg(2018);
    let hippo_l = aal_w.labels.mapv(|l| if l == 37 || l == 89 { 1.0f32 } else { 0.0 });
    let focal = blur(&hippo_l, 3).mapv(|v| (v * 8.0).round() / 8.0);
    let temporal = blur(&label_mask(&aal_w, &["Temporal_Inf", "Temporal_Mid", "Hippocampus"]), 2);
    let brain = bg.data.mapv(|v| if v > 0.0 { 1.0f32 } else { 0.0 });
    let mut distributed = Array3::<f32>::zeros(brain.raw_dim());
    Zip::from(&mut distributed).and(&brain).and(&temporal).for_each(|d, &b, &t| *d = b * rng.next() * (0.2 + t));
    let distributed = blur(&distributed, 1);
    let zero = Array3::<f32>::zeros(brain.raw_dim());
    let maps: Vec<(String, ArrayView3<f32>)> = vec![
        ("occlusion".into(), focal.view()),
        ("guided backprop".into(), distributed.view()),
        ("all-zero".into(), zero.view()),
    ];

    // tables
    let tables_dir = out.join("tables");
    let mut parts = Vec::new();
    let mut region_tables = Vec::new();
    for (name, m) in &maps {
        let t = region_scores(m.view(), &aal_w, true)?;
        parts.push((vec![("method", name.clone()), ("atlas", "AAL".to_string())], t.clone()));
        region_tables.push((name.clone(), t));
        let c = region_scores(m.view(), &cer_w, true)?;
        parts.push((vec![("method", name.clone()), ("atlas", "CerebrA".to_string())], c));
    }
    let regions = stack_with_keys(&parts)?;
    write_table(&regions, &tables_dir, "regions")?;
    println!("AAL groups: {}", region_tables[0].1.height());
    println!("{}", region_tables[0].1.head(Some(8)));
    let zoom_table = region_scores(focal.view(), &aal_z, true)?;
    println!("same map, paper's zoom placement:\n{}", zoom_table.head(Some(5)));
    let in_brain = brain.mapv(|v| v > 0.0);
    let comparison = method_comparison(&maps, &region_tables, Some(in_brain.view()))?;
    write_table(&comparison, &tables_dir, "method_comparison")?;
    println!("{comparison}");
    let keys = DataFrame::new(
        3,
        vec![
            Column::new("scan".into(), ["a", "b", "c"]),
            Column::new("method".into(), ["occlusion", "guided backprop", "all-zero"]),
        ],
    )?;
    let per_patient = patient_table(&keys, &region_tables.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>(), 5)?;
    write_table(&per_patient, &tables_dir, "patients")?;
    println!("{per_patient}");

    // ground truth: the planted "atrophy" is the left hippocampus + inferior temporal gyrus
    let truth = hippo_l.mapv(|v| v > 0.5);
    let mut rows = Vec::new();
    for scan in 0..6 {
        for (name, m) in &maps {
            let noisy = m.mapv(|v| v * (0.5 + rng.next()));
            rows.push((
                vec![("method", name.clone()), ("scan", scan.to_string())],
                score_map(noisy.view(), truth.view(), None)?,
            ));
        }
        let random = brain.mapv(|b| b * rng.next());
        rows.push((
            vec![("method", "random weights".into()), ("scan", scan.to_string())],
            score_map(random.view(), truth.view(), None)?,
        ));
    }
    let per_scan = per_scan_frame(&rows)?;
    let gt_summary = summarise(&per_scan, &["method"], &Bootstrap::default())?;
    write_table(&gt_summary, &tables_dir, "ground_truth_summary")?;
    println!("{gt_summary}");

    // figures
    let fig = out.join("figures");
    let slices = figures::paper_coronal_slices(&grid)?;
    println!("paper planes on this grid: {slices:?}");
    figures::paper_figure(
        bg.data.view(),
        &maps,
        &slices,
        "AD average (made-up maps)",
        &OverlayScale::default(),
        (1200, 900),
        &fig.join("paper_figure.png"),
    )?;
    figures::plot_slices(
        bg.data.view(),
        distributed.view(),
        6,
        99.9,
        "guided backprop (made-up)",
        (1400, 800),
        &fig.join("plot_slices.png"),
    )?;
    figures::plot_slices(
        bg.data.view(),
        focal.view(),
        6,
        99.9,
        "occlusion (made-up)",
        (1400, 800),
        &fig.join("plot_slices_focal.png"),
    )?;
    figures::bar_chart_top_regions(
        &region_tables[0].1,
        15,
        "occlusion: top 15 AAL regions",
        (1000, 700),
        &fig.join("top_regions.png"),
    )?;
    figures::bar_chart_top_regions(
        &region_tables[2].1,
        15,
        "all-zero: top 15 AAL regions",
        (1000, 700),
        &fig.join("top_regions_zero.png"),
    )?;
    figures::distance_matrix(&comparison, (800, 700), &fig.join("distance_matrix.png"))?;
    figures::ground_truth_chart(&gt_summary, (1000, 700), &fig.join("ground_truth.png"))?;
    // the paper's own planes on the 1 mm grid (80, 114, 149): hippocampus and amygdala as a map
    let grid_1mm = template.grid();
    let aal_1mm = place_atlas(&aal, &grid_1mm, Placement::World)?;
    let mtl = label_mask(&aal_1mm, &["Hippocampus", "Amygdala"]);
    let started = std::time::Instant::now();
    figures::paper_figure(
        template.data.view(),
        &[("hippocampus + amygdala".to_string(), mtl.view())],
        &figures::paper_coronal_slices(&grid_1mm)?,
        "1 mm grid, the paper's planes",
        &OverlayScale::default(),
        (600, 900),
        &fig.join("paper_figure_1mm.png"),
    )?;
    println!("1 mm paper figure in {:.2} s", started.elapsed().as_secs_f64());
    let run_dir = Path::new("results/quick-train");
    if run_dir.join("metrics_epochs.csv").is_file() {
        let run = read_run(run_dir)?;
        figures::learning_curves(&run.epochs, (1000, 900), &fig.join("learning_curves.png"))?;
        figures::roc_curves(&run.predictions, (900, 800), &fig.join("roc_curves.png"))?;
        write_table(&run.folds, &tables_dir, "classification_folds")?;
        write_table(&run.summary, &tables_dir, "classification_summary")?;
    }
    println!("written under {}", out.display());
    Ok(())
}
