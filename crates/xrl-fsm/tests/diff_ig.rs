//! Differential IG by its properties and against the seed's own procedure: completeness per bit at 50
//! Gauss–Legendre points, the batched computation equal to one backward pass per bit per path point, a clear
//! "no bits differ" result (not NaN) when the input and baseline share their code, and the hidden-state variant.

use xrl::nn::qbn::{Qbn, QbnSpec};
use xrl::nn::{Core, CoreKind, HeadKind, Net, NetSpec, Torso};
use xrl_fsm::diff_ig::{Bits, DiffIgConfig, Quadrature, diff_ig, diff_ig_per_bit_and_point};
use xrl_fsm::mmn::Mmn;

/// A random MMN in the seed's control shape (FC 16 → ELU → FC 8 → ReLU6 → GRU 32), on the autodiff device.
fn control_mmn(seed: u64, ox_bits: usize) -> Mmn {
    let d = xrl::nn::device::for_tests().autodiff();
    d.seed(seed);
    let spec = NetSpec::new(vec![4], 2, Torso::MmnMlp, HeadKind::ActorCritic)
        .with_core(Core { kind: CoreKind::Gru, hidden: 32 });
    let net = Net::new(&spec, &d).unwrap();
    let ox = Qbn::new(&QbnSpec::observations(8, ox_bits), &d).unwrap();
    let hx = Qbn::new(&QbnSpec::hidden_states(32, 8), &d).unwrap();
    Mmn::new(net, Some(ox), Some(hx)).unwrap()
}

/// Whether no torso unit switches between 0 and positive along the straight path from `b` to `x` (then the
/// integrand has no kink and 50 Gauss–Legendre points integrate it to high accuracy).
fn smooth_path(mmn: &Mmn, x: &[f32], b: &[f32]) -> bool {
    let plain = burn::module::Module::valid(mmn);
    let rows: Vec<f32> = (0..=400)
        .flat_map(|k| {
            let a = k as f32 / 400.0;
            b.iter().zip(x).map(move |(b, x)| b + a * (x - b)).collect::<Vec<_>>()
        })
        .collect();
    let f = xrl::nn::to_vec(plain.net.features(xrl::nn::batch(&rows, x.len(), &plain.device())));
    let w = f.len() / 401;
    (0..w).all(|u| {
        let col: Vec<f32> = (0..401).map(|k| f[k * w + u]).collect();
        col.iter().all(|&v| v == 0.0) || col.iter().all(|&v| v > 0.0 && v < 6.0)
    })
}

#[test]
fn completeness_holds_per_bit_at_fifty_gauss_legendre_points() {
    // Random pairs on random MMNs of the seed's control shape; where no ReLU6 unit switches along the path the
    // integrand is smooth and completeness must hold to 1e-3 for every bit.
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 10_000) as f32 / 10_000.0 * 4.0 - 2.0
    };
    let (mut smooth_pairs, mut checked) = (0, 0);
    for seed in 1..=6 {
        let mmn = control_mmn(seed, 16);
        for _ in 0..24 {
            // Baselines a short way off (long paths nearly always cross a kink of one of the eight units).
            let x: Vec<f32> = (0..4).map(|_| next()).collect();
            let b: Vec<f32> = x.iter().map(|v| v + 0.25 * next()).collect();
            let d = diff_ig(&mmn, &x, &b, None, &DiffIgConfig::default()).unwrap();
            // The masked map is the mean of IG over exactly the differing bits.
            let differing: Vec<usize> = (0..16).filter(|&j| d.input_code[j] != d.baseline_code[j]).collect();
            assert_eq!(d.differing, differing);
            if let Some(m) = &d.masked {
                for p in 0..4 {
                    let mean = differing.iter().map(|&j| d.per_bit[j][p]).sum::<f32>() / differing.len() as f32;
                    assert!((m[p] - mean).abs() < 1e-6);
                }
            }
            // Across a kink the integrand jumps and the quadrature's error is larger (a few percent at 50 points on
            // these nets; docs/BENCHMARKS.md): those pairs are not held to 1e-3.
            if !smooth_path(&mmn, &x, &b) {
                continue;
            }
            smooth_pairs += 1;
            for (j, (sum, target)) in d.completeness.iter().enumerate() {
                assert!(*target <= 0.0, "F_j(x) − F_j(b) is never positive");
                // Below 1e-4 the f32 arithmetic of the network is the floor: there the error is held absolutely.
                if target.abs() < 1e-4 {
                    assert!((sum - target).abs() < 1e-7, "seed {seed} bit {j}: {sum} vs {target}");
                    continue;
                }
                assert!(
                    ((sum - target) / target).abs() < 1e-3,
                    "seed {seed} bit {j}: Σ IG {sum} vs −(z(b) − z(x))² {target}"
                );
                checked += 1;
            }
        }
    }
    assert!(smooth_pairs >= 10 && checked > 100, "{smooth_pairs} smooth pairs, {checked} bits checked");
}

