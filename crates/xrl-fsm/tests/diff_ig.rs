//! Differential IG by its properties and against the seed's own procedure: completeness per bit at 50
//! Gauss–Legendre points, the batched computation equal to one backward pass per bit per path point, a clear
//! "no bits differ" result (not NaN) when the input and baseline share their code, and the hidden-state variant.

use xrl::nn::qbn::{Qbn, QbnSpec};
use xrl::nn::{Core, CoreKind, HeadKind, Net, NetSpec, Torso};
use xrl_fsm::diff_ig::{Bits, DiffIgConfig, PerBit, Quadrature, diff_ig, diff_ig_per_bit_and_point};
use xrl_fsm::mmn::Mmn;

/// Multiplies every weight of a module (a fresh bottleneck's codes are nearly all 0: its pre-quantisation values
/// stay below the ternary threshold; trained ones spread out).
struct Scale(f32);

impl burn::module::ModuleMapper for Scale {
    fn map_float<const D: usize>(
        &mut self,
        p: burn::module::Param<burn::tensor::Tensor<D>>,
    ) -> burn::module::Param<burn::tensor::Tensor<D>> {
        let (id, t, mapper) = p.consume();
        burn::module::Param::from_mapped_value(id, t.mul_scalar(self.0).detach().require_grad(), mapper)
    }
}

