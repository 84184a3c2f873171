//! Gradient methods: the guided ReLU, sensitivity analysis, guided backpropagation, integrated
//! gradients and SmoothGrad, on the 2D toy CNN and on small random paper networks.

mod common;

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use common::{
    A, B, Head, ToyCnn, ToySpec, input_dims, max_abs, max_abs_diff, param, random_input, tensor, tiny_paper_model,
    values,
};
use model::input_gradient_for;
use relevance::gradient::{
    GradientConfig, IntegratedGradientsConfig, SmoothGradConfig, guided_backprop, guided_relu, integrated_gradients,
    sensitivity, smoothgrad,
};
use relevance::{Explainable, Output, PostProcess, RelevanceError, ReluPoint, Target};

const GRID: [usize; 3] = [30, 30, 28];

fn signed(output: Output) -> GradientConfig {
    GradientConfig { post: PostProcess::None, output, ..GradientConfig::default() }
}

fn toy_spec() -> ToySpec {
    ToySpec {
        in_channels: 2,
        channels: 3,
        kernel: 3,
        grid: vec![10, 9],
        classes: 3,
        head: Head::MaxPoolDense { pool: 2, hidden: 6 },
    }
}

/// Finite-difference slopes of the explained output of input 0 along each of `points` (flat
/// indices): `(forward, backward)` one-sided differences with step `eps`, from the model's
/// logits on the inner backend (softmax in f64).
fn one_sided_slopes<M, const D: usize>(
    model: &M,
    x: &Tensor<B, D>,
    class: usize,
    output: Output,
    points: &[usize],
    eps: f32,
) -> Vec<(f64, f64)>
where
    M: Explainable<A, D> + AutodiffModule<A>,
    M::InnerModule: Explainable<B, D>,
{
    let inner = model.valid();
    let base = values(x.clone().narrow(0, 0, 1));
    let mut batch = base.clone();
    for &p in points {
        for sign in [1.0, -1.0] {
            let mut v = base.clone();
            v[p] += sign * eps;
            batch.extend(v);
        }
    }
    let mut shape = x.dims();
    shape[0] = 1 + points.len() * 2;
    let logits = values(inner.logits(tensor(batch, shape), &ReluPoint::standard()));
    let classes = inner.num_classes();
    let out = |row: usize| -> f64 {
        let l = &logits[row * classes..(row + 1) * classes];
        match output {
            Output::Logit => l[class] as f64,
            Output::Probability => {
                let sum: f64 = l.iter().map(|&v| (v as f64 - l[class] as f64).exp()).sum();
                1.0 / sum
            }
        }
    };
    let (eps, f0) = (eps as f64, out(0));
    (0..points.len()).map(|i| ((out(1 + 2 * i) - f0) / eps, (f0 - out(2 + 2 * i)) / eps)).collect()
}

/// The flat indices of the `k` largest |g| plus `k` spread over the rest.
fn probe_points(grad: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..grad.len()).collect();
    order.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()));
    let mut points: Vec<usize> = order[..k].to_vec();
    points.extend((1..=k).map(|i| order[i * grad.len() / (k + 2)]));
    points
}

/// Relative tolerance of the finite-difference checks (× the largest probed |g|).
const FD_REL: f64 = 1e-2;

