//! The relevance part of a report: from an interpretation run's folder ([`RelevanceLayout`]: the
//! mean maps of its `index.csv` and its tables) to the tables and figures of `report/`.
//!
//! | output | from |
//! |---|---|
//! | `report/viewer/` | the template, the atlas and every mean map, for the viewer of `REPORT.html` |
//! | tables `regions`, `regions_<method>_AD`; `top_regions_<method>_AD.png` | each mean map scored per region of the main atlas |
//! | tables `regions_aal`, `regions_<method>_AD_aal` | the same on AAL, the paper's atlas, when it is not the main one |
//! | table `method_comparison_AD`; `method_distance_AD.png` | the AD averages, method against method, within the brain mask (the background's non-zero voxels) |
//! | `paper_figure_{AD,CN}.png`, `slices_<method>_AD.png` | the paper's figure (one colour scale per method) and slice grids |
//! | table `patients` | `scan_regions.csv` ([`crate::patients::per_scan_patient_table`]) |
//! | tables `ground_truth_{per_scan,metrics,summary,verdict}`; `ground_truth.png` | `ground_truth.csv` (synthetic cohorts) |
//! | tables `lrp_conservation`, `relevance_timing` | `lrp_conservation.csv`, `timing.csv` as they are |

use std::path::{Path, PathBuf};

use adni_data::Grid;
use adni_data::atlas::Atlas;
use adni_data::run_layout::RelevanceLayout;
use adni_data::volume::read_volume;
use ndarray::{Array3, ArrayView3};
use polars::prelude::DataFrame;

use crate::error::{ReportError, Result, ResultExt};
use crate::figures::{self, OverlayScale};
use crate::ground_truth::Bootstrap;
use crate::html::viewer::{ViewerMap, viewer_files, write_viewer};
use crate::interpretation::IndexRow;
use crate::tables::{read_csv, stack_with_keys, write_table_into};

/// The groups of the mean maps, in the order the report reads them.
pub const GROUPS: [&str; 3] = ["AD", "CN", "all"];

/// A volume's voxels and grid (a mean map or the template under them).
pub fn read_map(path: &Path) -> Result<(Array3<f32>, Grid)> {
    let (vol, _, _) = read_volume(path)?;
    let grid = vol.grid();
    Ok((vol.data, grid))
}

/// What [`write_relevance`] works from.
#[derive(Debug, Clone, Copy)]
pub struct RelevanceInputs<'a> {
    /// The interpretation run's folder.
    pub layout: &'a RelevanceLayout,
    /// Its `index.csv` ([`crate::interpretation::read_index`]).
    pub index: &'a [IndexRow],
    /// The methods to report, in the report's order (methods without maps are skipped).
    pub methods: &'a [&'a str],
    /// The template under the maps ([`RelevanceLayout::background`]).
    pub background: ArrayView3<'a, f32>,
    /// The template's grid, which every mean map must share.
    pub grid: &'a Grid,
    /// The main atlas on that grid; `None`: no region tables.
    pub atlas: Option<&'a Atlas>,
    /// AAL (the paper's atlas) on that grid, for its own tables when it is not the main atlas.
    pub aal: Option<&'a Atlas>,
    /// The resampling of the ground-truth intervals.
    pub bootstrap: &'a Bootstrap,
}

