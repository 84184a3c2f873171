//! Layer-wise relevance propagation: a network computed by hand, conservation on random
//! networks, LRP-0 = gradient × input, and the paper network's layer list against its forward.

mod common;

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use common::{A, B, max_abs, max_abs_diff, serial, tensor, uniform, values};
use model::{ClassificationModel3D, NetworkConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use relevance::gradient::{GradientConfig, sensitivity};
use relevance::lrp::{LrpComposite, LrpConfig, LrpLayer, LrpModel, LrpRule, lrp, lrp_layers};
use relevance::{Explainable, Output, PostProcess, ReluPoint, Target};

/// The hand network: input `[1, 1, 1, 1, 3]` = (1, 2, 3); conv 1→2 channels, kernel (1, 1, 2):
/// channel 0 taps (3, −1) bias 0, channel 1 taps (0.5, 1) bias 0.5 → (1, 3) and (3, 4.5); ReLU;
/// max pool (1, 1, 2) → 3 and 4.5 (both at position 1); flatten; dense `[[1, −1], [2, 0.5]]`
/// (`[in, out]`) bias (0.5, 0) → logits (12.5, −0.75).
fn hand_network() -> (Vec<LrpLayer<B>>, Tensor<B, 5>) {
    let layers = vec![
        LrpLayer::Conv3d {
            weight: tensor(vec![3.0, -1.0, 0.5, 1.0], [2, 1, 1, 1, 2]),
            bias: tensor(vec![0.0, 0.5], [2]),
        },
        LrpLayer::Relu,
        LrpLayer::MaxPool3d { kernel: [1, 1, 2] },
        LrpLayer::Flatten,
        LrpLayer::Dense { weight: tensor(vec![1.0, -1.0, 2.0, 0.5], [2, 2]), bias: tensor(vec![0.5, 0.0], [2]) },
    ];
    (layers, tensor(vec![1.0, 2.0, 3.0], [1, 1, 1, 1, 3]))
}

fn composite(first: LrpRule, conv: LrpRule, dense: LrpRule) -> LrpConfig {
    LrpConfig { composite: LrpComposite { first, conv, dense }, ..LrpConfig::default() }
}

fn assert_close(found: &[f32], expected: &[f32], tol: f32) {
    assert!(max_abs_diff(found, expected) <= tol, "found {found:?}, expected {expected:?}");
}

#[test]
fn hand_network_rules_match_the_hand_computation() {
    let (layers, x) = hand_network();
    let eps0 = LrpRule::Epsilon { epsilon: 0.0 };
    let plus = LrpRule::AlphaBeta { alpha: 1.0, beta: 0.0 };
    let ab21 = LrpRule::AlphaBeta { alpha: 2.0, beta: 1.0 };

    // LRP-0: the dense layer gives (3·1, 4.5·2) = (3, 9) (its bias 0.5 keeps the rest of 12.5);
    // pooling routes both to position 1; the conv gives x ⊙ Wᵀ(R/z) = (0, 2·(3·1 + 0.5·2), 3·(−1·1 + 1·2))
    // = (0, 8, 3): sum 11, the conv bias 0.5 keeping 9·0.5/4.5 = 1.
    let out = lrp_layers(&layers, x.clone(), &composite(eps0, eps0, eps0)).unwrap();
    assert_close(&values(out.maps), &[0.0, 8.0, 3.0], 1e-5);
    assert_eq!(out.logits, vec![12.5]);
    assert!((out.totals[0] - 11.0).abs() < 1e-5, "{:?}", out.totals);

    // z⁺ on the conv: channel 0: 3 goes all to x₁ (its only positive tap), channel 1: 9 shared
    // over 0.5·2 = 1, 1·3 = 3 and the bias 0.5 of z⁺ = 4.5 → 2 and 6. Map (0, 5, 6).
    let out = lrp_layers(&layers, x.clone(), &composite(plus, plus, eps0)).unwrap();
    assert_close(&values(out.maps), &[0.0, 5.0, 6.0], 1e-4);

    // αβ(2, 1): 2 × (0, 5, 6) minus the negative side: channel 0's z⁻ = −1·3 = −3 takes R = 3
    // to x₂ (3); channel 1 has no negative contribution. Map (0, 10, 9).
    let out = lrp_layers(&layers, x.clone(), &composite(ab21, ab21, eps0)).unwrap();
    assert_close(&values(out.maps), &[0.0, 10.0, 9.0], 1e-4);

    // z^B with the box [0, 4]: channel 0: z = 6 − 3 − 0 − (−1)·4 = 7, s = 3/7 → x₁ 2·3·3/7 = 18/7,
    // x₂ (3·(−1) − 4·(−1))·3/7 = 3/7; channel 1: z = 4.5 − 0.5 = 4, s = 9/4 → x₁ 2·0.5·9/4 = 2.25,
    // x₂ 3·9/4 = 6.75. z^B conserves: the map sums to 12.
    let config = LrpConfig { bounds: Some((0.0, 4.0)), ..composite(LrpRule::ZBox, plus, eps0) };
    let out = lrp_layers(&layers, x.clone(), &config).unwrap();
    let map = values(out.maps);
    assert_close(&map, &[0.0, 18.0 / 7.0 + 2.25, 3.0 / 7.0 + 6.75], 1e-4);
    assert!((out.totals[0] - 12.0).abs() < 1e-4);

    // The named default is that composite (with ε = 1e-6 in the dense layer).
    let named = LrpConfig { bounds: Some((0.0, 4.0)), ..LrpConfig::default() };
    assert_close(&values(lrp_layers(&layers, x.clone(), &named).unwrap().maps), &map, 1e-4);

    // The other class: its logit −0.75 is what gets distributed.
    let other = LrpConfig { target: Target::Class(1), ..composite(eps0, eps0, eps0) };
    let out = lrp_layers(&layers, x, &other).unwrap();
    assert_eq!(out.logits, vec![-0.75]);
}

/// A random bias-free network `[1, 1, 8, 8, 8]` → conv k3 (3 ch) → ReLU → pool 2 → conv k2
/// (4 ch) → ReLU → flatten (32) → dense 8 → ReLU → dense 2.
fn random_bias_free(seed: u64) -> Vec<LrpLayer<B>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut conv = |co: usize, ci: usize, k: usize| LrpLayer::Conv3d {
        weight: tensor(uniform(&mut rng, co * ci * k * k * k, 0.5), [co, ci, k, k, k]),
        bias: tensor(vec![0.0; co], [co]),
    };
    let (c1, c2) = (conv(3, 1, 3), conv(4, 3, 2));
    let mut dense = |i: usize, o: usize| LrpLayer::Dense {
        weight: tensor(uniform(&mut rng, i * o, 0.5), [i, o]),
        bias: tensor(vec![0.0; o], [o]),
    };
    let (d1, d2) = (dense(32, 8), dense(8, 2));
    vec![
        c1,
        LrpLayer::Relu,
        LrpLayer::MaxPool3d { kernel: [2, 2, 2] },
        c2,
        LrpLayer::Relu,
        LrpLayer::Flatten,
        d1,
        LrpLayer::Relu,
        d2,
    ]
}