/// Checks the gradient `g` of input 0 against central differences at 12 probe points, to
/// [`FD_REL`] × the largest probed |g|. A ReLU or max-pooling kink within `eps` of the input makes
/// the two one-sided slopes differ (the gradient is then one of them, not their mean): such
/// points are skipped, at most a third of them. The step trades the f32 rounding of the
/// logits (about 10⁻⁷, against slopes of about 10⁻⁴ on the paper networks) against kinks.
fn check_finite_differences<M, const D: usize>(
    model: &M,
    x: &Tensor<B, D>,
    g: &[f32],
    class: usize,
    output: Output,
    eps: f32,
    what: &str,
) where
    M: Explainable<A, D> + AutodiffModule<A>,
    M::InnerModule: Explainable<B, D>,
{
    let rel = FD_REL;
    let points = probe_points(g, 6);
    let slopes = one_sided_slopes(model, x, class, output, &points, eps);
    let scale = points.iter().map(|&p| g[p].abs() as f64).fold(0.0, f64::max);
    assert!(scale > 0.0, "{what}: a zero gradient cannot be checked");
    let mut checked = 0;
    for (&p, &(forward, backward)) in points.iter().zip(&slopes) {
        if (forward - backward).abs() > rel * scale {
            continue;
        }
        checked += 1;
        let central = (forward + backward) / 2.0;
        assert!(
            (central - g[p] as f64).abs() <= rel * scale,
            "{what}: voxel {p}: {central} vs {} (scale {scale})",
            g[p]
        );
    }
    assert!(checked * 3 >= points.len() * 2, "{what}: only {checked} of {} points free of kinks", points.len());
}

#[test]
fn guided_relu_forward_is_relu_and_backward_passes_only_positive_signals_of_active_units() {
    let x = tensor::<A, 1>(vec![-1.0, 0.0, 2.0, 3.0, 0.5], [5]).require_grad();
    // Upstream signal w: negative at the active units 2, positive at the inactive 0 and the active 3, 4.
    let w = tensor::<A, 1>(vec![4.0, 1.0, -2.0, 5.0, 0.25], [5]);

    let y = guided_relu(x.clone());
    assert_eq!(values(y.clone()), vec![0.0, 0.0, 2.0, 3.0, 0.5]);
    let grads = y.mul(w.clone()).sum().backward();
    assert_eq!(values(x.grad(&grads).unwrap()), vec![0.0, 0.0, 0.0, 5.0, 0.25]);

    // The plain ReLU lets the negative signal through.
    let y = burn::tensor::activation::relu(x.clone());
    let grads = y.mul(w).sum().backward();
    assert_eq!(values(x.grad(&grads).unwrap()), vec![0.0, 0.0, -2.0, 5.0, 0.25]);
}

#[test]
fn guided_relu_chains_and_works_untracked() {
    // Two guided ReLUs with a sign flip between them: the second clamps the signal, and the first
    // sees only what passed.
    let x = tensor::<A, 1>(vec![1.0, -1.0, 2.0], [3]).require_grad();
    let h = guided_relu(x.clone()).mul(tensor(vec![-1.0, 1.0, 2.0], [3])).add_scalar(1.0);
    // h = [0, 1, 5]; upstream into the second ReLU: [3, -1, 1].
    let y = guided_relu(h).mul(tensor(vec![3.0, -1.0, 1.0], [3])).sum();
    let grads = y.backward();
    // Second ReLU: h = 0 inactive → 0; −1 clamped → 0; 1 passes → then ×2 = 2 into the first.
    assert_eq!(values(x.grad(&grads).unwrap()), vec![0.0, 0.0, 2.0]);

    let untracked = guided_relu(tensor::<A, 1>(vec![-3.0, 3.0], [2]));
    assert_eq!(values(untracked), vec![0.0, 3.0]);
}

/// A 1-channel 3×3 image through a 2×2 convolution (no pooling), 2 hidden units and 2 classes,
/// with weights set by hand so that some backward signals are negative.
fn hand_network() -> ToyCnn<A, 4> {
    let spec = ToySpec {
        in_channels: 1,
        channels: 1,
        kernel: 2,
        grid: vec![3, 3],
        classes: 2,
        head: Head::MaxPoolDense { pool: 1, hidden: 2 },
    };
    let mut net = ToyCnn::random(spec, 0);
    net.conv_weight = param(vec![1.0, -1.0, 0.5, 2.0], [1, 1, 2, 2]);
    net.conv_bias = param(vec![0.0], [1]);
    // Rows: the four conv outputs (row-major); columns: the two hidden units.
    net.hidden_weight = Some(param(vec![1.0, -1.0, 2.0, 0.5, -1.0, 1.0, 0.5, 0.5], [4, 2]));
    net.hidden_bias = Some(param(vec![0.0, 1.0], [2]));
    // Column 0 (class 0): +1 from hidden 0, −2 from hidden 1.
    net.out_weight = param(vec![1.0, 0.0, -2.0, 0.0], [2, 2]);
    net.out_bias = param(vec![0.1, 0.0], [2]);
    net
}