/// One mean map: method, group and voxels.
type MeanMap = (String, &'static str, Array3<f32>);

/// Writes the relevance part of the report of `root` (see the module documentation) into
/// `tables` and `figs`, and the viewer into `root`'s [`crate::html::VIEWER_DIR`]; adds the files
/// to `written`. Returns the ground-truth summary when the run has ground truth (the sanity part's
/// trust summary shows it).
pub fn write_relevance(
    inputs: &RelevanceInputs<'_>,
    root: &Path,
    tables: &Path,
    figs: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<Option<DataFrame>> {
    let methods: Vec<&str> =
        inputs.methods.iter().copied().filter(|m| inputs.index.iter().any(|r| r.method == *m)).collect();
    let maps = read_mean_maps(inputs, &methods)?;
    let viewer_dir = root.join(crate::html::VIEWER_DIR);
    let viewer_maps: Vec<ViewerMap<'_>> = maps
        .iter()
        .map(|(m, g, data)| ViewerMap {
            method: m.clone(),
            group: (*g).to_string(),
            scans: entry(inputs.index, m, g).map(|r| r.n_scans),
            data: data.view(),
        })
        .collect();
    let viewer = write_viewer(&viewer_dir, inputs.background, &inputs.grid.affine, inputs.atlas, &viewer_maps)
        .with_context(|| format!("writing the viewer into {}", viewer_dir.display()))?;
    written.extend(viewer_files(&viewer).into_iter().map(|f| viewer_dir.join(f)));

    let ad_region_tables = match inputs.atlas {
        Some(atlas) => write_region_tables(&maps, atlas, tables, figs, written)?,
        None => Vec::new(),
    };
    if let Some(aal) = inputs.aal {
        write_aal_tables(&maps, aal, tables, written)?;
    }
    let map_of = |m: &str, g: &str| maps.iter().find(|(mm, gg, _)| mm == m && *gg == g).map(|(_, _, a)| a.view());

    // Method comparison on the AD averages (the paper compared the AD heatmaps), within the brain:
    // the background is the mean preprocessed input, 0 exactly outside the brain mask.
    let ad_maps: Vec<(String, ArrayView3<f32>)> =
        methods.iter().filter_map(|&m| map_of(m, "AD").map(|v| (m.to_string(), v))).collect();
    if ad_maps.len() >= 2 {
        let brain = inputs.background.mapv(|v| v != 0.0);
        let cmp = crate::compare::method_comparison(&ad_maps, &ad_region_tables, Some(brain.view()))?;
        write_table_into(&cmp, tables, "method_comparison_AD", written)?;
        let p = figs.join("method_distance_AD.png");
        figures::distance_matrix(&cmp, (1000, 900), &p)?;
        written.push(p);
    }
    write_map_figures(inputs, &methods, &map_of, figs, written)?;
    write_scan_tables(inputs.layout, inputs.bootstrap, tables, figs, written)
}

fn entry<'a>(index: &'a [IndexRow], method: &str, group: &str) -> Option<&'a IndexRow> {
    index.iter().find(|r| r.method == method && r.group == group)
}

/// The mean maps of `methods` in the index, per method in the order of [`GROUPS`]; each must lie
/// on the template's grid.
fn read_mean_maps(inputs: &RelevanceInputs<'_>, methods: &[&str]) -> Result<Vec<MeanMap>> {
    let mut maps = Vec::new();
    for &m in methods {
        for g in GROUPS {
            let Some(row) = entry(inputs.index, m, g) else { continue };
            let path = inputs.layout.dir().join(&row.file);
            let (data, map_grid) = read_map(&path)?;
            if map_grid.shape != inputs.grid.shape {
                return Err(ReportError::Shape(format!(
                    "{}: grid {:?} differs from the background's {:?}",
                    path.display(),
                    map_grid.shape,
                    inputs.grid.shape
                )));
            }
            maps.push((m.to_string(), g, data));
        }
    }
    Ok(maps)
}