#[test]
fn the_batched_attribution_equals_one_backward_pass_per_bit_per_point() {
    let mmn = control_mmn(7, 12);
    let (x, b) = ([1.0, 0.5, -0.3, 1.5], [-0.5, -1.0, 0.4, -1.0]);
    let reference = diff_ig_per_bit_and_point(&mmn, &x, &b, 10).unwrap();
    for chunk in [1, 7, 2048] {
        let config = DiffIgConfig { quadrature: Quadrature::SeedMean, steps: 10, chunk, bits: Bits::Observation };
        let d = diff_ig(&mmn, &x, &b, None, &config).unwrap();
        for (j, (ours, theirs)) in d.mean_gradient.iter().zip(&reference).enumerate() {
            for (p, (u, v)) in ours.iter().zip(theirs).enumerate() {
                assert!((u - v).abs() < 1e-5 * (1.0 + v.abs()), "chunk {chunk} bit {j} feature {p}: {u} vs {v}");
            }
            // IG_j = (x − b) ⊙ ḡ_j.
            for p in 0..4 {
                assert!((d.per_bit[j][p] - (x[p] - b[p]) * ours[p]).abs() < 1e-6);
            }
        }
    }
}

#[test]
fn identical_codes_give_a_clear_no_bits_differ_result() {
    let mmn = control_mmn(5, 10);
    let x = [0.1, 0.2, -0.1, 0.05];
    let d = diff_ig(&mmn, &x, &x, None, &DiffIgConfig::default()).unwrap();
    assert!(d.differing.is_empty());
    assert_eq!((d.masked.clone(), d.unmasked.clone()), (None, None));
    assert!(d.per_bit.iter().flatten().all(|v| *v == 0.0), "the baseline is the input: nothing to attribute");
    assert!(d.all_bits.iter().all(|v| v.is_finite()));
    assert_eq!(d.completeness_error(), 0.0);
    // Mismatched lengths are refused.
    let err = diff_ig(&mmn, &x, &[0.0; 3], None, &DiffIgConfig::default()).unwrap_err().to_string();
    assert!(err.contains("same environment"), "{err}");
    let err = diff_ig(&mmn, &x, &x, None, &DiffIgConfig { steps: 0, ..DiffIgConfig::default() }).unwrap_err();
    assert!(err.to_string().contains("--steps"));
}

#[test]
fn hidden_state_bits_are_attributed_through_the_observation_bottleneck() {
    let mmn = control_mmn(9, 16);
    let (x, b) = ([2.0, -1.5, 0.3, 2.5], [-1.0, 1.0, -0.2, -2.0]);
    let config = DiffIgConfig { bits: Bits::Hidden, ..DiffIgConfig::default() };
    let h: Vec<f32> = (0..32).map(|i| ((i * 11) % 7) as f32 / 7.0 - 0.5).collect();
    let d = diff_ig(&mmn, &x, &b, Some(&h), &config).unwrap();
    assert_eq!(d.per_bit.len(), 8, "one map per hidden-state bit");
    // Through the observation bottleneck's smooth surrogate the hidden pre-activation varies along the path, and
    // completeness holds for it (against the surrogate's endpoint values).
    assert!(d.completeness.iter().all(|(_, t)| *t < 0.0), "{:?}", d.completeness);
    assert!(d.completeness_error() < 0.05, "{:?}", d.completeness);
    let other = diff_ig(&mmn, &x, &b, None, &config).unwrap();
    assert_ne!(other.per_bit, d.per_bit, "the state the step starts from matters");
}