fn hand_input() -> Tensor<B, 4> {
    tensor(vec![1.0, 2.0, 0.0, 0.0, 1.0, -1.0, 3.0, 0.0, -2.0], [1, 1, 3, 3])
}

#[test]
fn guided_backprop_matches_hand_computation() {
    // Forward: conv z = [1, 0.5, 0.5, −2] (the last inactive), hidden h = [1.5, 0.75] (both
    // active), logit 0 = 1.5 − 1.5 + 0.1.
    // Plain backward: ∂/∂h = [1, −2]; ∂/∂a = W1·[1, −2] = [3, 1, −3, −0.5]; ∂/∂z = [3, 1, −3, 0];
    // input = transposed convolution of [[3, 1], [−3, 0]] with [[1, −1], [0.5, 2]].
    // Guided: ∂/∂h = [1, 0] (−2 clamped); ∂/∂a = [1, 2, −1, 0.5]; ∂/∂z = [1, 2, 0, 0] (−1 clamped,
    // unit 3 inactive); input = transposed convolution of [[1, 2], [0, 0]].
    let net = hand_network();
    let config = GradientConfig { target: Target::Class(0), output: Output::Logit, ..signed(Output::Logit) };
    let logits = values(net.valid().logits(hand_input(), &ReluPoint::standard()));
    assert!((logits[0] - 0.1).abs() < 1e-6, "logits {logits:?}");

    let plain = values(sensitivity(&net, hand_input(), &config, None).unwrap());
    let expected_plain = [3.0, -2.0, -1.0, -1.5, 9.5, 2.0, -1.5, -6.0, 0.0];
    assert!(max_abs_diff(&plain, &expected_plain) < 1e-6, "plain {plain:?}");

    let guided = values(guided_backprop(&net, hand_input(), &config, None).unwrap());
    let expected_guided = [1.0, 1.0, -2.0, 0.5, 3.0, 4.0, 0.0, 0.0, 0.0];
    assert!(max_abs_diff(&guided, &expected_guided) < 1e-6, "guided {guided:?}");

    // The default post-processing is abs.
    let abs_config = GradientConfig { post: PostProcess::default(), ..config };
    let guided_abs = values(guided_backprop(&net, hand_input(), &abs_config, None).unwrap());
    let expected_abs: Vec<f32> = expected_guided.iter().map(|v: &f32| v.abs()).collect();
    assert!(max_abs_diff(&guided_abs, &expected_abs) < 1e-6);
}

#[test]
fn post_processing_is_abs_square_or_signed() {
    let net = ToyCnn::<A, 4>::random(toy_spec(), 3);
    let x = random_input::<B, 4>(input_dims(&toy_spec(), 2), 4);
    let run =
        |post| values(sensitivity(&net, x.clone(), &GradientConfig { post, ..Default::default() }, None).unwrap());
    let g = run(PostProcess::None);
    assert!(g.iter().any(|v| *v < 0.0), "the signed gradient has negative entries");
    assert_eq!(run(PostProcess::Abs), g.iter().map(|v| v.abs()).collect::<Vec<_>>());
    assert_eq!(run(PostProcess::Square), g.iter().map(|v| v * v).collect::<Vec<_>>());
    assert_eq!(GradientConfig::default().post, PostProcess::Abs);
}

#[test]
fn sensitivity_matches_finite_differences_on_the_2d_toy() {
    let net = ToyCnn::<A, 4>::random(toy_spec(), 11);
    let x = random_input::<B, 4>(input_dims(&toy_spec(), 1), 12);
    for output in [Output::Logit, Output::Probability] {
        let config = GradientConfig { target: Target::Class(1), ..signed(output) };
        let g = values(sensitivity(&net, x.clone(), &config, None).unwrap());
        check_finite_differences(&net, &x, &g, 1, output, 1e-3, &format!("2D toy, {output:?}"));
    }
}