/// Region tables of every map on the main atlas (`regions`, stacked under method and group), a
/// ranked table and a bar chart per method for the AD average; returns the AD tables by method.
fn write_region_tables(
    maps: &[MeanMap],
    atlas: &Atlas,
    tables: &Path,
    figs: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<Vec<(String, DataFrame)>> {
    let mut parts: Vec<(Vec<(&str, String)>, DataFrame)> = Vec::new();
    let mut ad_tables: Vec<(String, DataFrame)> = Vec::new();
    for (m, g, data) in maps {
        let df = crate::regions::region_scores(data.view(), atlas, true)?;
        if *g == "AD" {
            ad_tables.push((m.clone(), df.clone()));
            let p = figs.join(format!("top_regions_{m}_AD.png"));
            let title = format!("{m} · AD average · top 15 regions ({})", atlas.name);
            figures::bar_chart_top_regions(&df, 15, &title, (1100, 800), &p)?;
            written.push(p);
        }
        parts.push((vec![("method", m.clone()), ("group", g.to_string())], df));
    }
    if !parts.is_empty() {
        write_table_into(&stack_with_keys(&parts)?, tables, "regions", written)?;
        // The paper's view: one ranked table per method for the AD average.
        for (name, df) in &ad_tables {
            write_table_into(df, tables, &format!("regions_{name}_AD"), written)?;
        }
    }
    Ok(ad_tables)
}

/// The region tables on AAL (62 regions after merging): `regions_<method>_AD_aal` and
/// `regions_aal`.
fn write_aal_tables(maps: &[MeanMap], aal: &Atlas, tables: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let mut parts: Vec<(Vec<(&str, String)>, DataFrame)> = Vec::new();
    for (m, g, data) in maps {
        let df = crate::regions::region_scores(data.view(), aal, true)?;
        if *g == "AD" {
            write_table_into(&df, tables, &format!("regions_{m}_AD_aal"), written)?;
        }
        parts.push((vec![("method", m.clone()), ("group", g.to_string())], df));
    }
    if !parts.is_empty() {
        write_table_into(&stack_with_keys(&parts)?, tables, "regions_aal", written)?;
    }
    Ok(())
}

/// The paper's figure, AD and CN on one colour scale per method (only when every method has the
/// group's map), and a slice grid per method of the AD average. The paper's planes (y = 80, 114,
/// 149 at 1 mm, by world coordinates); on a grid that does not hold them (e.g. the phantom), the
/// quartiles of the coronal axis.
fn write_map_figures<'m>(
    inputs: &RelevanceInputs<'_>,
    methods: &[&str],
    map_of: &dyn Fn(&str, &str) -> Option<ArrayView3<'m, f32>>,
    figs: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let grid = inputs.grid;
    let slices = figures::paper_coronal_slices(grid).unwrap_or_else(|_| {
        let ny = grid.shape[1];
        vec![ny / 4, ny / 2, 3 * ny / 4]
    });
    let scale: Vec<f32> = methods
        .iter()
        .map(|&m| {
            ["AD", "CN"]
                .iter()
                .filter_map(|g| map_of(m, g).and_then(|v| figures::overlay_max(v, 99.9)))
                .fold(0.0f32, f32::max)
        })
        .collect();
    for g in ["AD", "CN"] {
        let group_maps: Vec<(String, ArrayView3<f32>)> =
            methods.iter().filter_map(|&m| map_of(m, g).map(|v| (m.to_string(), v))).collect();
        if group_maps.len() != methods.len() || group_maps.is_empty() {
            continue;
        }
        let p = figs.join(format!("paper_figure_{g}.png"));
        let width = 260 * group_maps.len() as u32 + 120;
        figures::paper_figure(
            inputs.background,
            &group_maps,
            &slices,
            &format!("{g} average of the hold-out test scans · coronal slices {slices:?} (voxels)"),
            &OverlayScale::Fixed(scale.clone()),
            (width.max(900), 900),
            &p,
        )?;
        written.push(p);
    }
    for &m in methods {
        if let Some(v) = map_of(m, "AD") {
            let p = figs.join(format!("slices_{m}_AD.png"));
            figures::plot_slices(inputs.background, v, 6, 99.9, &format!("{m} · AD average"), (1400, 800), &p)?;
            written.push(p);
        }
    }
    Ok(())
}

