//! Times the four convolutions of the paper's network, Burn's conv3d against the fast CPU path
//! (`model::fast`), forward (Flex) and forward + backward (Autodiff<Flex>), and prints the
//! largest difference between the two.
//!
//! ```text
//! cargo run --release -p model --example conv_speed -- [2mm|1mm] [batch] [reps]
//! ```

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use model::{Cpu, CpuTrain, fast};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let grid = args.first().map_or("2mm", String::as_str);
    let batch: usize = args.get(1).map_or(5, |v| v.parse().expect("batch"));
    let reps: usize = args.get(2).map_or(3, |v| v.parse().expect("reps"));
    let mut size = if grid == "1mm" { [193, 229, 193] } else { [97, 115, 97] };
    let device = Default::default();
    let channels = [1, 8, 16, 32, 64];
    let pools = [2, 3, 2, 3];
    println!(
        "{grid}, batch {batch}, best of {reps}, seconds; load {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    println!(
        "{:<6} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "block", "fwd burn", "fwd fast", "f+b burn", "f+b fast", "max |Δ|"
    );
    for block in 0..4 {
        let (ci, co) = (channels[block], channels[block + 1]);
        let x =
            Tensor::<Cpu, 5>::random([batch, ci, size[0], size[1], size[2]], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<Cpu, 5>::random([co, ci, 3, 3, 3], Distribution::Normal(0.0, 0.2), &device);
        let b = Tensor::<Cpu, 1>::random([co], Distribution::Normal(0.0, 0.2), &device);
        let mut fwd = [0.0; 2];
        let mut both = [0.0; 2];
        let mut outs = Vec::new();
        for (i, on) in [false, true].into_iter().enumerate() {
            fast::set_fast_cpu(on);
            fwd[i] = best(reps, || {
                let _ = fast::conv3d(x.clone(), w.clone(), Some(b.clone())).into_data();
            });
            both[i] = best(reps, || {
                let xa = Tensor::<CpuTrain, 5>::from_inner(x.clone());
                let xa = if block == 0 { xa } else { xa.require_grad() };
                let wa = Tensor::<CpuTrain, 5>::from_inner(w.clone()).require_grad();
                let ba = Tensor::<CpuTrain, 1>::from_inner(b.clone()).require_grad();
                let y = fast::conv3d(xa.clone(), wa.clone(), Some(ba.clone()));
                let grads = (y.clone() * y).sum().backward();
                let _ = wa.grad(&grads).map(|g| g.into_data());
                let _ = xa.grad(&grads).map(|g| g.into_data());
            });
            outs.push(fast::conv3d(x.clone(), w.clone(), Some(b.clone())));
        }
        let diff: f32 = (outs[0].clone() - outs[1].clone()).abs().max().into_scalar();
        println!(
            "{:<6} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10.2e}",
            block + 1,
            fwd[0],
            fwd[1],
            both[0],
            both[1],
            diff
        );
        size = size.map(|s| (s - 2) / pools[block]);
    }
}

fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