#[test]
fn sensitivity_matches_finite_differences_on_small_paper_networks() {
    for seed in [1, 3, 20] {
        let net = tiny_paper_model(GRID, seed);
        let x = random_input::<B, 5>([1, 1, GRID[0], GRID[1], GRID[2]], 100 + seed).mul_scalar(2.0);
        for output in [Output::Logit, Output::Probability] {
            let config = GradientConfig { target: Target::Class(1), ..signed(output) };
            let g = values(sensitivity(&net, x.clone(), &config, None).unwrap());
            let what = format!("paper network seed {seed}, {output:?}");
            check_finite_differences(&net, &x, &g, 1, output, 2e-2, &what);
        }
    }
}

#[test]
fn sensitivity_equals_the_model_crates_input_gradient() {
    let net = tiny_paper_model(GRID, 5);
    let x = random_input::<B, 5>([3, 1, GRID[0], GRID[1], GRID[2]], 6);
    let predicted = relevance::target_classes(net.valid().forward_eval(x.clone()), Target::Predicted).unwrap();
    let reference = values(input_gradient_for(&net, x.clone(), &predicted, true).unwrap());
    let ours = values(sensitivity(&net, x, &signed(Output::Probability), None).unwrap());
    assert!(max_abs_diff(&ours, &reference) <= 1e-6 * max_abs(&reference).max(1e-12));
}

#[test]
fn explaining_a_freshly_built_model_uses_its_own_weights() {
    // Regression: Burn initialises a new module's parameters lazily, and a clone of a parameter
    // not yet initialised draws its own values, so explaining `model.clone()` of a fresh model
    // explained another network each call.
    let _guard = common::serial();
    let device = Default::default();
    let x = random_input::<B, 5>([1, 1, GRID[0], GRID[1], GRID[2]], 60).mul_scalar(2.0);
    let config = GradientConfig { target: Target::Class(1), ..signed(Output::Logit) };
    let live = (60..80).find_map(|seed| {
        A::seed(&device, seed);
        let fresh = common::tiny_paper_config().init::<A>(GRID, &device).unwrap();
        let first = values(sensitivity(&fresh, x.clone(), &config, None).unwrap());
        (max_abs(&first) > 0.0).then_some((fresh, first))
    });
    let (fresh, first) = live.expect("a live network among 20 seeds");
    let second = values(sensitivity(&fresh, x.clone(), &config, None).unwrap());
    assert!(first == second, "two explanations of one fresh model differ");
    let reference = values(input_gradient_for(&fresh, x, &[1], false).unwrap());
    assert!(max_abs_diff(&first, &reference) <= 1e-6 * max_abs(&reference));
}

#[test]
fn trait_logits_equal_forward_eval_of_the_paper_network() {
    let net = tiny_paper_model(GRID, 7).valid();
    let x = random_input::<B, 5>([2, 1, GRID[0], GRID[1], GRID[2]], 8);
    let ours = values(Explainable::logits(&net, x.clone(), &ReluPoint::standard()));
    let reference = values(net.forward_eval(x));
    assert!(max_abs_diff(&ours, &reference) < 1e-6, "{ours:?} vs {reference:?}");
}

#[test]
fn a_scans_map_does_not_depend_on_its_batch_or_the_budget() {
    let net = tiny_paper_model(GRID, 9);
    let x = random_input::<B, 5>([3, 1, GRID[0], GRID[1], GRID[2]], 10);
    let config = signed(Output::Probability);
    let whole = values(sensitivity(&net, x.clone(), &GradientConfig { budget_mb: 1000, ..config }, None).unwrap());
    let one_by_one = values(sensitivity(&net, x.clone(), &GradientConfig { budget_mb: 1, ..config }, None).unwrap());
    let alone = values(sensitivity(&net, x.narrow(0, 1, 1), &config, None).unwrap());
    let per = whole.len() / 3;
    assert!(max_abs(&alone) > 0.0);
    assert!(max_abs_diff(&whole[per..2 * per], &alone) <= 1e-6 * max_abs(&alone));
    assert!(max_abs_diff(&whole, &one_by_one) <= 1e-6 * max_abs(&whole));
}

