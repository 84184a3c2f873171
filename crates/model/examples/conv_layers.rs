//! Times the fast convolution kernels alone, per block of the paper's network and per pass
//! (forward, weight gradient, input gradient), on random data.
//!
//! ```text
//! cargo run --release -p model --example conv_layers -- [2mm|1mm] [batch] [reps]
//! ```

use std::time::Instant;

use model::fast::conv::{self, ConvShape};

#[global_allocator]
static GLOBAL: model::fast::FastAlloc = model::fast::FastAlloc;

fn main() {
    model::fast::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let grid = args.first().map_or("2mm", String::as_str);
    let batch: usize = args.get(1).map_or(5, |v| v.parse().expect("batch"));
    let reps: usize = args.get(2).map_or(5, |v| v.parse().expect("reps"));
    let mut size = if grid == "1mm" { [193, 229, 193] } else { [97, 115, 97] };
    let channels = [1, 8, 16, 32, 64];
    let pools = [2, 3, 2, 3];
    println!("{grid}, batch {batch}, best of {reps}, seconds per batch");
    println!("{:<6} {:>10} {:>10} {:>10} {:>9}", "block", "forward", "weight", "input", "GFLOP/s");
    let mut total = [0.0; 3];
    for block in 0..4 {
        let s = ConvShape { batch, c_in: channels[block], c_out: channels[block + 1], input: size, kernel: [3, 3, 3] };
        let x = noise(batch * s.c_in * size.iter().product::<usize>(), 1);
        let w = noise(s.c_out * s.patch_len(), 2);
        let b = noise(s.c_out, 3);
        let g = noise(batch * s.c_out * s.output().iter().product::<usize>(), 4);
        let only = args.get(3).cloned().unwrap_or_default();
        let run = |pass: &str| only.is_empty() || only == format!("{}{pass}", block + 1);
        let f = if run("f") { best(reps, || drop(conv::forward(&x, &w, Some(&b), &s))) } else { 0.0 };
        let bw = if run("w") { best(reps, || drop(conv::backward_weight(&x, &g, &s))) } else { 0.0 };
        let bi = if block == 0 || !run("i") { 0.0 } else { best(reps, || drop(conv::backward_input(&w, &g, &s))) };
        let macs = (batch * s.c_out * s.patch_len() * s.output().iter().product::<usize>()) as f64;
        let passes = if block == 0 { 2.0 } else { 3.0 };
        println!(
            "{:<6} {:>10.4} {:>10.4} {:>10.4} {:>9.1}",
            block + 1,
            f,
            bw,
            bi,
            2.0 * macs * passes / (f + bw + bi) / 1e9
        );
        total[0] += f;
        total[1] += bw;
        total[2] += bi;
        size = size.map(|v| (v - 2) / pools[block]);
    }
    println!("{:<6} {:>10.4} {:>10.4} {:>10.4}", "sum", total[0], total[1], total[2]);
    println!("per scan {:.4}", total.iter().sum::<f64>() / batch as f64);
}

fn noise(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
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
