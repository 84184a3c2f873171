//! Atlases (tables, validation, pairing, placement) and the preprocessing for the model
//! (downsampling, z-score normaliser, on-disk cache). Fixtures are made here, in temporary
//! folders.

use std::fs;
use std::path::Path;

use adni_data::atlas::{
    Atlas, Hemisphere, Placement, Region, load_aal, load_cerebra, load_label_atlas, read_aal_table, read_cerebra_table,
    read_label_table,
};
use adni_data::preprocess::{
    CacheHit, DEFAULT_FIT_SCANS, NORM_META_FILE, NORM_STD_FILE, Normalizer, PreprocessCache, PreprocessSpec,
    apply_mask, downsample, downsample_mask, select_fit_scans,
};
use adni_data::volume::{Affine, Grid, OutputType, Volume, write_volume};
use ndarray::Array3;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

fn regions_1_to(n: i32) -> Vec<Region> {
    (1..=n).map(|l| Region::from_name(l, &format!("R{l}"))).collect()
}

fn atlas(labels: Array3<i32>, affine: Affine) -> Atlas {
    let max = labels.iter().copied().max().unwrap_or(0).max(1);
    Atlas::new("test", labels, affine, regions_1_to(max)).unwrap()
}

fn patterned(shape: (usize, usize, usize)) -> Array3<i32> {
    // distinct labels that identify the source voxel
    Array3::from_shape_fn(shape, |(i, j, k)| (1 + i + 20 * j + 400 * k) as i32)
}

mod placement {
    use super::*;

    #[test]
    fn world_placement_follows_a_three_voxel_shift() {
        let src = patterned((12, 10, 8));
        // atlas voxel a lies at world x = a + 3
        let a = atlas(src.clone(), Affine::from_scale_offset([1.0; 3], [3.0, 0.0, 0.0]));
        let target = Grid { shape: [16, 10, 8], affine: Affine::identity() };
        let placed = a.resample_to(&target, Placement::World).unwrap();
        assert_eq!(placed.affine, target.affine);
        assert_eq!(placed.regions, a.regions);
        for ((i, j, k), &v) in placed.labels.indexed_iter() {
            let want = if (3..15).contains(&i) { src[[i - 3, j, k]] } else { 0 };
            assert_eq!(v, want, "target voxel {:?}", (i, j, k));
        }
    }

    #[test]
    fn world_placement_onto_a_2mm_grid_takes_every_second_voxel() {
        let src = patterned((11, 9, 7));
        let a = atlas(src.clone(), Affine::from_scale_offset([1.0; 3], [-5.0, -4.0, -3.0]));
        let target = Grid { shape: [7, 6, 5], affine: Affine::from_scale_offset([2.0; 3], [-5.0, -4.0, -3.0]) };
        let placed = a.resample_to(&target, Placement::World).unwrap();
        for ((i, j, k), &v) in placed.labels.indexed_iter() {
            let (si, sj, sk) = (2 * i, 2 * j, 2 * k);
            let want = if si < 11 && sj < 9 && sk < 7 { src[[si, sj, sk]] } else { 0 };
            assert_eq!(v, want, "target voxel {:?}", (i, j, k));
        }
    }