#[test]
fn guided_backprop_differs_from_the_gradient_on_the_paper_network_and_keeps_batches_apart() {
    // A network whose guided map for class 1 is not all clamped away (tiny random networks with
    // four hidden units often have every positive path blocked).
    let net = tiny_paper_model(GRID, 16);
    let x = random_input::<B, 5>([2, 1, GRID[0], GRID[1], GRID[2]], 14).mul_scalar(2.0);
    let config = GradientConfig { output: Output::Logit, target: Target::Class(1), ..signed(Output::Logit) };
    let guided = values(guided_backprop(&net, x.clone(), &config, None).unwrap());
    let plain = values(sensitivity(&net, x.clone(), &config, None).unwrap());
    assert!(max_abs(&guided) > 0.0);
    assert!(max_abs_diff(&guided, &plain) > 1e-3 * max_abs(&plain), "guided equals the plain gradient");
    let alone = values(guided_backprop(&net, x.narrow(0, 1, 1), &config, None).unwrap());
    assert!(max_abs_diff(&guided[guided.len() / 2..], &alone) <= 1e-6 * max_abs(&alone));
}

#[test]
fn integrated_gradients_are_complete_and_independent_of_batching() {
    // The gradient of a ReLU network jumps along the path, so the midpoint rule converges like
    // 1/steps; on this network 128 steps bring Σ IG within 1 % of Δ (32 steps: within 5 %).
    let net = tiny_paper_model(GRID, 3);
    let x = random_input::<B, 5>([2, 1, GRID[0], GRID[1], GRID[2]], 4).mul_scalar(2.0);
    let inner = net.valid();
    for (output, baseline) in [(Output::Probability, 0.0), (Output::Logit, -0.5)] {
        let config = IntegratedGradientsConfig { steps: 128, output, baseline, budget_mb: 1000, ..Default::default() };
        let ig = integrated_gradients(&net, x.clone(), &config, None).unwrap();
        let sums = values(ig.clone().sum_dim(4).sum_dim(3).sum_dim(2).sum_dim(1).reshape([2]));

        let targets = relevance::target_classes(inner.forward_eval(x.clone()), Target::Predicted).unwrap();
        let out = |t: Tensor<B, 5>| values(relevance::select_output(inner.forward_eval(t), &targets, output));
        let at_x = out(x.clone());
        let at_baseline = out(x.zeros_like().add_scalar(baseline));
        for i in 0..2 {
            let delta = at_x[i] - at_baseline[i];
            assert!(delta.abs() > 1e-3, "a degenerate test: out(x) ≈ out(x′)");
            assert!(
                (sums[i] - delta).abs() <= 0.03 * delta.abs(),
                "{output:?} input {i}: Σ IG {} vs Δ {delta}",
                sums[i]
            );
        }

        let unbatched =
            integrated_gradients(&net, x.clone(), &IntegratedGradientsConfig { budget_mb: 1, ..config }, None);
        let (a, b) = (values(ig), values(unbatched.unwrap()));
        assert!(max_abs_diff(&a, &b) <= 1e-5 * max_abs(&a));
    }
}

