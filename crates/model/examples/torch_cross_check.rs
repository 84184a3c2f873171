//! Rust side of the PyTorch cross-check (see `scripts/make_torch_fixture.py`).
//!
//! `cargo run --release -p model --example torch_cross_check -- DIR`
//!
//! Imports `DIR/weights.pth` (written by real PyTorch), runs the fixed input in inference mode,
//! compares logits and probabilities with `DIR/reference.json` (fails when max |Δp| ≥ 1e-4),
//! then exports `DIR/burn.safetensors` and prints its logits, for
//! `python3 scripts/make_torch_fixture.py verify DIR/burn.safetensors` to compare.

use std::path::PathBuf;

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use model::weights::{export_safetensors, import_pytorch, import_safetensors};
use model::{ClassificationModel3D, Cpu, NetworkConfig};

fn fixed_input(grid: [usize; 3]) -> Tensor<Cpu, 5> {
    model::weights::cross_check_input(2, grid, &Default::default())
}

fn outputs(model: &ClassificationModel3D<Cpu>, grid: [usize; 3]) -> (Vec<f32>, Vec<f32>) {
    let logits = model.forward_eval(fixed_input(grid));
    let probs = softmax(logits.clone(), 1);
    (logits.into_data().to_vec::<f32>().unwrap(), probs.into_data().to_vec::<f32>().unwrap())
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: torch_cross_check DIR (made by scripts/make_torch_fixture.py make DIR)")?,
    );
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json"))?)?;
    let config: NetworkConfig = serde_json::from_value(reference["config"].clone())?;
    let grid: Vec<usize> = serde_json::from_value(reference["grid"].clone())?;
    let grid = [grid[0], grid[1], grid[2]];
    let flatten = |key: &str| -> Result<Vec<f32>, serde_json::Error> {
        let rows: Vec<Vec<f32>> = serde_json::from_value(reference[key].clone())?;
        Ok(rows.concat())
    };
    let (want_logits, want_probs) = (flatten("logits")?, flatten("probabilities")?);

    let device = Default::default();
    let model: ClassificationModel3D<Cpu> = import_pytorch(&dir.join("weights.pth"), &config, grid, &device)?;
    let (logits, probs) = outputs(&model, grid);
    let dl = max_abs_diff(&logits, &want_logits);
    let dp = max_abs_diff(&probs, &want_probs);
    println!("torch.save import: logits {logits:?}");
    println!("PyTorch reference: logits {want_logits:?}");
    println!("max |Δlogit| = {dl:.3e}, max |Δp| = {dp:.3e}");
    if dp >= 1e-4 {
        return Err(format!("probabilities differ from PyTorch by {dp:.3e} (limit 1e-4)").into());
    }

    let exported = dir.join("burn.safetensors");
    export_safetensors(&model, &exported)?;
    let again: ClassificationModel3D<Cpu> = import_safetensors(&exported, &config, &device)?;
    let (logits_again, _) = outputs(&again, grid);
    println!("exported {}: logits {logits_again:?} (compare with `make_torch_fixture.py verify`)", exported.display());
    Ok(())
}