    #[test]
    fn world_placement_onto_a_rotated_grid_permutes_axes() {
        let src = patterned((6, 4, 3));
        let a = atlas(src.clone(), Affine::identity());
        // target (i, j, k) lies at world (5 − j, i, k)
        let target = Grid {
            shape: [4, 6, 3],
            affine: Affine([[0.0, -1.0, 0.0, 5.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]),
        };
        let placed = a.resample_to(&target, Placement::World).unwrap();
        for ((i, j, k), &v) in placed.labels.indexed_iter() {
            assert_eq!(v, src[[5 - j, i, k]]);
        }
    }

    #[test]
    fn world_placement_rounds_to_the_nearest_voxel() {
        // a 2 mm atlas onto a 1 mm grid: target x = 0,1,2,3,4 reads atlas x = 0,0.5,1,1.5,2 → 0,1,1,2,2
        let src = patterned((3, 1, 1));
        let a = atlas(src.clone(), Affine::from_scale_offset([2.0; 3], [0.0; 3]));
        let target = Grid { shape: [5, 1, 1], affine: Affine::identity() };
        let placed = a.resample_to(&target, Placement::World).unwrap();
        let got: Vec<i32> = placed.labels.iter().copied().collect();
        assert_eq!(got, vec![src[[0, 0, 0]], src[[1, 0, 0]], src[[1, 0, 0]], src[[2, 0, 0]], src[[2, 0, 0]]]);
    }

    #[test]
    fn zoom_stretches_the_array_and_ignores_affines() {
        let src = Array3::from_shape_fn((5, 2, 2), |(i, _, _)| i as i32 + 1);
        let a = atlas(src, Affine::identity());
        let far = Grid { shape: [9, 2, 2], affine: Affine::from_scale_offset([1.0; 3], [1000.0, 0.0, 0.0]) };
        let zoomed = a.resample_to(&far, Placement::Zoom).unwrap();
        let row: Vec<i32> = (0..9).map(|i| zoomed.labels[[i, 1, 0]]).collect();
        // scipy.ndimage.zoom(np.arange(1, 6), 9/5, order=0)
        assert_eq!(row, vec![1, 2, 2, 3, 3, 4, 4, 5, 5]);
        assert_eq!(zoomed.affine, far.affine);
        let elsewhere = Grid { shape: [9, 2, 2], affine: Affine::from_scale_offset([3.0; 3], [0.0; 3]) };
        assert_eq!(a.resample_to(&elsewhere, Placement::Zoom).unwrap().labels, zoomed.labels);
        // by world coordinates the far grid sees nothing of the atlas
        assert!(a.resample_to(&far, Placement::World).unwrap().labels.iter().all(|&v| v == 0));
    }

    #[test]
    fn zoom_and_world_differ_where_the_grids_differ() {
        // a 9-voxel atlas spanning world −4…4 onto an 11-voxel grid spanning −5…5 (the AAL → MNI
        // situation in small): by world every label moves one voxel over; the zoom stretches
        let src = Array3::from_shape_fn((9, 1, 1), |(i, _, _)| i as i32 + 1);
        let a = atlas(src, Affine::from_scale_offset([1.0; 3], [-4.0, 0.0, 0.0]));
        let target = Grid { shape: [11, 1, 1], affine: Affine::from_scale_offset([1.0; 3], [-5.0, 0.0, 0.0]) };
        let world: Vec<i32> = a.resample_to(&target, Placement::World).unwrap().labels.iter().copied().collect();
        let zoom: Vec<i32> = a.resample_to(&target, Placement::Zoom).unwrap().labels.iter().copied().collect();
        assert_eq!(world, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]);
        // index map ⌊o·0.8 + ½⌋ = 0 1 2 2 3 4 5 6 6 7 8
        assert_eq!(zoom, vec![1, 2, 3, 3, 4, 5, 6, 7, 7, 8, 9]);
        let dice = adni_data::atlas::dice_per_label(
            &Array3::from_shape_vec((11, 1, 1), world).unwrap(),
            &Array3::from_shape_vec((11, 1, 1), zoom).unwrap(),
        )
        .unwrap();
        assert_eq!(dice[&5], 1.0); // the centre agrees
        assert_eq!(dice[&1], 0.0); // the edges do not
        assert!((dice[&3] - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn same_grid_placement_is_the_identity_for_both() {
        let src = patterned((7, 5, 4));
        let aff = Affine::from_scale_offset([1.0; 3], [-96.0, -132.0, -78.0]);
        let a = atlas(src.clone(), aff);
        let grid = a.grid();
        assert_eq!(a.resample_to(&grid, Placement::World).unwrap().labels, src);
        assert_eq!(a.resample_to(&grid, Placement::Zoom).unwrap().labels, src);
    }

    #[test]
    fn singular_affine_is_refused() {
        let a = atlas(patterned((2, 2, 2)), Affine::from_scale_offset([1.0, 0.0, 1.0], [0.0; 3]));
        let g = Grid { shape: [2, 2, 2], affine: Affine::identity() };
        assert!(a.resample_to(&g, Placement::World).is_err());
        assert!(a.resample_to(&g, Placement::Zoom).is_ok());
    }
}

mod tables {
    use super::*;

    const CEREBRA: &str = "Mindboggle ID,Label Name,RH Label,LH Labels,Notes,Dice Kappa\n\
        2006,Entorhinal,36,87,Improved delimitation ,0.78\n\
        16,Brainstem,11,62,\"Completed filling, removed labelled voxels \",0.65\n\
        53,Hippocampus,48,99,,0.81\n";

    fn label_volume(dir: &Path, name: &str, values: &[f32]) -> std::path::PathBuf {
        let mut data = Array3::<f32>::zeros((4, 3, 2));
        for (i, &v) in values.iter().enumerate() {
            data[[i % 4, (i / 4) % 3, i / 12]] = v;
        }
        let p = dir.join(name);
        write_volume(&p, &Volume { data, affine: Affine::identity() }, OutputType::Float32).unwrap();
        p
    }

    #[test]
    fn cerebra_rows_give_a_right_and_a_left_region() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(dir.path(), "CerebrA_LabelDetails.csv", CEREBRA);
        let regions = read_cerebra_table(&csv).unwrap();
        let labels: Vec<i32> = regions.iter().map(|r| r.label).collect();
        assert_eq!(labels, vec![11, 36, 48, 62, 87, 99]);
        let hip_r = &regions[2];
        assert_eq!(hip_r.name, "Hippocampus (right)");
        assert_eq!(hip_r.pair_name, "Hippocampus");
        assert_eq!(hip_r.hemisphere, Some(Hemisphere::Right));
        assert_eq!(regions[5].name, "Hippocampus (left)");
        assert_eq!(regions[5].hemisphere, Some(Hemisphere::Left));

        let nii = label_volume(dir.path(), "cerebra.nii", &[0.0, 11.0, 36.0, 48.0, 62.0, 87.0, 99.0, 36.0]);
        let atlas = load_cerebra(&nii, &csv).unwrap();
        assert_eq!(atlas.name, "CerebrA");
        let groups = atlas.pair_groups();
        assert_eq!(
            groups,
            vec![
                ("Brainstem".to_string(), vec![11, 62]),
                ("Entorhinal".to_string(), vec![36, 87]),
                ("Hippocampus".to_string(), vec![48, 99])
            ]
        );
        let vols = atlas.region_volumes();
        assert_eq!(vols[&36], 2);
        assert_eq!(vols[&11], 1);
        assert_eq!(vols.len(), 6);
    }

    #[test]
    fn cerebra_malformed_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let bad = CEREBRA.replace("53,Hippocampus,48,99", "53,Hippocampus,4x8,99");
        let csv = write(dir.path(), "bad.csv", &bad);
        let err = read_cerebra_table(&csv).unwrap_err().to_string();
        assert!(err.contains(&csv.display().to_string()), "{err}");
        assert!(err.contains("line 4") && err.contains("RH Label") && err.contains("4x8"), "{err}");

        let csv = write(dir.path(), "short.csv", &format!("{CEREBRA}7,Cuneus\n"));
        let err = read_cerebra_table(&csv).unwrap_err().to_string();
        assert!(err.contains("line 5"), "{err}");

        let csv = write(dir.path(), "quote.csv", &format!("{CEREBRA}7,Cuneus,43,94,\"open,0.6\n"));
        let err = read_cerebra_table(&csv).unwrap_err().to_string();
        assert!(err.contains("line 5") && err.contains("quoted"), "{err}");

        let csv = write(dir.path(), "header.csv", "ID,Name,Right,Left\n1,A,2,3\n");
        let err = read_cerebra_table(&csv).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("RH Label"), "{err}");

        let csv = write(dir.path(), "dup.csv", &format!("{CEREBRA}7,Cuneus,43,36,,0.6\n"));
        let err = read_cerebra_table(&csv).unwrap_err().to_string();
        assert!(err.contains("line 5") && err.contains("36") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn aal_lines_give_sides_and_pair_names() {
        let dir = tempfile::tempdir().unwrap();
        let txt = write(dir.path(), "AAL.txt", "1\tPrecentral_L\n2\tPrecentral_R\n\n109\tVermis_1_2\n");
        let regions = read_aal_table(&txt).unwrap();
        assert_eq!(regions.len(), 3);
        assert_eq!(regions[0].pair_name, "Precentral");
        assert_eq!(regions[0].hemisphere, Some(Hemisphere::Left));
        assert_eq!(regions[1].hemisphere, Some(Hemisphere::Right));
        assert_eq!(regions[2].pair_name, "Vermis_1_2");
        assert_eq!(regions[2].hemisphere, None);
    }

    #[test]
    fn aal_malformed_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let txt = write(dir.path(), "AAL.txt", "1\tPrecentral_L\nPrecentral_R\t2\n");
        let err = read_aal_table(&txt).unwrap_err().to_string();
        assert!(err.contains(&txt.display().to_string()) && err.contains("line 2"), "{err}");
        let txt = write(dir.path(), "AAL2.txt", "1\tPrecentral_L\n2\tPrecentral_R\n3\n");
        let err = read_aal_table(&txt).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        let txt = write(dir.path(), "AAL3.txt", "");
        assert!(read_aal_table(&txt).is_err());
        let missing = dir.path().join("none.txt");
        assert!(read_aal_table(&missing).unwrap_err().to_string().contains(&missing.display().to_string()));
    }

    /// An AAL-like list: 54 left/right pairs (labels 1–108, left first) and 8 vermis labels.
    fn aal_like_text() -> String {
        let mut s = String::new();
        for p in 0..54 {
            s.push_str(&format!("{}\tArea{}_L\n{}\tArea{}_R\n", 2 * p + 1, p, 2 * p + 2, p));
        }
        for (n, v) in ["1_2", "3", "4_5", "6", "7", "8", "9", "10"].iter().enumerate() {
            s.push_str(&format!("{}\tVermis_{v}\n", 109 + n));
        }
        s
    }

    #[test]
    fn aal_pairs_merge_into_62_groups() {
        let dir = tempfile::tempdir().unwrap();
        let txt = write(dir.path(), "AAL.txt", &aal_like_text());
        let labels = Array3::from_shape_fn((4, 29, 2), |(i, j, k)| if k == 0 { (1 + i + 4 * j) as i32 } else { 0 });
        let nii = dir.path().join("AAL.nii.gz");
        write_volume(&nii, &Volume { data: labels.mapv(|v| v as f32), affine: Affine::identity() }, OutputType::Uint8)
            .unwrap();
        let atlas = load_aal(&nii, &txt).unwrap();
        assert_eq!(atlas.labels, labels);
        assert_eq!(atlas.regions.len(), 116);
        let groups = atlas.pair_groups();
        assert_eq!(groups.len(), 62);
        assert_eq!(groups.iter().filter(|(_, l)| l.len() == 2).count(), 54);
        assert_eq!(groups[0], ("Area0".to_string(), vec![1, 2]));
        assert_eq!(groups[53], ("Area53".to_string(), vec![107, 108]));
        assert_eq!(groups[54], ("Vermis_1_2".to_string(), vec![109]));
        assert!(atlas.region_volumes().values().all(|&n| n == 1));
    }

    #[test]
    fn unknown_label_values_are_refused() {
        let labels = Array3::from_shape_fn((3, 3, 3), |(i, j, _)| [0, 1, 7][i] + if j == 2 { 2 } else { 0 });
        // values 0, 1, 7, 2, 3, 9: 3, 7 and 9 lack a region
        let err = Atlas::new("x", labels.clone(), Affine::identity(), regions_1_to(2)).unwrap_err().to_string();
        assert!(err.contains("3, 7, 9"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let txt = write(dir.path(), "AAL.txt", "1\tA_L\n2\tA_R\n");
        let nii = dir.path().join("labels.nii");
        write_volume(&nii, &Volume { data: labels.mapv(|v| v as f32), affine: Affine::identity() }, OutputType::Int16)
            .unwrap();
        let err = load_aal(&nii, &txt).unwrap_err().to_string();
        assert!(err.contains(&nii.display().to_string()) && err.contains("3, 7, 9"), "{err}");
    }

    #[test]
    fn inconsistent_tables_and_volumes_are_refused() {
        let labels = Array3::from_elem((2, 2, 2), 1);
        let mut dup = regions_1_to(2);
        dup.push(Region::from_name(2, "again"));
        assert!(Atlas::new("x", labels.clone(), Affine::identity(), dup).is_err());
        let mut zero = regions_1_to(1);
        zero.push(Region::from_name(0, "background"));
        assert!(Atlas::new("x", labels, Affine::identity(), zero).is_err());

        let dir = tempfile::tempdir().unwrap();
        let csv = write(dir.path(), "t.csv", CEREBRA);
        let nii = label_volume(dir.path(), "frac.nii", &[11.0, 36.5]);
        let err = load_cerebra(&nii, &csv).unwrap_err().to_string();
        assert!(err.contains(&nii.display().to_string()) && err.contains("36.5"), "{err}");
    }

    #[test]
    fn generic_label_csv_loads_with_sides_from_names() {
        let dir = tempfile::tempdir().unwrap();
        let csv =
            write(dir.path(), "labels.csv", "label,name\n2,Right-Hippocampus\n1,Left-Hippocampus\n3,Brain-Stem\n");
        let regions = read_label_table(&csv).unwrap();
        assert_eq!(regions.iter().map(|r| r.label).collect::<Vec<_>>(), vec![1, 2, 3]);
        let nii = label_volume(dir.path(), "l.nii", &[1.0, 2.0, 3.0]);
        let atlas = load_label_atlas("aseg", &nii, &csv).unwrap();
        assert_eq!(atlas.pair_groups(), vec![("Hippocampus".into(), vec![1, 2]), ("Brain-Stem".into(), vec![3])]);
        let bad = write(dir.path(), "bad.csv", "label,name\n1,A\ntwo,B\n");
        let err = read_label_table(&bad).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains(&bad.display().to_string()), "{err}");
    }
}

mod downsampling {
    use super::*;

    #[test]
    fn constant_volume_stays_constant_including_borders() {
        for (shape, f) in [((9, 8, 7), 2), ((10, 7, 5), 3), ((4, 4, 4), 4), ((5, 6, 7), 1)] {
            let vol = Volume { data: Array3::from_elem(shape, 3.7f32), affine: Affine::identity() };
            let out = downsample(&vol, f);
            assert!(out.data.iter().all(|&v| v == 3.7), "factor {f}: {:?}", out.data);
        }
    }

    #[test]
    fn grid_equals_grid_downsampled() {
        let mni = Grid::mni152_1mm();
        let vol = Volume { data: Array3::zeros(mni.shape), affine: mni.affine };
        let out = downsample(&vol, 2);
        assert_eq!(out.grid(), mni.downsampled(2));
        assert_eq!(out.data.shape(), &[97, 115, 97]);
        assert_eq!(out.affine, Affine::from_scale_offset([2.0; 3], [-96.0, -132.0, -78.0]));
        let small = Volume { data: Array3::zeros((10, 11, 12)), affine: mni.affine };
        assert_eq!(downsample(&small, 3).grid(), small.grid().downsampled(3));
    }

    /// The tent weights of the outputs around input `x` along one axis of length `n`.
    fn tent_1d(n: usize, f: usize, x: usize) -> Vec<f64> {
        (0..n.div_ceil(f))
            .map(|o| {
                let c = f * o;
                let lo = c.saturating_sub(f - 1);
                let hi = (c + f - 1).min(n - 1);
                let total: f64 = (lo..=hi).map(|t| (f - t.abs_diff(c)) as f64).sum();
                if x.abs_diff(c) < f { (f - x.abs_diff(c)) as f64 / total } else { 0.0 }
            })
            .collect()
    }

    #[test]
    fn a_spike_spreads_with_the_tent_weights() {
        for (n, f, spike) in [(11, 2, [5, 5, 5]), (11, 2, [4, 6, 0]), (13, 3, [7, 6, 12]), (13, 3, [0, 1, 2])] {
            let mut data = Array3::<f32>::zeros((n, n, n));
            data[spike] = 1.0;
            let out = downsample(&Volume { data, affine: Affine::identity() }, f);
            let w: Vec<Vec<f64>> = spike.iter().map(|&x| tent_1d(n, f, x)).collect();
            for ((i, j, k), &v) in out.data.indexed_iter() {
                let want = w[0][i] * w[1][j] * w[2][k];
                assert!(
                    (v as f64 - want).abs() < 1e-7,
                    "spike {spike:?} f {f}: out {:?} = {v}, want {want}",
                    (i, j, k)
                );
            }
        }
        // the interior case by hand: factor 2, spike between two output voxels → ¼ per axis
        let mut data = Array3::<f32>::zeros((11, 11, 11));
        data[[5, 5, 5]] = 64.0;
        let out = downsample(&Volume { data, affine: Affine::identity() }, 2);
        assert_eq!(out.data[[2, 2, 2]], 1.0);
        assert_eq!(out.data[[3, 3, 2]], 1.0);
        assert_eq!(out.data[[1, 2, 2]], 0.0);
        assert_eq!(out.data.sum(), 8.0);
    }

    #[test]
    fn mask_downsampling_thresholds_at_one_half() {
        let mask = Array3::from_shape_fn((9, 4, 4), |(i, _, _)| if i < 5 { 1.0 } else { 0.0 });
        let out = downsample_mask(&Volume { data: mask, affine: Affine::identity() }, 2);
        // outputs sit on inputs 0,2,4,6,8: 0 and 2 lie inside; 4 averages inputs 3,4,5 (values
        // 1,1,0, weights 1,2,1) to ¾ ≥ ½; 6 and 8 see only zeros
        let row: Vec<f32> = (0..5).map(|i| out.data[[i, 1, 1]]).collect();
        assert_eq!(row, vec![1.0, 1.0, 1.0, 0.0, 0.0]);
        assert!(out.data.iter().all(|&v| v == 0.0 || v == 1.0));
    }

    #[test]
    fn apply_mask_zeroes_outside_and_checks_shape() {
        let mut data = Array3::from_elem((2, 2, 2), 5.0f32);
        let mask = Array3::from_shape_fn((2, 2, 2), |(i, _, _)| if i == 0 { 1.0 } else { 0.4 });
        apply_mask(&mut data, &mask).unwrap();
        assert_eq!(data.sum(), 20.0);
        assert_eq!(data[[1, 0, 0]], 0.0);
        let err = apply_mask(&mut data, &Array3::zeros((2, 2, 3))).unwrap_err().to_string();
        assert!(err.contains("[2, 2, 3]") && err.contains("[2, 2, 2]"), "{err}");
    }
}

mod normalizer {
    use super::*;
    use proptest::prelude::*;

    const SHAPE: (usize, usize, usize) = (4, 3, 2);

    fn scans(scales: &[f32]) -> Vec<adni_data::Result<(i64, Volume)>> {
        scales
            .iter()
            .enumerate()
            .map(|(n, &a)| {
                let data = Array3::from_shape_fn(SHAPE, |(i, j, k)| a * (1 + i + 4 * j + 12 * k) as f32);
                Ok((100 + n as i64, Volume { data, affine: Affine::identity() }))
            })
            .collect()
    }

    #[test]
    fn fit_gives_known_mean_and_population_std() {
        let norm = Normalizer::fit(scans(&[1.0, 2.0, 6.0]), None).unwrap();
        assert_eq!(norm.n_scans, 3);
        assert_eq!(norm.image_ids, vec![100, 101, 102]);
        let sd = (14.0f64 / 3.0).sqrt();
        for ((i, j, k), &m) in norm.mean.indexed_iter() {
            let v = (1 + i + 4 * j + 12 * k) as f64;
            assert!((m as f64 - 3.0 * v).abs() < 1e-5 * v, "mean at {:?}", (i, j, k));
            assert!((norm.std[[i, j, k]] as f64 - sd * v).abs() < 1e-5 * v, "std at {:?}", (i, j, k));
        }
    }

    #[test]
    fn fit_keeps_precision_for_large_offsets() {
        let vols: Vec<_> = [10000.0f32, 10001.0, 10002.0]
            .iter()
            .enumerate()
            .map(|(n, &v)| Ok((n as i64, Volume { data: Array3::from_elem(SHAPE, v), affine: Affine::identity() })))
            .collect();
        let norm = Normalizer::fit(vols, None).unwrap();
        assert!(norm.mean.iter().all(|&m| m == 10001.0));
        let want = (2.0f64 / 3.0).sqrt() as f32;
        assert!(norm.std.iter().all(|&s| (s - want).abs() < 1e-6), "{:?}", norm.std);
    }

    #[test]
    fn apply_z_scores_and_zeroes_outside_the_mask() {
        let mask = Array3::from_shape_fn(SHAPE, |(i, _, _)| if i < 2 { 1.0 } else { 0.0 });
        let norm = Normalizer::fit(scans(&[1.0, 2.0, 6.0]), Some(mask)).unwrap();
        // x = mean + 2·std → 2 inside the mask, 0 outside
        let mut x = &norm.mean + &(&norm.std * 2.0);
        norm.apply(&mut x).unwrap();
        for ((i, j, k), &v) in x.indexed_iter() {
            if i < 2 {
                assert!((v - 2.0).abs() < 1e-5, "{v} at {:?}", (i, j, k));
            } else {
                assert_eq!(v, 0.0);
            }
        }
        // without a mask: where every fitted scan was 0, a masked (zero) input stays 0
        let zeros: Vec<_> =
            (0..3).map(|n| Ok((n, Volume { data: Array3::zeros(SHAPE), affine: Affine::identity() }))).collect();
        let flat = Normalizer::fit(zeros, None).unwrap();
        let mut z = Array3::<f32>::zeros(SHAPE);
        flat.apply(&mut z).unwrap();
        assert!(z.iter().all(|&v| v == 0.0));
        assert!(flat.apply(&mut Array3::zeros((1, 1, 1))).is_err());
    }

    #[test]
    fn fit_refuses_mixed_grids_empty_input_and_bad_masks() {
        let mut v = scans(&[1.0, 2.0]);
        v.push(Ok((7, Volume { data: Array3::zeros((4, 3, 3)), affine: Affine::identity() })));
        let err = Normalizer::fit(v, None).unwrap_err().to_string();
        assert!(err.contains("image 7"), "{err}");
        let mut v = scans(&[1.0]);
        v.push(Ok((8, Volume { data: Array3::zeros(SHAPE), affine: Affine::from_scale_offset([1.0; 3], [1.0; 3]) })));
        assert!(Normalizer::fit(v, None).is_err());
        assert!(Normalizer::fit(Vec::new(), None).is_err());
        assert!(Normalizer::fit(scans(&[1.0]), Some(Array3::zeros((1, 2, 3)))).is_err());
    }

    #[test]
    fn save_and_load_round_trip_identically() {
        let dir = tempfile::tempdir().unwrap();
        let aff = Affine::from_scale_offset([2.0; 3], [-96.0, -132.0, -78.0]);
        let vols: Vec<_> = scans(&[1.0, 2.5, 6.0])
            .into_iter()
            .map(|r| r.map(|(id, v)| (id, Volume { data: v.data, affine: aff })))
            .collect();
        for mask in [None, Some(Array3::from_shape_fn(SHAPE, |(_, j, _)| if j == 1 { 1.0 } else { 0.0 }))] {
            let norm = Normalizer::fit(vols.iter().map(|r| Ok(r.as_ref().unwrap().clone())), mask).unwrap();
            let out = dir.path().join(if norm.mask.is_some() { "masked" } else { "plain" });
            norm.save(&out).unwrap();
            let back = Normalizer::load(&out).unwrap();
            assert_eq!(back, norm);
            let json: serde_json::Value = serde_json::from_slice(&fs::read(out.join(NORM_META_FILE)).unwrap()).unwrap();
            assert_eq!(json["n_scans"], 3);
            assert_eq!(json["epsilon"], 1e-10);
            assert_eq!(json["grid"]["shape"], serde_json::json!([4, 3, 2]));
            assert!(fs::read_dir(&out).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with(".tmp")));
        }
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let norm = Normalizer::fit(scans(&[1.0, 2.0]), None).unwrap();
        norm.save(dir.path()).unwrap();
        fs::remove_file(dir.path().join(NORM_STD_FILE)).unwrap();
        let err = Normalizer::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(NORM_STD_FILE), "{err}");
        fs::write(dir.path().join(NORM_META_FILE), "{\"n_scans\": 2}").unwrap();
        let err = Normalizer::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(NORM_META_FILE), "{err}");
        let err = Normalizer::load(&dir.path().join("nowhere")).unwrap_err().to_string();
        assert!(err.contains(NORM_META_FILE), "{err}");
    }

    #[test]
    fn fit_scan_selection_is_seeded_sorted_and_capped() {
        let ids: Vec<i64> = (0..500).map(|i| 1000 + 7 * i).collect();
        let a = select_fit_scans(&ids, DEFAULT_FIT_SCANS, 42);
        assert_eq!(a.len(), 200);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a.iter().all(|id| ids.contains(id)));
        let mut reversed = ids.clone();
        reversed.reverse();
        assert_eq!(select_fit_scans(&reversed, 200, 42), a);
        assert_ne!(select_fit_scans(&ids, 200, 43), a);
        assert_eq!(select_fit_scans(&[5, 3, 5, 1], 200, 0), vec![1, 3, 5]);
    }

    proptest! {
        #[test]
        fn fit_scan_selection_properties(ids in proptest::collection::vec(-50i64..50, 0..80), max_n in 0usize..40, seed in any::<u64>()) {
            let got = select_fit_scans(&ids, max_n, seed);
            let mut distinct = ids.clone();
            distinct.sort_unstable();
            distinct.dedup();
            prop_assert_eq!(got.len(), distinct.len().min(max_n));
            prop_assert!(got.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(got.iter().all(|id| distinct.contains(id)));
            prop_assert_eq!(select_fit_scans(&ids, max_n, seed), got);
        }
    }
}

