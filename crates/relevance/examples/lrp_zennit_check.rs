//! Rust side of the LRP cross-check against zennit (see `scripts/lrp_zennit.py`).
//!
//! `cargo run --release -p relevance --example lrp_zennit_check -- DIR`
//!
//! Imports `DIR/weights.pth`, computes every composite's LRP maps of the fixed input (the
//! target class, z^B box and ε that `DIR/lrp.json` records) and compares them with zennit's
//! `DIR/lrp_<name>.f32`. Fails when a map differs by more than 1e-3 of its largest |value|.

use std::path::PathBuf;

use burn::tensor::Tensor;
use model::weights::import_pytorch;
use model::{ClassificationModel3D, Cpu, NetworkConfig};
use relevance::Target;
use relevance::lrp::{LrpComposite, LrpConfig, lrp};

/// `scripts/make_torch_fixture.py`'s fixed input: x[i] = sin(0.37 i) + 0.5 cos(0.011 i) +
/// 0.1 (i mod 7), batch 2, computed in float64.
fn fixed_input(grid: [usize; 3]) -> Tensor<Cpu, 5> {
    model::weights::cross_check_input(2, grid, &Default::default())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args().nth(1).ok_or("usage: lrp_zennit_check DIR (made by scripts/lrp_zennit.py DIR)")?,
    );
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("lrp.json"))?)?;
    let config: NetworkConfig = serde_json::from_value(reference["config"].clone())?;
    let grid: Vec<usize> = serde_json::from_value(reference["grid"].clone())?;
    let grid = [grid[0], grid[1], grid[2]];
    let number = |key: &str| reference[key].as_f64().ok_or(format!("lrp.json: `{key}` is not a number"));
    let (low, high, epsilon) = (number("low")? as f32, number("high")? as f32, number("epsilon")? as f32);
    let target = reference["target"].as_u64().ok_or("lrp.json: `target` is not a class index")? as usize;

    let device = Default::default();
    let model: ClassificationModel3D<Cpu> = import_pytorch(&dir.join("weights.pth"), &config, grid, &device)?;
    let x = fixed_input(grid);
    let mut worst = 0.0f32;
    for name in LrpComposite::NAMES {
        let entry = &reference["maps"][name];
        let file = entry["file"].as_str().ok_or(format!("lrp.json: no map for `{name}`"))?;
        let bytes = std::fs::read(dir.join(file))?;
        let want: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let cfg = LrpConfig {
            composite: LrpComposite::named(name, epsilon)?,
            target: Target::Class(target),
            bounds: Some((low, high)),
        };
        let out = lrp(&model, x.clone(), &cfg)?;
        let got: Vec<f32> = out.maps.into_data().convert::<f32>().to_vec().map_err(|e| format!("{e:?}"))?;
        if got.len() != want.len() {
            return Err(format!("{name}: {} values, zennit has {}", got.len(), want.len()).into());
        }
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
        let diff = got.iter().zip(&want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        let rel = diff / scale;
        worst = worst.max(rel);
        println!(
            "{name:22} max |Δ| = {diff:.3e} (max |R| {scale:.3e}, relative {rel:.2e}); Σ R rust {:?} zennit {}; logits {:?}",
            out.totals, entry["sums"], out.logits
        );
    }
    if worst > 1e-3 {
        return Err(
            format!("LRP maps differ from zennit by up to {worst:.2e} of their largest value (limit 1e-3)").into()
        );
    }
    println!("all composites within {worst:.2e} of zennit");
    Ok(())
}
