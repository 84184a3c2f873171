//! `cargo xtask reproduce-paper --quick` end to end, in a temporary folder: the shipped quick
//! config (`configs/reproduce-quick.toml`) with every path moved into the folder. The command
//! itself checks that every expected file exists and is non-empty; this test also checks a few
//! contents, the skip-when-complete behaviour and the single-scan `interpret` mode on the trained
//! model.

mod common;

use std::path::{Path, PathBuf};

use common::{quick_config_in, text, xtask};

#[test]
fn reproduce_paper_quick_runs_end_to_end_and_skips_complete_stages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = quick_config_in(tmp.path());
    let cfg_s = cfg.to_str().expect("utf-8 path");

    let out = xtask(&["reproduce-paper", "--config", cfg_s]);
    assert!(out.status.success(), "reproduce-paper failed:\n{}", text(&out));
    assert!(text(&out).contains("expected files exist and are non-empty"), "{}", text(&out));

    let root = tmp.path().join("results/reproduce-quick");
    let report = std::fs::read_to_string(root.join("REPORT.md")).expect("REPORT.md");
    for needle in
        ["## Timings", "## Classification", "## Figures", "paper_figure_AD.png", "## What differs from the paper"]
    {
        assert!(report.contains(needle), "REPORT.md lacks {needle:?}");
    }
    // Every figure REPORT.md links exists.
    for line in report.lines().filter(|l| l.starts_with("![")) {
        let link = line.split("](").nth(1).and_then(|s| s.strip_suffix(')')).expect("image link");
        assert!(root.join(link).is_file(), "REPORT.md links a missing figure {link}");
    }
    // Maps: all nine methods, three groups, and the per-scan index.
    let index = std::fs::read_to_string(root.join("holdout/relevance/index.csv")).expect("index.csv");
    assert_eq!(index.lines().count(), 1 + 9 * 3, "index.csv:\n{index}");

    // REPORT.html: REPORT.md for the browser, with a NiiVue viewer page per map, all in the run
    // folder (nothing from the network).
    let html = std::fs::read_to_string(root.join("REPORT.html")).expect("REPORT.html");
    for needle in [
        "<h2 id=\"interactive-relevance-maps\"",
        "class=\"nv-viewer\"",
        "<script src=\"report/viewer/niivue.umd.js\"></script>",
        "<details class=\"table\" id=\"table-regions\">",
        "<h2 id=\"what-differs-from-the-paper\"",
    ] {
        assert!(html.contains(needle), "REPORT.html lacks {needle:?}");
    }
    assert!(!html.contains("src=\"http"), "REPORT.html loads something from the network");
    for line in index.lines().skip(1) {
        let mut cells = line.split(',');
        let (m, g) = (cells.next().unwrap(), cells.next().unwrap());
        assert!(html.contains(&format!("href=\"report/viewer/index.html#{m}/{g}\"")), "no viewer link for {m} {g}");
        assert!(root.join(format!("report/viewer/data/{m}_{g}.js")).is_file(), "no viewer data for {m} {g}");
    }
    for f in ["index.html", "niivue.umd.js", "viewer.js", "data/anatomy.js", "LICENSE-niivue.txt"] {
        assert!(root.join("report/viewer").join(f).is_file(), "report/viewer/{f} missing");
    }
    // LRP states its conservation per scan and in REPORT.md.
    assert!(root.join("holdout/relevance/lrp_conservation.csv").is_file());
    assert!(report.contains("\n## LRP conservation"), "REPORT.md has no LRP conservation section");

    // The sanity checks: cascade over all seven layers, the shuffled-label model at chance on
    // its own table, deletion curves of both kinds, and their section in REPORT.md.
    let sanity = root.join("holdout/sanity");
    let cascade = std::fs::read_to_string(sanity.join("cascade.csv")).expect("cascade.csv");
    for layer in ["dense_3", "dense_2", "dense_1", "block4", "block3", "block2", "block1"] {
        assert!(cascade.contains(&format!(",{layer},lrp,")), "cascade.csv lacks {layer} for lrp");
    }
    let shuffled = std::fs::read_to_string(sanity.join("shuffled_model.csv")).expect("shuffled_model.csv");
    assert!(shuffled.lines().nth(2).is_some_and(|l| l.starts_with("shuffled,")), "{shuffled}");
    assert!(sanity.join("shuffled/folds/holdout/fold_result.json").is_file());
    let deletion = std::fs::read_to_string(sanity.join("deletion.csv")).expect("deletion.csv");
    for kind in ["voxels,occlusion,relevance", "voxels,occlusion,random", "regions,lrp,relevance"] {
        assert!(deletion.contains(kind), "deletion.csv lacks {kind}");
    }
    assert!(report.contains("## Can the maps be trusted?"), "REPORT.md has no sanity section");

    // A second call finds every stage complete.
    let again = xtask(&["reproduce-paper", "--config", cfg_s]);
    assert!(again.status.success(), "second run failed:\n{}", text(&again));
    let t = text(&again);
    assert!(t.contains("already finished (skipped)") && t.contains("is complete"), "stages were redone:\n{t}");
    assert!(t.contains("sanity: ") && !t.contains("training the shuffled-label model"), "sanity was redone:\n{t}");

    // `report` on the reproduction writes REPORT.md (and REPORT.html) again from the tables it
    // writes, keeping the stage table: no prose left over from earlier tables.
    let md_path = root.join("REPORT.md");
    let stale = format!("{report}\nSTALE-PROSE-MARKER\n");
    std::fs::write(&md_path, &stale).unwrap();
    let rep = xtask(&["report", "--run", root.to_str().unwrap()]);
    assert!(rep.status.success(), "report failed:\n{}", text(&rep));
    let again_md = std::fs::read_to_string(&md_path).expect("REPORT.md");
    let html = std::fs::read_to_string(root.join("REPORT.html")).expect("REPORT.html");
    assert!(!again_md.contains("STALE-PROSE-MARKER") && !html.contains("STALE-PROSE-MARKER"), "REPORT.md kept");
    for stage in ["| data |", "| train-cv |", "| interpret |", "| **total** |"] {
        assert!(again_md.contains(stage), "REPORT.md lost the stage row {stage}:\n{again_md}");
    }

    // Single-scan mode on the trained hold-out model: one map of the scan's grid.
    let scan = walk_first_nii(&tmp.path().join("synth/images")).expect("a scan");
    let fold = root.join("holdout/folds/holdout");
    let map = tmp.path().join("one_map.nii.gz");
    let one = xtask(&[
        "interpret",
        "--weights",
        fold.to_str().unwrap(),
        "--scan",
        scan.to_str().unwrap(),
        "--method",
        "occlusion",
        "--size",
        "10",
        "--stride",
        "10",
        "--out",
        map.to_str().unwrap(),
    ]);
    assert!(one.status.success(), "interpret --scan failed:\n{}", text(&one));
    let info = xtask(&["inspect", map.to_str().unwrap()]);
    assert!(text(&info).contains("[40, 48, 40]"), "{}", text(&info));

    // The same scan placed 10 mm elsewhere (or flipped) has the right shape but is not on the
    // run's grid: refused, naming the file, rather than explained against the wrong voxels.
    let (mut moved, _, _) = adni_data::volume::read_volume(&scan).unwrap();
    moved.affine.0[0][3] += 10.0;
    let moved_path = tmp.path().join("moved.nii.gz");
    adni_data::volume::write_volume(&moved_path, &moved, adni_data::volume::OutputType::Float32).unwrap();
    let sensitivity_of_moved = |extra: &[&str]| {
        let mut args = vec!["interpret", "--weights", fold.to_str().unwrap(), "--scan", moved_path.to_str().unwrap()];
        args.extend(["--method", "sensitivity", "--out", map.to_str().unwrap()]);
        args.extend(extra);
        xtask(&args)
    };
    let refused = sensitivity_of_moved(&[]);
    let t = text(&refused);
    assert!(!refused.status.success() && t.contains("moved.nii.gz") && t.contains("affine differs"), "{t}");
    // Taken as z-scored already (`--normalization none`), the moved scan is still refused, against
    // the grid the fold's normalisation records.
    let refused = sensitivity_of_moved(&["--normalization", "none"]);
    let t = text(&refused);
    assert!(!refused.status.success() && t.contains("moved.nii.gz") && t.contains("fold's scans"), "{t}");

    // An unknown layer is a clear error naming the valid ones.
    let bad = xtask(&[
        "interpret",
        "--weights",
        fold.to_str().unwrap(),
        "--scan",
        scan.to_str().unwrap(),
        "--method",
        "grad-cam",
        "--layer",
        "conv9",
        "--out",
        map.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("unknown layer `conv9`; valid layers: conv1, block1"), "{}", text(&bad));

    // Sharded: three shards and their merge give the unsharded run's tables byte for byte and its
    // mean maps within float rounding (each shard's mean is rounded to f32 once).
    let rel = root.join("holdout/relevance");
    let tables = ["scans.csv", "scan_regions.csv", "ground_truth.csv", "lrp_conservation.csv", "index.csv"];
    let before: Vec<Vec<u8>> = tables.iter().map(|t| std::fs::read(rel.join(t)).expect("table")).collect();
    let maps = ["maps/lrp_AD.nii.gz", "maps/occlusion_all.nii.gz", "maps/sensitivity_CN.nii.gz", "background.nii.gz"];
    let read = |f: &str| adni_data::volume::read_volume(&rel.join(f)).expect("map").0.data;
    let maps_before: Vec<_> = maps.iter().map(|f| read(f)).collect();
    let holdout = root.join("holdout");
    let run = holdout.to_str().unwrap();
    let early = xtask(&["interpret", "--run", run, "--merge-shards", "3"]);
    assert!(!early.status.success() && text(&early).contains("shards 1/3, 2/3, 3/3 of"), "{}", text(&early));
    for shard in ["1/3", "2/3", "3/3"] {
        let o = xtask(&["interpret", "--run", run, "--shard", shard]);
        assert!(o.status.success(), "interpret --shard {shard} failed:\n{}", text(&o));
    }
    let merged = xtask(&["interpret", "--run", run, "--merge-shards", "3"]);
    assert!(merged.status.success(), "--merge-shards failed:\n{}", text(&merged));
    for (t, bytes) in tables.iter().zip(&before) {
        assert!(
            std::fs::read(rel.join(t)).expect("merged table") == *bytes,
            "merged {t} differs from the unsharded one"
        );
    }
    for (f, want) in maps.iter().zip(&maps_before) {
        let got = read(f);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
        let worst = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        assert!(worst < 1e-6, "merged {f}: max |difference| {worst:e} of the map's maximum");
    }
}

fn walk_first_nii(dir: &Path) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if let Some(f) = walk_first_nii(&p) {
                return Some(f);
            }
        } else if p.to_str().is_some_and(|s| s.ends_with(".nii.gz")) {
            return Some(p);
        }
    }
    None
}