mod cache {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn grid() -> Grid {
        Grid { shape: [9, 8, 7], affine: Affine::from_scale_offset([1.0; 3], [-4.0, -3.0, -2.0]) }
    }

    fn fixture(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let g = grid();
        let mut data = Array3::from_shape_fn(g.shape, |(i, j, k)| (i * 100 + j * 10 + k) as f32);
        data[[1, 1, 1]] = f32::NAN;
        data[[2, 2, 2]] = f32::INFINITY;
        let scan = dir.join("scan.nii.gz");
        write_volume(&scan, &Volume { data, affine: g.affine }, OutputType::Float32).unwrap();
        let mask = Array3::from_shape_fn(g.shape, |(i, _, _)| if (1..7).contains(&i) { 1.0 } else { 0.0 });
        let mask_path = dir.join("mask.nii");
        write_volume(&mask_path, &Volume { data: mask, affine: g.affine }, OutputType::Int16).unwrap();
        (scan, mask_path)
    }

    fn touch(path: &Path, secs_later: u64) {
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(secs_later)).unwrap();
    }

    #[test]
    fn second_call_hits_and_changes_miss() {
        let dir = tempfile::tempdir().unwrap();
        let (scan, mask) = fixture(dir.path());
        let cache = PreprocessCache::new(dir.path().join("cache"));
        let spec = PreprocessSpec { mask: Some(mask.clone()), downsample: 2 };

        let (first, hit) = cache.load_or_compute(&scan, &spec, &grid()).unwrap();
        assert_eq!(hit, CacheHit::Miss);
        assert_eq!(first.grid(), grid().downsampled(2));

        // the value is NaN → 0, masked, downsampled
        let (raw, _, _) = adni_data::volume::read_volume(&scan).unwrap();
        let mut manual = raw.data.clone();
        let (m, _, _) = adni_data::volume::read_volume(&mask).unwrap();
        apply_mask(&mut manual, &m.data).unwrap();
        let manual = downsample(&Volume { data: manual, affine: grid().affine }, 2);
        assert_eq!(first, manual);
        assert!(first.data.iter().all(|v| v.is_finite()));

        let (second, hit) = cache.load_or_compute(&scan, &spec, &grid()).unwrap();
        assert_eq!(hit, CacheHit::Hit);
        assert_eq!(second, first);

        // entries are uncompressed NIfTI (sizeof_hdr 348 in the first bytes), one per key
        let entry = cache.entry_path(&scan, &spec, &grid()).unwrap();
        assert!(entry.to_string_lossy().ends_with(".nii"));
        let head = fs::read(&entry).unwrap();
        assert!(head[..4] == 348i32.to_le_bytes() || head[..4] == 348i32.to_be_bytes());

        let full = PreprocessSpec { mask: Some(mask.clone()), downsample: 1 };
        assert_eq!(cache.load_or_compute(&scan, &full, &grid()).unwrap().1, CacheHit::Miss);
        assert_eq!(cache.load_or_compute(&scan, &full, &grid()).unwrap().1, CacheHit::Hit);
        let unmasked = PreprocessSpec { mask: None, downsample: 2 };
        assert_eq!(cache.load_or_compute(&scan, &unmasked, &grid()).unwrap().1, CacheHit::Miss);
        assert_eq!(cache.load_or_compute(&scan, &spec, &grid()).unwrap().1, CacheHit::Hit);

        touch(&scan, 5);
        assert_eq!(cache.load_or_compute(&scan, &spec, &grid()).unwrap().1, CacheHit::Miss);
        assert_eq!(cache.load_or_compute(&scan, &spec, &grid()).unwrap().1, CacheHit::Hit);
        touch(&mask, 5);
        assert_eq!(cache.load_or_compute(&scan, &spec, &grid()).unwrap().1, CacheHit::Miss);

        let names: Vec<String> =
            fs::read_dir(&cache.dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| n.ends_with(".nii") && !n.starts_with(".tmp")), "{names:?}");
        assert_eq!(names.len(), 5);
    }

    #[test]
    fn wrong_grid_and_missing_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (scan, _) = fixture(dir.path());
        let cache = PreprocessCache::new(dir.path().join("cache"));
        let spec = PreprocessSpec::default();
        let shifted = Grid { shape: grid().shape, affine: Affine::from_scale_offset([1.0; 3], [-4.0, -3.0, 0.0]) };
        let err = cache.load_or_compute(&scan, &spec, &shifted).unwrap_err().to_string();
        assert!(err.contains(&scan.display().to_string()) && err.contains("affine"), "{err}");
        let missing = dir.path().join("absent.nii.gz");
        let err = cache.load_or_compute(&missing, &spec, &grid()).unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        let bad_mask = PreprocessSpec { mask: Some(dir.path().join("no_mask.nii")), downsample: 1 };
        let err = cache.load_or_compute(&scan, &bad_mask, &grid()).unwrap_err().to_string();
        assert!(err.contains("no_mask.nii"), "{err}");
        let zero = PreprocessSpec { mask: None, downsample: 0 };
        assert!(cache.load_or_compute(&scan, &zero, &grid()).unwrap_err().to_string().contains("downsample"));
    }
}