/// A random MMN in the seed's control shape (FC 16 → ELU → FC 8 → ReLU6 → GRU 32), on the autodiff device.
fn control_mmn(seed: u64, ox_bits: usize) -> Mmn {
    let d = xrl::nn::device::for_tests().autodiff();
    d.seed(seed);
    let spec = NetSpec::new(vec![4], 2, Torso::MmnMlp, HeadKind::ActorCritic)
        .with_core(Core { kind: CoreKind::Gru, hidden: 32 });
    let net = Net::new(&spec, &d).unwrap();
    let ox = burn::module::Module::map(Qbn::new(&QbnSpec::observations(8, ox_bits), &d).unwrap(), &mut Scale(3.0));
    let hx = burn::module::Module::map(Qbn::new(&QbnSpec::hidden_states(32, 8), &d).unwrap(), &mut Scale(3.0));
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
            let all = DiffIgConfig { per_bit: PerBit::All, ..DiffIgConfig::default() };
            let d = diff_ig(&mmn, &x, &b, None, &all).unwrap();
            // The masked map (one objective: the mean over the differing bits) is the mean of the bits' own IG
            // maps, and the all-bit map the mean over every bit.
            let differing: Vec<usize> = (0..16).filter(|&j| d.input_code[j] != d.baseline_code[j]).collect();
            assert_eq!(d.differing, differing);
            assert_eq!(d.per_bit.len(), 16);
            if let Some(m) = &d.masked {
                for (p, mp) in m.iter().enumerate() {
                    let mean = differing.iter().map(|&j| d.per_bit[j].ig[p]).sum::<f32>() / differing.len() as f32;
                    assert!((mp - mean).abs() < 1e-6 * (1.0 + mean.abs()), "{mp} vs {mean}");
                }
            }
            for (p, ap) in d.all_bits.iter().enumerate() {
                let mean = d.per_bit.iter().map(|bm| bm.ig[p]).sum::<f32>() / 16.0;
                assert!((ap - mean).abs() < 1e-6 * (1.0 + mean.abs()));
            }
            // Maps of the differing bits only are the same ones; the default makes those of the 12 that changed
            // most.
            let only =
                diff_ig(&mmn, &x, &b, None, &DiffIgConfig { per_bit: PerBit::Differing, ..all.clone() }).unwrap();
            let largest =
                diff_ig(&mmn, &x, &b, None, &DiffIgConfig { per_bit: PerBit::Largest(3), ..all.clone() }).unwrap();
            let mut by_change = differing.clone();
            by_change.sort_by(|&i, &j| d.per_bit[j].target.abs().total_cmp(&d.per_bit[i].target.abs()));
            by_change.truncate(3);
            by_change.sort();
            assert_eq!(largest.per_bit.iter().map(|bm| bm.bit).collect::<Vec<_>>(), by_change);
            assert_eq!(only.per_bit.iter().map(|bm| bm.bit).collect::<Vec<_>>(), differing);
            assert_eq!(
                (only.masked.clone(), only.bit(differing.first().copied().unwrap_or(99)).map(|bm| bm.ig.clone())),
                (d.masked.clone(), differing.first().map(|&j| d.per_bit[j].ig.clone()))
            );
            // Across a kink the integrand jumps and the quadrature's error is larger (a few percent at 50 points on
            // these nets; docs/BENCHMARKS.md): those pairs are not held to 1e-3.
            if !smooth_path(&mmn, &x, &b) {
                continue;
            }
            smooth_pairs += 1;
            for (j, (sum, target)) in
                d.per_bit.iter().map(|bm| (bm.sum, bm.target)).chain(d.masked_completeness).enumerate()
            {
                let (sum, target) = (&sum, &target);
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
    let (x, b) = ([2.0, -1.5, 0.3, 2.5], [-1.0, 1.0, -0.2, -2.0]);
    // A random MMN on which some bits differ between the two.
    let mmn = (1..50)
        .map(|seed| control_mmn(seed, 12))
        .find(|m| {
            !diff_ig(m, &x, &b, None, &DiffIgConfig { per_bit: PerBit::None, ..DiffIgConfig::default() })
                .unwrap()
                .differing
                .is_empty()
        })
        .expect("some seed gives differing bits");
    let reference = diff_ig_per_bit_and_point(&mmn, &x, &b, 10).unwrap();
    for chunk in [1, 7, 2048] {
        let config = DiffIgConfig {
            quadrature: Quadrature::SeedMean,
            steps: 10,
            chunk,
            bits: Bits::Observation,
            per_bit: PerBit::All,
        };
        let d = diff_ig(&mmn, &x, &b, None, &config).unwrap();
        for (j, (bm, theirs)) in d.per_bit.iter().zip(&reference).enumerate() {
            assert_eq!(bm.bit, j);
            for (p, (u, v)) in bm.mean_gradient.iter().zip(theirs).enumerate() {
                assert!((u - v).abs() < 1e-5 * (1.0 + v.abs()), "chunk {chunk} bit {j} feature {p}: {u} vs {v}");
            }
            // IG_j = (x − b) ⊙ ḡ_j.
            for p in 0..4 {
                assert!((bm.ig[p] - (x[p] - b[p]) * bm.mean_gradient[p]).abs() < 1e-6);
            }
        }
        // The seed's maps from its per-bit gradients: unmasked = mean over D of ḡ_j, masked = (x − b) ⊙ that.
        assert!(!d.differing.is_empty());
        let unmasked = d.unmasked.as_ref().unwrap();
        for p in 0..4 {
            let mean = d.differing.iter().map(|&j| reference[j][p]).sum::<f32>() / d.differing.len() as f32;
            assert!((unmasked[p] - mean).abs() < 1e-5 * (1.0 + mean.abs()), "{} vs {mean}", unmasked[p]);
            assert!((d.masked.as_ref().unwrap()[p] - (x[p] - b[p]) * unmasked[p]).abs() < 1e-6);
        }
    }
}

#[test]
fn identical_codes_give_a_clear_no_bits_differ_result() {
    let mmn = control_mmn(5, 10);
    let x = [0.1, 0.2, -0.1, 0.05];
    let d = diff_ig(&mmn, &x, &x, None, &DiffIgConfig { per_bit: PerBit::All, ..DiffIgConfig::default() }).unwrap();
    assert!(d.differing.is_empty());
    assert_eq!((d.masked.clone(), d.unmasked.clone(), d.masked_completeness), (None, None, None));
    assert!(
        d.per_bit.iter().flat_map(|bm| &bm.ig).all(|v| *v == 0.0),
        "the baseline is the input: nothing to attribute"
    );
    assert!(d.all_bits.iter().all(|v| v.is_finite()));
    assert_eq!((d.completeness_error(), d.per_bit_completeness_error()), (0.0, 0.0));
    // Mismatched lengths are refused.
    let err = diff_ig(&mmn, &x, &[0.0; 3], None, &DiffIgConfig::default()).unwrap_err().to_string();
    assert!(err.contains("same environment"), "{err}");
    let err = diff_ig(&mmn, &x, &x, None, &DiffIgConfig { steps: 0, ..DiffIgConfig::default() }).unwrap_err();
    assert!(err.to_string().contains("--steps"));
}

#[test]
fn hidden_state_bits_are_attributed_through_the_observation_bottleneck() {
    let mmn = control_mmn(9, 16);
    // A short path with many points: the surrogate staircase is steep between its plateaus.
    let (x, b) = ([1.0, -0.5, 0.3, 1.2], [0.8, -0.3, 0.2, 1.0]);
    let config = DiffIgConfig { bits: Bits::Hidden, steps: 400, ..DiffIgConfig::default() };
    let h: Vec<f32> = (0..32).map(|i| ((i * 11) % 7) as f32 / 7.0 - 0.5).collect();
    let all = DiffIgConfig { per_bit: PerBit::All, ..config.clone() };
    let d = diff_ig(&mmn, &x, &b, Some(&h), &all).unwrap();
    assert_eq!(d.per_bit.len(), 8, "one map per hidden-state bit");
    // Through the observation bottleneck's smooth surrogate the hidden pre-activation varies along the path, and
    // completeness holds for it (against the surrogate's endpoint values).
    assert!(d.per_bit.iter().all(|bm| bm.target < 0.0), "{:?}", d.per_bit);
    // (A random bottleneck moves these values little: ~1e-8, where f32 arithmetic is the floor.)
    for bm in &d.per_bit {
        assert!(
            (bm.sum - bm.target).abs() < 0.05 * bm.target.abs() + 1e-8,
            "bit {}: {} vs {}",
            bm.bit,
            bm.sum,
            bm.target
        );
    }
    let other = diff_ig(&mmn, &x, &b, None, &all).unwrap();
    assert_ne!(other.per_bit, d.per_bit, "the state the step starts from matters");
}