#[test]
fn integrated_gradients_are_exact_for_a_positively_homogeneous_network() {
    // Without biases the toy is positively homogeneous, f(αx) = αf(x) for α > 0, so its gradient
    // is constant along the path from the zero baseline: IG = x ⊙ ∇f(x) for any number of steps,
    // and Σ IG = f(x) − f(0) = f(x) (Euler).
    let mut net = ToyCnn::<A, 4>::random(toy_spec(), 41);
    net.conv_bias = param(vec![0.0; 3], [3]);
    net.hidden_bias = Some(param(vec![0.0; 6], [6]));
    net.out_bias = param(vec![0.0; 3], [3]);
    let x = random_input::<B, 4>(input_dims(&toy_spec(), 2), 42);
    let gradient =
        sensitivity(&net, x.clone(), &GradientConfig { target: Target::Class(2), ..signed(Output::Logit) }, None);
    let expected = values(x.clone().mul(gradient.unwrap()));
    let logits = values(net.valid().logits(x.clone(), &ReluPoint::standard()));
    for steps in [1, 7] {
        let config =
            IntegratedGradientsConfig { steps, target: Target::Class(2), output: Output::Logit, ..Default::default() };
        let ig = values(integrated_gradients(&net, x.clone(), &config, None).unwrap());
        assert!(max_abs_diff(&ig, &expected) <= 1e-5 * max_abs(&expected), "steps {steps}");
        let per = ig.len() / 2;
        for i in 0..2 {
            let sum: f32 = ig[i * per..(i + 1) * per].iter().sum();
            assert!(
                (sum - logits[i * 3 + 2]).abs() <= 1e-4 * logits[i * 3 + 2].abs().max(1e-3),
                "steps {steps} input {i}"
            );
        }
    }
}

#[test]
fn integrated_gradients_resolve_the_target_on_the_real_input() {
    let net = ToyCnn::<A, 4>::random(toy_spec(), 17);
    let x = random_input::<B, 4>(input_dims(&toy_spec(), 3), 18);
    let predicted = relevance::target_classes(net.valid().logits(x.clone(), &ReluPoint::standard()), Target::Predicted);
    let predicted = predicted.unwrap();
    let config = IntegratedGradientsConfig { steps: 8, ..Default::default() };
    let auto = values(integrated_gradients(&net, x.clone(), &config, None).unwrap());
    let per = auto.len() / 3;
    for (i, &class) in predicted.iter().enumerate() {
        let given = IntegratedGradientsConfig { target: Target::Class(class), ..config };
        let one = values(integrated_gradients(&net, x.clone().narrow(0, i, 1), &given, None).unwrap());
        assert!(max_abs_diff(&auto[i * per..(i + 1) * per], &one) <= 1e-6 * max_abs(&one).max(1e-12));
    }
}

#[test]
fn integrated_gradients_report_progress_in_points() {
    let net = ToyCnn::<A, 4>::random(toy_spec(), 19);
    let x = random_input::<B, 4>(input_dims(&toy_spec(), 2), 20);
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |done, total| seen.lock().unwrap().push((done, total));
    let config = IntegratedGradientsConfig { steps: 5, budget_mb: 1, ..Default::default() };
    integrated_gradients(&net, x, &config, Some(&progress)).unwrap();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.last(), Some(&(10, 10)));
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn smoothgrad_is_deterministic_for_a_seed_and_changes_with_it() {
    let net = ToyCnn::<A, 4>::random(toy_spec(), 21);
    let x = random_input::<B, 4>(input_dims(&toy_spec(), 2), 22);
    let config = SmoothGradConfig { samples: 6, seed: 5, ..Default::default() };
    let a = values(smoothgrad(&net, x.clone(), &config, None).unwrap());
    let b = values(smoothgrad(&net, x.clone(), &config, None).unwrap());
    assert_eq!(a, b);
    let small_budget = values(smoothgrad(&net, x.clone(), &SmoothGradConfig { budget_mb: 1, ..config }, None).unwrap());
    assert!(max_abs_diff(&a, &small_budget) <= 1e-6 * max_abs(&a), "the budget changed the noise");
    let other = values(smoothgrad(&net, x.clone(), &SmoothGradConfig { seed: 6, ..config }, None).unwrap());
    assert!(max_abs_diff(&a, &other) > 1e-3 * max_abs(&a));
    let plain = values(sensitivity(&net, x, &GradientConfig::default(), None).unwrap());
    assert!(max_abs_diff(&a, &plain) > 1e-3 * max_abs(&a), "the noise had no effect");
}

