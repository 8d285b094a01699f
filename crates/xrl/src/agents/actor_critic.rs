//! What A2C and A3C share: the rollout they learn from, its n-step returns, sampling from the policy, and the one
//! actor-critic loss (policy gradient with the n-step advantage, value regression, entropy bonus).
//!
//! The two agents reduce the loss over a rollout differently, each as its reference does: A2C averages over the
//! batch (Stable-Baselines3), A3C sums over the rollout and halves the squared value error (the A3C paper's
//! accumulated gradients, as ChainerRL's `train_a3c_gym.py` in seed 003 computes them). With a sum the step size
//! grows with the rollout's length, so each agent's learning rate comes from the reference whose reduction it uses.

use crate::nn::RecurrentState;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;

/// A rollout of N environment copies × T steps, time-major (row t·N + i is copy i at step t); A3C has N = 1.
#[derive(Default)]
pub struct Rollout {
    pub obs: Vec<f32>,
    pub actions: Vec<usize>,
    pub rewards: Vec<f32>,
    pub terminated: Vec<bool>,
    /// For a step that truncated its episode: the value of its final observation, to bootstrap from.
    pub truncated_value: Vec<Option<f32>>,
    /// The step ended its episode (terminated or truncated): a recurrent state is zeroed after it.
    pub done: Vec<bool>,
    /// Recurrent networks: the state every copy started the rollout with.
    pub start_state: Option<RecurrentState>,
}

/// Discounted n-step returns, bootstrapped from `last_values` (one per copy) at the end of the rollout, from the
/// final observation's value where an episode was truncated, and from nothing where it terminated.
pub fn returns(r: &Rollout, last_values: &[f32], gamma: f32) -> Vec<f32> {
    let n = last_values.len();
    let steps = r.rewards.len() / n;
    let mut out = vec![0.0; r.rewards.len()];
    for (i, &last) in last_values.iter().enumerate() {
        let mut next = last;
        for t in (0..steps).rev() {
            let k = t * n + i;
            let bootstrap = if r.terminated[k] { 0.0 } else { r.truncated_value[k].unwrap_or(next) };
            next = r.rewards[k] + gamma * bootstrap;
            out[k] = next;
        }
    }
    out
}

/// Draws an index from softmax(logits).
pub fn sample_softmax(logits: &[f32], rng: &mut impl Rng) -> usize {
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let w: Vec<f64> = logits.iter().map(|l| ((l - m) as f64).exp()).collect();
    let mut u = rng.random::<f64>() * w.iter().sum::<f64>();
    for (i, wi) in w.iter().enumerate() {
        if u < *wi {
            return i;
        }
        u -= wi;
    }
    w.len() - 1
}

/// How the per-step terms of the loss are combined over a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// Means over the batch: policy, squared value error, entropy (A2C, Stable-Baselines3).
    Mean,
    /// Sums over the rollout, with ½ on the squared value error (A3C).
    Sum,
}

/// The loss's reduction and the weights of its value and entropy terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossConfig {
    pub reduction: Reduction,
    pub value_coef: f32,
    pub entropy_coef: f32,
}