/// The tables of the interpretation run per scan: per patient (top regions, temporal share), the
/// ground truth (synthetic cohorts: the scans with planted atrophy, trained model and
/// randomised-weights baseline; returns its summary), LRP conservation and timing.
fn write_scan_tables(
    layout: &RelevanceLayout,
    bootstrap: &Bootstrap,
    tables: &Path,
    figs: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<Option<DataFrame>> {
    let scan_regions = layout.scan_regions();
    if scan_regions.exists() {
        let per_scan = crate::patients::per_scan_patient_table(&read_csv(&scan_regions)?)?;
        write_table_into(&per_scan, tables, "patients", written)?;
    }
    let gt = layout.ground_truth();
    let mut gt_summary = None;
    if gt.exists() {
        use crate::ground_truth::{scan_summary, summarise, verdicts};
        let df = read_csv(&gt)?;
        write_table_into(&df, tables, "ground_truth_per_scan", written)?;
        let keys = ["method", "model"];
        let long = summarise(&df, &keys, bootstrap)?;
        write_table_into(&long, tables, "ground_truth_metrics", written)?;
        let summary = scan_summary(&df, &keys, bootstrap)?;
        write_table_into(&summary, tables, "ground_truth_summary", written)?;
        write_table_into(&verdicts(&summary)?, tables, "ground_truth_verdict", written)?;
        let p = figs.join("ground_truth.png");
        figures::ground_truth_chart(&long, (1200, 800), &p)?;
        written.push(p);
        gt_summary = Some(summary);
    }
    for (path, stem) in [(layout.lrp_conservation(), "lrp_conservation"), (layout.timing(), "relevance_timing")] {
        if path.exists() {
            write_table_into(&read_csv(&path)?, tables, stem, written)?;
        }
    }
    Ok(gt_summary)
}

#[cfg(test)]
mod tests {
    use adni_data::Affine;
    use adni_data::atlas::Region;
    use adni_data::volume::{OutputType, Volume, write_volume};

    use super::*;
    use crate::ground_truth::{GroundTruthScores, RANDOM, TRAINED, per_scan_frame};
    use crate::interpretation::read_index;
    use crate::tables::write_table;

    const SHAPE: (usize, usize, usize) = (12, 16, 12);

    fn affine() -> Affine {
        Affine::from_scale_offset([2.0; 3], [-12.0, -16.0, -12.0])
    }

    fn write_map(layout: &RelevanceLayout, file: &str, data: Array3<f32>) {
        write_volume(&layout.dir().join(file), &Volume { data, affine: affine() }, OutputType::Float32).unwrap();
    }

    /// A relevance folder: background, mean maps of `a` (AD, CN), `b` (AD) and `z` (AD, a
    /// method the report does not list), per-scan regions, ground truth, conservation, timing.
    fn relevance_folder(dir: &Path) -> RelevanceLayout {
        let layout = RelevanceLayout::new(dir);
        std::fs::create_dir_all(dir).unwrap();
        write_map(&layout, "background.nii.gz", Array3::from_shape_fn(SHAPE, |(i, j, k)| (i + j + k) as f32));
        let mut index = String::from("method,group,n_scans,file\n");
        for (m, g, peak) in [("a", "AD", 2usize), ("a", "CN", 9), ("b", "AD", 4), ("z", "AD", 5)] {
            let file = RelevanceLayout::mean_map_name(m, g);
            write_map(
                &layout,
                &file,
                Array3::from_shape_fn(SHAPE, |(i, j, _)| 1.0 / (1.0 + i.abs_diff(peak) as f32) + j as f32 * 0.01),
            );
            index.push_str(&format!("{m},{g},3,{file}\n"));
        }
        std::fs::write(layout.index(), index).unwrap();
        std::fs::write(
            layout.scan_regions(),
            "method,PTID,Image.ID,label,region,relevance_sum,score,rank\n\
             a,p1,1,AD,Hippocampus (left),3,0.75,1\na,p1,1,AD,Precentral (right),1,0.25,2\n",
        )
        .unwrap();
        let score = |mass: f64| GroundTruthScores {
            mass_accuracy: mass,
            rank_accuracy: mass,
            pointing_hit: Some(mass > 0.3),
            pointing_share: f64::NAN,
            chance: 0.1,
        };
        let mut rows = Vec::new();
        for (i, p) in ["p1", "p2", "p3"].into_iter().enumerate() {
            for (model, mass) in [(TRAINED, 0.5 + 0.05 * i as f64), (RANDOM, 0.1)] {
                let key = vec![("method", "a".to_string()), ("model", model.to_string()), ("PTID", p.to_string())];
                rows.push((key, score(mass)));
            }
        }
        write_table(&per_scan_frame(&rows).unwrap(), dir, "ground_truth").unwrap();
        std::fs::write(layout.lrp_conservation(), "split,Image.ID,model,logit,relevance_sum\nholdout,1,trained,2,1\n")
            .unwrap();
        std::fs::write(layout.timing(), "method,model,n_maps,seconds\na,trained,3,1.5\n").unwrap();
        layout
    }

    fn atlas() -> Atlas {
        let labels = Array3::from_shape_fn(SHAPE, |(i, _, _)| if i < SHAPE.0 / 2 { 1 } else { 2 });
        let regions = vec![Region::from_name(1, "Hippocampus (left)"), Region::from_name(2, "Precentral (right)")];
        Atlas::new("toy", labels, affine(), regions).unwrap()
    }

    #[test]
    fn relevance_part_writes_every_table_and_figure_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let layout = relevance_folder(&root.join("holdout").join("relevance"));
        let index = read_index(&layout).unwrap();
        let (background, grid) = read_map(&layout.background()).unwrap();
        assert_eq!(grid.shape, [12, 16, 12]);
        let atlas = atlas();
        let inputs = RelevanceInputs {
            layout: &layout,
            index: &index,
            methods: &["a", "b", "c"],
            background: background.view(),
            grid: &grid,
            atlas: Some(&atlas),
            aal: Some(&atlas),
            bootstrap: &Bootstrap { samples: 100, ..Bootstrap::default() },
        };
        let (tables, figs) = (root.join("report/tables"), root.join("report/figures"));
        let mut written = Vec::new();
        let gt = write_relevance(&inputs, root, &tables, &figs, &mut written).unwrap().unwrap();
        assert_eq!(gt.height(), 2, "trained and random rows of method a");
        assert!(written.iter().all(|p| p.is_file()), "{written:?}");
        let viewer = root.join(crate::html::VIEWER_DIR);
        let (in_viewer, rest): (Vec<&PathBuf>, Vec<&PathBuf>) = written.iter().partition(|p| p.starts_with(&viewer));
        assert!(!in_viewer.is_empty());
        let names: Vec<String> = rest.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        let table = |stem: &str| [format!("{stem}.csv"), format!("{stem}.md")];
        let mut expected: Vec<String> = vec!["top_regions_a_AD.png".into(), "top_regions_b_AD.png".into()];
        for stem in [
            "regions",
            "regions_a_AD",
            "regions_b_AD",
            "regions_a_AD_aal",
            "regions_b_AD_aal",
            "regions_aal",
            "method_comparison_AD",
        ] {
            expected.extend(table(stem));
        }
        // no CN paper figure: `b` has no CN map
        expected.extend(
            ["method_distance_AD.png", "paper_figure_AD.png", "slices_a_AD.png", "slices_b_AD.png"].map(String::from),
        );
        for stem in [
            "patients",
            "ground_truth_per_scan",
            "ground_truth_metrics",
            "ground_truth_summary",
            "ground_truth_verdict",
        ] {
            expected.extend(table(stem));
        }
        expected.push("ground_truth.png".into());
        expected.extend(table("lrp_conservation"));
        expected.extend(table("relevance_timing"));
        assert_eq!(names, expected);
        // `z` is in the index but not among the methods
        let regions = read_csv(&tables.join("regions.csv")).unwrap();
        let methods = crate::tables::column_str(&regions, "regions", "method").unwrap();
        assert!(methods.iter().all(|m| m == "a" || m == "b") && methods.iter().any(|m| m == "b"));
        let patients = read_csv(&tables.join("patients.csv")).unwrap();
        assert_eq!(crate::tables::column_f64(&patients, "p", "temporal_share").unwrap(), [0.75]);

        // without atlases: no region tables; the comparison stands on the maps alone
        let mut written = Vec::new();
        let inputs = RelevanceInputs { atlas: None, aal: None, ..inputs };
        write_relevance(&inputs, root, &tables, &figs, &mut written).unwrap();
        assert!(!written.iter().any(|p| p.to_string_lossy().contains("regions")), "{written:?}");
        assert!(written.iter().any(|p| p.ends_with("method_comparison_AD.csv")));
    }

    #[test]
    fn a_map_off_the_background_grid_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = relevance_folder(tmp.path());
        let file = RelevanceLayout::mean_map_name("b", "AD");
        write_map(&layout, &file, Array3::zeros((12, 16, 10)));
        let index = read_index(&layout).unwrap();
        let (background, grid) = read_map(&layout.background()).unwrap();
        let inputs = RelevanceInputs {
            layout: &layout,
            index: &index,
            methods: &["a", "b"],
            background: background.view(),
            grid: &grid,
            atlas: None,
            aal: None,
            bootstrap: &Bootstrap::default(),
        };
        let (t, f) = (tmp.path().join("t"), tmp.path().join("f"));
        let err = write_relevance(&inputs, tmp.path(), &t, &f, &mut Vec::new()).unwrap_err().to_string();
        assert!(
            err.contains(&file) && err.contains("[12, 16, 10] differs from the background's [12, 16, 12]"),
            "{err}"
        );
    }
}
