//! The machine's measured peak of `f32` fused multiply-adds, for the benchmark's floor
//! estimate: every thread of rayon's global pool (the pool the kernels run on) runs
//! independent multiply-add chains that never touch memory, at the widest SIMD width the CPU
//! has (the same run-time dispatch as the kernels).

use std::time::Instant;

use pulp::{Arch, Simd, WithSimd};

/// Independent accumulators per thread: enough to cover the latency of a multiply-add on
/// every current x86 and ARM core, few enough to stay in registers.
const CHAINS: usize = 10;

/// Multiply-adds per chain in one call of the kernel.
const ROUNDS: u64 = 1 << 22;

struct Chains;

impl WithSimd for Chains {
    /// (A value that depends on every result, so nothing is optimised away; lanes.)
    type Output = (f32, usize);

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> (f32, usize) {
        let mut acc = [simd.splat_f32s(0.0); CHAINS];
        let (a, b) = (simd.splat_f32s(0.999_999), simd.splat_f32s(1e-7));
        for _ in 0..ROUNDS {
            for v in acc.iter_mut() {
                *v = simd.mul_add_e_f32s(*v, a, b);
            }
        }
        let sum = acc.iter().fold(simd.splat_f32s(0.0), |s, &v| simd.add_f32s(s, v));
        (simd.reduce_sum_f32s(sum), S::F32_LANES)
    }
}

/// Peak GFLOP/s (2 per multiply-add) of all threads of rayon's global pool together, measured
/// for about `seconds` (the best of the repetitions, each timing every thread at once).
pub fn fma_peak_gflops(seconds: f64) -> f64 {
    let mut best = 0.0f64;
    let started = Instant::now();
    loop {
        let t = Instant::now();
        let runs = rayon::broadcast(|_| Arch::new().dispatch(Chains));
        let elapsed = t.elapsed().as_secs_f64();
        let flops: f64 = runs.iter().map(|&(_, lanes)| (2 * CHAINS * lanes) as f64 * ROUNDS as f64).sum();
        assert!(runs.iter().all(|r| r.0.is_finite()), "multiply-add chains stay finite");
        best = best.max(flops / elapsed / 1e9);
        if started.elapsed().as_secs_f64() >= seconds {
            return best;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_peak_is_positive_and_finite() {
        let peak = super::fma_peak_gflops(0.0);
        assert!(peak.is_finite() && peak > 0.1, "{peak}");
    }
}
