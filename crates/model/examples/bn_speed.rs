//! Stock `burn::nn::BatchNorm` against `model::BatchNorm3d` on the Flex CPU backend, on the
//! activations of the paper's four blocks at 2 mm (97×115×97), batch 5.
//!
//! `cargo run --release -p model --example bn_speed [repetitions]`
//!
//! For each block shape: training-mode forward on `Autodiff<Flex>` (what a training step runs),
//! training-mode forward + backward (gradient of a weighted sum), and inference-mode forward on
//! plain Flex. Prints the median of the repetitions in seconds.

use std::time::Instant;

use burn::nn::BatchNormConfig;
use burn::tensor::{Distribution, Tensor};
use model::{BatchNorm3d, Cpu, CpuTrain};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f(); // warm-up
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn main() {
    let reps: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let device = Default::default();
    // Conv outputs of blocks 1..4 at 97×115×97 (before pooling), batch 5.
    let shapes = [[5, 8, 95, 113, 95], [5, 16, 45, 54, 45], [5, 32, 13, 16, 13], [5, 64, 4, 6, 4]];
    println!(
        "shape | stock train fwd | ours train fwd | stock train fwd+bwd | ours train fwd+bwd | stock eval fwd | ours eval fwd"
    );
    let mut totals = [0.0f64; 6];
    for shape in shapes {
        let c = shape[1];
        let x = Tensor::<CpuTrain, 5>::random(shape, Distribution::Normal(0.5, 1.0), &device);
        let g = Tensor::<CpuTrain, 5>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let stock = BatchNormConfig::new(c).init::<CpuTrain>(&device);
        let ours = BatchNorm3d::<CpuTrain>::new(c, &device);
        let stock_eval = BatchNormConfig::new(c).init::<Cpu>(&device);
        let ours_eval = BatchNorm3d::<Cpu>::new(c, &device);
        let x_eval = x.clone().inner();

        let t = [
            time(reps, || {
                let _ = stock.forward(x.clone()).into_data();
            }),
            time(reps, || {
                let _ = ours.forward_train(x.clone()).into_data();
            }),
            time(reps, || {
                let xg = x.clone().require_grad();
                let grads = stock.forward(xg.clone()).mul(g.clone()).sum().backward();
                let _ = xg.grad(&grads).unwrap().into_data();
            }),
            time(reps, || {
                let xg = x.clone().require_grad();
                let grads = ours.forward_train(xg.clone()).mul(g.clone()).sum().backward();
                let _ = xg.grad(&grads).unwrap().into_data();
            }),
            time(reps, || {
                let _ = stock_eval.forward(x_eval.clone()).into_data();
            }),
            time(reps, || {
                let _ = ours_eval.forward_eval(x_eval.clone()).into_data();
            }),
        ];
        for (total, v) in totals.iter_mut().zip(t) {
            *total += v;
        }
        println!("{shape:?} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4}", t[0], t[1], t[2], t[3], t[4], t[5]);
    }
    println!(
        "all four | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4}",
        totals[0], totals[1], totals[2], totals[3], totals[4], totals[5]
    );
}