/// The actor-critic loss of a batch of steps: `logits` `[b, actions]` and `values` `[b, 1]` from the network,
/// the `actions` taken and their n-step `returns` (from [`returns`]). With A = returns − V (held constant):
///
/// - Mean: −mean(log π(a|s)·A) + value_coef · mean((returns − V)²) − entropy_coef · mean(H(π(·|s)))
/// - Sum: −Σ log π(a|s)·A + value_coef · ½Σ(returns − V)² − entropy_coef · ΣH(π(·|s))
///
/// Returns (loss, entropy), both one-element tensors; the entropy is reduced like the loss.
pub fn loss(
    logits: Tensor<2>,
    values: Tensor<2>,
    actions: &[usize],
    returns: Vec<f32>,
    config: &LossConfig,
) -> (Tensor<1>, Tensor<1>) {
    let device = logits.device();
    let b = returns.len();
    let logp = log_softmax(logits, 1);
    let actions: Vec<i64> = actions.iter().map(|&a| a as i64).collect();
    let actions = Tensor::<2, Int>::from_data(TensorData::new(actions, [b, 1]), &device);
    let logp_a = logp.clone().gather(1, actions);
    let ret = Tensor::<2>::from_data(TensorData::new(returns, [b, 1]), &device);
    // The advantage weighs the policy gradient only: no gradient flows from it into the value head.
    let advantage = (ret.clone() - values.clone()).detach();
    let weighted = logp_a * advantage;
    let squared_error = (ret - values).powf_scalar(2.0);
    let neg_entropy = logp.clone().exp() * logp; // p·log p per action, [b, actions]
    let (policy_loss, value_loss, entropy) = match config.reduction {
        Reduction::Mean => (-weighted.mean(), squared_error.mean(), -neg_entropy.sum_dim(1).mean()),
        Reduction::Sum => (-weighted.sum(), squared_error.sum().mul_scalar(0.5), -neg_entropy.sum()),
    };
    let loss = policy_loss + value_loss.mul_scalar(config.value_coef) - entropy.clone().mul_scalar(config.entropy_coef);
    (loss, entropy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn n_step_returns_by_hand() {
        // Two copies, three steps, γ = 0.5. Copy 0 terminates at t = 1; copy 1 is truncated at t = 0 (final value 8).
        let r = Rollout {
            rewards: vec![1.0, 1.0, 2.0, 2.0, 4.0, 4.0],
            terminated: vec![false, false, true, false, false, false],
            truncated_value: vec![None, Some(8.0), None, None, None, None],
            ..Rollout::default()
        };
        let g = returns(&r, &[10.0, 20.0], 0.5);
        // Copy 0: t2 = 4 + 0.5·10 = 9; t1 = 2 (terminal); t0 = 1 + 0.5·2 = 2.
        // Copy 1: t2 = 4 + 0.5·20 = 14; t1 = 2 + 0.5·14 = 9; t0 = 1 + 0.5·8 = 5 (bootstraps from the final value).
        assert_eq!(g, vec![2.0, 5.0, 2.0, 9.0, 9.0, 14.0]);
    }

    #[test]
    fn softmax_sampling_follows_the_probabilities() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let logits = [0.0f32, (3.0f32).ln()]; // p = [0.25, 0.75]
        let ones = (0..20_000).filter(|_| sample_softmax(&logits, &mut rng) == 1).count();
        assert!((ones as f64 / 20_000.0 - 0.75).abs() < 0.01, "{ones}");
    }

    /// Each term of both reductions against the formulas computed by hand (in f64) on two steps, two actions.
    #[test]
    fn loss_by_hand_for_both_reductions() {
        let device = crate::nn::device::for_tests();
        // Step 0: p = [0.25, 0.75], took action 1, return 2, V = 0.5. Step 1: p = [0.5, 0.5], took 0, return −1, V = 1.
        let (logits, values, actions, rets) =
            ([0.0f32, 3f32.ln(), 0.0, 0.0], [0.5f32, 1.0], [1usize, 0], [2.0f32, -1.0]);
        let p = [[0.25f64, 0.75], [0.5, 0.5]];
        let policy = [-(0.75f64.ln()) * 1.5, -(0.5f64.ln()) * -2.0]; // −log π(a|s)·(return − V)
        let squared = [1.5f64 * 1.5, 2.0 * 2.0];
        let entropy = p.map(|row| -row.iter().map(|q| q * q.ln()).sum::<f64>());

        // (loss, entropy) with the given value and entropy weights.
        let run = |reduction, value_coef: f32, entropy_coef: f32| {
            let config = LossConfig { reduction, value_coef, entropy_coef };
            let (l, e) =
                loss(nn::batch(&logits, 2, &device), nn::batch(&values, 1, &device), &actions, rets.to_vec(), &config);
            (nn::to_vec(l)[0] as f64, nn::to_vec(e)[0] as f64)
        };
        let mean = |v: [f64; 2]| (v[0] + v[1]) / 2.0;
        let sum = |v: [f64; 2]| v[0] + v[1];
        for (reduction, want_policy, want_value, want_entropy) in [
            (Reduction::Mean, mean(policy), mean(squared), mean(entropy)),
            (Reduction::Sum, sum(policy), 0.5 * sum(squared), sum(entropy)),
        ] {
            let (policy_term, entropy_term) = run(reduction, 0.0, 0.0);
            let value_term = run(reduction, 1.0, 0.0).0 - policy_term;
            let (total, _) = run(reduction, 0.5, 0.01);
            let want_total = want_policy + 0.5 * want_value - 0.01 * want_entropy;
            for (what, got, want) in [
                ("policy", policy_term, want_policy),
                ("value", value_term, want_value),
                ("entropy", entropy_term, want_entropy),
                ("total", total, want_total),
            ] {
                assert!((got - want).abs() < 1e-6, "{reduction:?} {what}: {got} vs {want}");
            }
        }
    }
}