#[test]
fn every_composite_conserves_relevance_without_biases() {
    for seed in 0..4u64 {
        let layers = random_bias_free(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
        // Positive inputs (a T1 scan's intensities) and, for seed 3, signed ones.
        let raw = uniform(&mut rng, 2 * 512, 1.0);
        let x: Vec<f32> = if seed == 3 { raw } else { raw.iter().map(|v| v.abs()).collect() };
        let x = tensor::<B, 5>(x, [2, 1, 8, 8, 8]);
        // αβ with β > 0 conserves only where a neuron has both positive and negative
        // contributions (where one side is empty, α·R or nothing flows on; the hand test shows
        // it); the rules without that case must conserve exactly.
        for name in LrpComposite::NAMES.into_iter().filter(|n| !n.contains("alpha2")) {
            let config = LrpConfig { composite: LrpComposite::named(name, 1e-9).unwrap(), ..LrpConfig::default() };
            let out = lrp_layers(&layers, x.clone(), &config).unwrap();
            for (logit, total) in out.logits.iter().zip(&out.totals) {
                assert!(
                    (logit - total).abs() <= 1e-3 * logit.abs().max(1e-3),
                    "seed {seed}, {name}: Σ relevance {total} ≠ logit {logit}"
                );
            }
        }
    }
}

fn tiny_paper_network(seed: u64) -> ClassificationModel3D<A> {
    let config = NetworkConfig {
        channels: [3, 3, 3, 3],
        pools: [2, 2, 1, 1],
        kernel: 3,
        dense: [16, 8],
        dropout: 0.5,
        classes: 2,
    };
    let device = Default::default();
    let mut model = {
        let _serial = serial();
        <A as burn::tensor::backend::Backend>::seed(&device, seed);
        config.init::<A>([28, 28, 28], &device).unwrap()
    };
    // Random BatchNorm statistics and affine parameters, so that the folding is tested.
    common::randomize_batch_norm(&mut model, &mut ChaCha8Rng::seed_from_u64(seed + 1000));
    model
}

#[test]
fn paper_network_layers_reproduce_its_logits_and_lrp0_is_gradient_times_input() {
    let model = tiny_paper_network(7);
    let inner = model.valid();
    let x = common::random_input::<B, 5>([2, 1, 28, 28, 28], 3).abs();

    // The folded layer list gives the model's own logits (through an all-ε run's `logits`).
    let logits = values(Explainable::logits(&inner, x.clone(), &ReluPoint::standard()));
    let eps0 = LrpRule::Epsilon { epsilon: 0.0 };
    let config = LrpConfig { target: Target::Class(1), ..composite(eps0, eps0, eps0) };
    let out = lrp(&inner, x.clone(), &config).unwrap();
    assert!((out.logits[0] - logits[1]).abs() < 1e-5 && (out.logits[1] - logits[3]).abs() < 1e-5);
    assert_eq!(inner.lrp_layers().len(), 4 * 2 + 2 + 1 + 5);

    // LRP-0 of a ReLU network is the gradient of the logit times the input (Ancona et al. 2018).
    let grad =
        GradientConfig { target: Target::Class(1), output: Output::Logit, post: PostProcess::None, budget_mb: 64 };
    let gxi = values(sensitivity(&model, x.clone(), &grad, None).unwrap().mul(x));
    let map = values(out.maps);
    assert!(
        max_abs_diff(&map, &gxi) <= 1e-4 * max_abs(&gxi),
        "LRP-0 differs from gradient × input by {} (scale {})",
        max_abs_diff(&map, &gxi),
        max_abs(&gxi)
    );
}

#[test]
fn bad_layer_lists_and_parameters_are_errors() {
    let (layers, x) = hand_network();
    // A dense layer on a volume.
    let bad = vec![layers[4].clone()];
    let err = lrp_layers(&bad, x.clone(), &LrpConfig::default()).unwrap_err().to_string();
    assert!(err.contains("layer 0") && err.contains("volume"), "{err}");
    // A box with low > high.
    let err = lrp_layers(&layers, x.clone(), &LrpConfig { bounds: Some((1.0, 0.0)), ..LrpConfig::default() })
        .unwrap_err()
        .to_string();
    assert!(err.contains("bounds"), "{err}");
    // Unknown composite names list the valid ones.
    let err = LrpComposite::named("epsilon-pluss", 1e-6).unwrap_err().to_string();
    assert!(err.contains("epsilon-plus-box"), "{err}");
    // A target class the network does not have.
    let err = lrp_layers(&layers, x, &LrpConfig { target: Target::Class(5), ..LrpConfig::default() });
    assert!(err.is_err());
}

#[test]
fn composite_names_agree_between_the_enum_the_list_and_serde() {
    use relevance::lrp::CompositeName;
    assert_eq!(CompositeName::ALL.map(CompositeName::name), LrpComposite::NAMES);
    for c in CompositeName::ALL {
        assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.name()));
        assert_eq!(LrpComposite::named(c.name(), 1e-6).unwrap(), LrpComposite::of(c, 1e-6));
    }
    assert!(LrpComposite::named("epsilon-plus-bx", 1e-6).is_err());
}