#[test]
fn smoothgrad_without_noise_equals_sensitivity() {
    let net = tiny_paper_model(GRID, 23);
    let x = random_input::<B, 5>([2, 1, GRID[0], GRID[1], GRID[2]], 24);
    for post in [PostProcess::Abs, PostProcess::None, PostProcess::Square] {
        let config = SmoothGradConfig { noise_level: 0.0, samples: 3, post, ..Default::default() };
        let smooth = values(smoothgrad(&net, x.clone(), &config, None).unwrap());
        let plain = values(sensitivity(&net, x.clone(), &GradientConfig { post, ..Default::default() }, None).unwrap());
        assert!(max_abs_diff(&smooth, &plain) <= 1e-6 * max_abs(&plain), "{post:?}");
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let ig = IntegratedGradientsConfig::default();
    assert_eq!((ig.baseline, ig.steps, ig.target, ig.output), (0.0, 32, Target::Predicted, Output::Probability));
    let sg = SmoothGradConfig::default();
    assert_eq!((sg.noise_level, sg.samples, sg.post), (0.15, 16, PostProcess::Abs));
}

fn message(result: relevance::Result<Tensor<B, 5>>) -> String {
    result.expect_err("expected an error").to_string()
}

#[test]
fn bad_inputs_and_parameters_are_clear_errors() {
    let net = tiny_paper_model(GRID, 25);
    let x = random_input::<B, 5>([1, 1, GRID[0], GRID[1], GRID[2]], 26);
    let wrong = random_input::<B, 5>([1, 1, 30, 30, 27], 26);
    let e = sensitivity(&net, wrong, &GradientConfig::default(), None).unwrap_err();
    assert!(matches!(e, RelevanceError::Model(model::ModelError::InputShape { .. })), "{e:?}");
    assert!(e.to_string().contains("[1, 1, 30, 30, 27]") && e.to_string().contains("30, 30, 28"), "{e}");

    let class_7 = GradientConfig { target: Target::Class(7), ..Default::default() };
    assert_eq!(
        message(guided_backprop(&net, x.clone(), &class_7, None)),
        "target class 7 is out of range: the model has 2 classes"
    );
    let ig_class_2 = IntegratedGradientsConfig { target: Target::Class(2), ..Default::default() };
    assert!(
        message(integrated_gradients(&net, x.clone(), &ig_class_2, None)).contains("target class 2 is out of range")
    );

    let steps = IntegratedGradientsConfig { steps: 0, ..Default::default() };
    assert_eq!(
        message(integrated_gradients(&net, x.clone(), &steps, None)),
        "invalid parameter `steps`: is 0; expected at least 1 integration step"
    );
    let baseline = IntegratedGradientsConfig { baseline: f32::NAN, ..Default::default() };
    assert!(
        message(integrated_gradients(&net, x.clone(), &baseline, None)).starts_with("invalid parameter `baseline`")
    );
    let samples = SmoothGradConfig { samples: 0, ..Default::default() };
    assert!(message(smoothgrad(&net, x.clone(), &samples, None)).starts_with("invalid parameter `samples`"));
    let noise = SmoothGradConfig { noise_level: -0.1, ..Default::default() };
    assert!(message(smoothgrad(&net, x.clone(), &noise, None)).starts_with("invalid parameter `noise_level`: is -0.1"));
    let budget = GradientConfig { budget_mb: 0, ..Default::default() };
    assert!(message(sensitivity(&net, x.clone(), &budget, None)).starts_with("invalid parameter `budget_mb`"));

    let toy = ToyCnn::<A, 4>::random(toy_spec(), 27);
    let empty = Tensor::<B, 4>::zeros([0, 2, 10, 9], &Default::default());
    let e = sensitivity(&toy, empty, &GradientConfig::default(), None).unwrap_err();
    assert_eq!(e.to_string(), "input has shape [0, 2, 10, 9], expected a batch of at least one input");
}
