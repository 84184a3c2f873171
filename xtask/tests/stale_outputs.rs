//! `interpret` and `sanity` never take outputs of another model, split or settings for complete,
//! and never explain a split file rewritten after training: one `reproduce-paper --quick` run in
//! a temporary folder, then the changes that used to leave stale maps and checks in place.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{quick_config_in, text, xtask};

/// Sets `section.key = value` (`section` may be dotted: `relevance.occlusion`) in a TOML file.
fn set(path: &Path, section: &str, key: &str, value: toml::Value) {
    let mut cfg: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let mut table = &mut cfg;
    for part in section.split('.') {
        table = table
            .entry(part)
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .expect("a section");
    }
    table.insert(key.into(), value);
    std::fs::write(path, toml::to_string(&cfg).unwrap()).unwrap();
}

/// A CSV's rows as column name → value maps.
fn rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    lines.map(|l| header.iter().map(|h| h.to_string()).zip(l.split(',').map(str::to_owned)).collect()).collect()
}

fn marker(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn changed_models_splits_and_settings_are_recomputed_and_rewritten_splits_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = quick_config_in(tmp.path());
    let cfg_s = cfg.to_str().unwrap();
    let reproduce = || {
        let out = xtask(&["reproduce-paper", "--config", cfg_s]);
        assert!(out.status.success(), "reproduce-paper failed:\n{}", text(&out));
        text(&out)
    };
    reproduce();
    let root = tmp.path().join("results/reproduce-quick");
    let holdout = root.join("holdout");
    let holdout_s = holdout.to_str().unwrap();
    let stage_cfg = holdout.join("resolved_config.toml");
    let rel = holdout.join("relevance");
    let sanity = holdout.join("sanity");
    let shuffled_result = sanity.join("shuffled/folds/holdout/fold_result.json");
    let shuffled_before = std::fs::read(&shuffled_result).expect("the shuffled-label model");
    // What `slurm --submit --resume` counts as done: markers made from the hold-out model of now.
    let models_current =
        |marker: &Path| xtask::inputs::marker_models_current(&adni_data::run_layout::RunLayout::new(&holdout), marker);
    assert!(models_current(&rel.join("complete.json")) && models_current(&sanity.join("complete.json")));
    assert!(!models_current(&rel.join("no-such-complete.json")));
    // The hold-out stage's commands, as reproduce-paper runs them.
    let stages = || {
        let i = xtask(&["interpret", "--run", holdout_s, "--save-scan-maps"]);
        assert!(i.status.success(), "interpret failed:\n{}", text(&i));
        let s = xtask(&["sanity", "--run", holdout_s]);
        assert!(s.status.success(), "sanity failed:\n{}", text(&s));
        format!("{}{}", text(&i), text(&s))
    };
    let t = stages();
    assert!(
        t.contains(&format!("interpret: {} is complete", rel.display()))
            && t.contains(&format!("sanity: {} is complete", sanity.display())),
        "unchanged inputs: both stages skipped:\n{t}"
    );

    // Repro B: other [relevance] settings in the run's config. Both stages are recomputed,
    // naming what differs; the shuffled-label model (trained the same way) is kept.
    set(&stage_cfg, "relevance", "target", "CN".into());
    set(&stage_cfg, "relevance", "postprocess", "none".into());
    set(&stage_cfg, "relevance.occlusion", "size", 6.into());
    set(&stage_cfg, "relevance.occlusion", "stride", 6.into());
    let t = stages();
    assert!(!t.contains("is complete (use --force"), "a stage was taken for complete:\n{t}");
    for needle in [
        "holds maps of other inputs (differing: relevance.occlusion.size, relevance.occlusion.stride, \
         relevance.postprocess, relevance.target): recomputing them",
        "holds checks of other inputs (differing: relevance.occlusion.size",
    ] {
        assert!(t.contains(needle), "no {needle:?} in:\n{t}");
    }
    assert!(
        !t.contains("are not reused") && !t.contains("trained-model maps (not saved"),
        "sanity recomputed the maps:\n{t}"
    );
    assert!(!t.contains("is retrained"), "the shuffled-label model was retrained for new map settings:\n{t}");
    assert_eq!(std::fs::read(&shuffled_result).unwrap(), shuffled_before);
    let scans = rows(&rel.join("scans.csv"));
    assert_eq!(scans.len(), 13);
    assert!(scans.iter().all(|r| r["target_class"] == "0"), "the maps explain CN now: {scans:?}");
    assert_eq!(marker(&rel.join("complete.json"))["inputs"]["relevance"]["occlusion"]["size"], 6);
    assert_eq!(marker(&sanity.join("complete.json"))["inputs"]["relevance"]["target"], "CN");
    let t = stages();
    assert!(t.matches(" is complete (use --force").count() == 2, "unchanged inputs: both stages skipped:\n{t}");

    // Repro A: a new model (another learning rate, the fold deleted as train asks). The maps and
    // checks are of the new model: scans.csv's P(AD) is predictions.csv's.
    set(&stage_cfg, "train", "learning_rate", 1e-2.into());
    std::fs::remove_dir_all(holdout.join("folds")).unwrap();
    let train = xtask(&["train", "--config", stage_cfg.to_str().unwrap()]);
    assert!(train.status.success(), "train failed:\n{}", text(&train));
    assert!(
        !models_current(&rel.join("complete.json")) && !models_current(&sanity.join("complete.json")),
        "markers of the earlier model count as done for `slurm --resume`"
    );
    let t = stages();
    assert!(models_current(&rel.join("complete.json")) && models_current(&sanity.join("complete.json")));
    assert!(t.contains("holds maps of other inputs (differing: models.holdout): recomputing them"), "{t}");
    assert!(
        t.contains("holds checks of other inputs (differing: models.holdout, shuffled.train.learning_rate)"),
        "{t}"
    );
    assert!(t.contains("is retrained"), "the shuffled-label model was trained with the old learning rate:\n{t}");
    assert_ne!(std::fs::read(&shuffled_result).unwrap(), shuffled_before);
    let predicted: BTreeMap<String, f64> = rows(&holdout.join("predictions.csv"))
        .into_iter()
        .filter(|r| r["set"] == "test")
        .map(|r| (r["Image.ID"].clone(), r["p_ad"].parse().unwrap()))
        .collect();
    let scans = rows(&rel.join("scans.csv"));
    assert_eq!(scans.len(), predicted.len());
    for r in &scans {
        let p: f64 = r["p_ad"].parse().unwrap();
        let want = predicted[&r["Image.ID"]];
        assert!((p - want).abs() < 1e-5, "Image.ID {}: scans.csv p_ad {p}, predictions.csv {want}", r["Image.ID"]);
    }

    // Repro C, direct calls on the cross-validation run: another split, an unknown split, saved
    // per-scan maps, the random baseline, a marker of an older version.
    let cv = root.join("cv");
    let cv_s = cv.to_str().unwrap();
    let interpret = |extra: &[&str]| {
        let mut args = vec!["interpret", "--run", cv_s, "--methods", "sensitivity"];
        args.extend(extra);
        let out = xtask(&args);
        (out.status.success(), text(&out))
    };
    let cv_rel = cv.join("relevance");
    let (ok, t) = interpret(&["--split", "fold1", "--no-random-baseline"]);
    assert!(ok && t.contains("test scans of fold1"), "{t}");
    let (ok, t) = interpret(&["--split", "fold1", "--no-random-baseline"]);
    assert!(ok && t.contains("is complete"), "{t}");
    let (ok, t) = interpret(&["--split", "fold2", "--no-random-baseline"]);
    assert!(ok && t.contains("(differing: models.fold1, models.fold2)"), "{t}");
    let splits: Vec<String> = rows(&cv_rel.join("scans.csv")).into_iter().map(|r| r["split"].clone()).collect();
    assert!(!splits.is_empty() && splits.iter().all(|s| s == "fold2"), "{splits:?}");
    let (ok, t) = interpret(&["--split", "fold9", "--no-random-baseline"]);
    assert!(!ok && t.contains("split `fold9` has no finished model"), "{t}");
    assert_eq!(marker(&cv_rel.join("complete.json"))["splits"][0], "fold2", "a refused call touches nothing");
    let (ok, t) = interpret(&["--split", "fold2", "--no-random-baseline", "--save-scan-maps"]);
    assert!(ok && t.contains("(differing: save_scan_maps (the per-scan maps were not saved))"), "{t}");
    let some_id = &rows(&cv_rel.join("scans.csv"))[0]["Image.ID"];
    assert!(cv_rel.join(format!("maps/scans/sensitivity/{some_id}.nii.gz")).is_file());
    let (ok, t) = interpret(&["--split", "fold2"]);
    assert!(ok && t.contains("(differing: relevance.random_baseline)"), "{t}");
    assert!(!cv_rel.join("maps/scans").exists(), "per-scan maps of the earlier computation were left");
    let mut old = marker(&cv_rel.join("complete.json"));
    old.as_object_mut().unwrap().remove("inputs");
    std::fs::write(cv_rel.join("complete.json"), old.to_string()).unwrap();
    let (ok, t) = interpret(&["--split", "fold2"]);
    assert!(ok && t.contains("(differing: inputs (none recorded: written by an older version))"), "{t}");

    // A damaged marker: an error naming it without --force, recomputed with it.
    std::fs::write(cv_rel.join("complete.json"), "{ cut").unwrap();
    let (ok, t) = interpret(&["--split", "fold2"]);
    assert!(!ok && t.contains("complete.json is not JSON (remove it, or use --force)"), "{t}");
    let (ok, t) = interpret(&["--split", "fold2", "--force"]);
    assert!(ok && t.contains("interpret: wrote"), "{t}");

    // Shards merge only when computed from the merge's inputs.
    for shard in ["1/2", "2/2"] {
        let (ok, t) = interpret(&["--split", "fold2", "--shard", shard]);
        assert!(ok, "{t}");
    }
    let (ok, t) = interpret(&["--split", "fold2", "--merge-shards", "2", "--target", "CN"]);
    assert!(
        !ok && t.contains("shards 1/2 (differing: relevance.target); 2/2 (differing: relevance.target) of"),
        "shards of another target merged:\n{t}"
    );
    let (ok, t) = interpret(&["--split", "fold1", "--merge-shards", "2"]);
    assert!(!ok && t.contains("(differing: models.fold1, models.fold2)"), "shards of another split merged:\n{t}");
    let (ok, t) = interpret(&["--split", "fold2", "--merge-shards", "2"]);
    assert!(ok && t.contains("merged 2 shards"), "{t}");
    assert_eq!(marker(&cv_rel.join("complete.json"))["inputs"]["models"].as_object().map(|m| m.len()), Some(1));
    let (ok, t) = interpret(&["--split", "fold2"]);
    assert!(ok && t.contains("is complete"), "the merge is what one unsharded run writes:\n{t}");

    // `sanity --config` with other [sanity] settings: recomputed, the shuffled model kept.
    let other = tmp.path().join("other_sanity.toml");
    std::fs::copy(holdout.join("resolved_config.toml"), &other).unwrap();
    set(&other, "sanity", "fractions", toml::Value::Array(vec![0.05.into(), 0.3.into()]));
    set(&other, "sanity", "random_orders", 2.into());
    let check = |extra: &[&str]| {
        let mut args = vec!["sanity", "--run", holdout_s, "--config", other.to_str().unwrap()];
        args.extend(extra);
        let out = xtask(&args);
        assert!(out.status.success(), "sanity failed:\n{}", text(&out));
        text(&out)
    };
    let shuffled_now = std::fs::read(&shuffled_result).unwrap();
    let t = check(&[]);
    assert!(t.contains("(differing: sanity.fractions, sanity.random_orders): recomputing them"), "{t}");
    assert!(!t.contains("is retrained") && std::fs::read(&shuffled_result).unwrap() == shuffled_now, "{t}");
    let fractions: Vec<String> = rows(&sanity.join("deletion.csv"))
        .into_iter()
        .filter(|r| r["kind"] == "voxels")
        .map(|r| r["fraction"].clone())
        .collect();
    assert!(fractions.iter().any(|f| f.starts_with("0.3")), "the new fractions: {fractions:?}");
    let t = check(&[]);
    assert!(t.contains("is complete"), "{t}");

    // Defect 2: the split file rewritten after training (a training scan made a test scan) is
    // refused by both stages, naming the file, the fold and the scan; nothing is touched.
    let split_file = holdout.join("splits/holdout.csv");
    let original = std::fs::read_to_string(&split_file).unwrap();
    let moved = original.lines().find(|l| l.ends_with(",train")).expect("a training row").to_owned();
    let image_id = moved.split(',').nth(1).unwrap().to_owned();
    std::fs::write(&split_file, original.replace(&moved, &moved.replace(",train", ",test"))).unwrap();
    let marker_before = std::fs::read(rel.join("complete.json")).unwrap();
    for args in [vec!["interpret", "--run", holdout_s], vec!["sanity", "--run", holdout_s, "--force"]] {
        let out = xtask(&args);
        let t = text(&out);
        assert!(!out.status.success(), "{args:?} explained a rewritten split:\n{t}");
        for needle in [
            "splits/holdout.csv is not the split".to_owned(),
            "folds/holdout/fold_result.json was trained on".to_owned(),
            format!("1 of its test scans were in the model's training set: Image.ID {image_id}"),
            "changed after training".to_owned(),
        ] {
            assert!(t.contains(&needle), "{args:?}: no {needle:?} in:\n{t}");
        }
    }
    assert_eq!(std::fs::read(rel.join("complete.json")).unwrap(), marker_before);
    assert!(sanity.join("complete.json").is_file(), "a refused --force removed the checks");
    std::fs::write(&split_file, original).unwrap();
    let out = xtask(&["interpret", "--run", holdout_s]);
    assert!(
        out.status.success() && text(&out).contains("is complete"),
        "the split restored:
{}",
        text(&out)
    );
}
