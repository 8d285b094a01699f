//! Moore machine networks (Koul et al. 2019): a GRU policy with quantised bottlenecks inserted — the observation
//! bottleneck between its torso and its core, the hidden-state bottleneck after its core — so that it runs on
//! finitely many codes. One step, for observation x_t and the carried (decoded) state h_{t−1}:
//!
//! ```text
//! c_t = torso(x_t);  o_t = OXenc(c_t);  ĉ_t = OXdec(o_t)
//! h̃_t = GRU(ĉ_t, h_{t−1});  s_t = HXenc(h̃_t);  h_t = HXdec(s_t);  logits = actor(h_t)
//! ```
//!
//! Without a bottleneck its side passes through unchanged, so the same code runs the continuous policy (to record
//! bottleneck data), the policy with one bottleneck (to score it while it trains) and the whole MMN.

use crate::FsmError;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use xrl::nn::qbn::Qbn;
use xrl::nn::{CoreKind, Net, argmax_rows, batch, to_vec};
use xrl_env::{Action, Env};

/// A GRU policy and the bottlenecks inserted into it.
#[derive(Module, Debug)]
pub struct Mmn {
    pub net: Net,
    pub ox: Option<Qbn>,
    pub hx: Option<Qbn>,
}

/// What one step computed, `[batch, n]` each.
#[derive(Clone, Debug)]
pub struct MmnStep {
    /// The torso's features c_t.
    pub features: Tensor<2>,
    /// The observation code o_t (with an observation bottleneck).
    pub obs_code: Option<Tensor<2>>,
    /// The GRU's output h̃_t, before the hidden-state bottleneck.
    pub raw_hidden: Tensor<2>,
    /// The state code s_t (with a hidden-state bottleneck).
    pub state_code: Option<Tensor<2>>,
    /// The state carried to the next step: HXdec(s_t), or h̃_t.
    pub hidden: Tensor<2>,
    pub logits: Tensor<2>,
}

impl Mmn {
    /// Checks that `net` is an actor-critic policy with a GRU core and that the bottlenecks fit its widths.
    pub fn new(net: Net, ox: Option<Qbn>, hx: Option<Qbn>) -> Result<Self, FsmError> {
        let bad = |m: String| Err(FsmError::Invalid(m));
        let spec = net.spec();
        match spec.core {
            Some(c) if c.kind == CoreKind::Gru && spec.frames == 0 => {}
            _ => {
                return bad(format!(
                    "a Moore machine network needs a policy with a GRU core carried from step to step (train one with \
                     `xrl train --agent a2c --core gru --torso mmn`); this run's network has {}",
                    match spec.core {
                        None => "no recurrent core".to_string(),
                        Some(c) => format!("a {:?} core", c.kind).to_lowercase(),
                    }
                ));
            }
        }
        if spec.head != xrl::nn::HeadKind::ActorCritic {
            return bad("a Moore machine network needs an actor-critic policy (logits over actions)".into());
        }
        let (f, h) = (net.feature_size(), net.hidden_size().unwrap_or(0));
        if let Some(q) = &ox
            && q.input() != f
        {
            return bad(format!("the observation bottleneck reads {} features; the torso gives {f}", q.input()));
        }
        if let Some(q) = &hx
            && q.input() != h
        {
            return bad(format!("the hidden-state bottleneck reads {} values; the GRU has {h}", q.input()));
        }
        Ok(Mmn { net, ox, hx })
    }

    pub fn device(&self) -> Device {
        self.net.device()
    }

    /// The state before the first step for `batch` episodes: zeros, through the hidden-state bottleneck when
    /// there is one (its code is the machine's start state).
    pub fn initial(&self, batch: usize) -> (Tensor<2>, Option<Tensor<2>>) {
        let h = self.net.hidden_size().unwrap_or(0);
        let zeros = Tensor::<2>::zeros([batch, h], &self.device());
        match &self.hx {
            Some(q) => {
                let code = q.encode(zeros);
                (q.decode(code.clone()), Some(code))
            }
            None => (zeros, None),
        }
    }

    /// One step from observations `[batch, obs_len]` and the carried state `[batch, hidden]`.
    pub fn step(&self, obs: Tensor<2>, hidden: Tensor<2>) -> MmnStep {
        let features = self.net.features(obs);
        let (obs_code, c) = match &self.ox {
            Some(q) => {
                let (code, back) = q.forward(features.clone());
                (Some(code), back)
            }
            None => (None, features.clone()),
        };
        let raw_hidden = self.net.core_step(c, hidden).expect("an MMN's network has a core (checked in Mmn::new)");
        let (state_code, hidden) = match &self.hx {
            Some(q) => {
                let (code, back) = q.forward(raw_hidden.clone());
                (Some(code), back)
            }
            None => (None, raw_hidden.clone()),
        };
        let logits = self.net.heads_from(hidden.clone()).logits.expect("an actor-critic head (checked in Mmn::new)");
        MmnStep { features, obs_code, raw_hidden, state_code, hidden, logits }
    }

    /// The observation code of one observation: the torso and the observation encoder only (the code does not
    /// depend on the recurrent state).
    pub fn obs_code(&self, obs: &[f32]) -> Option<Vec<i8>> {
        let q = self.ox.as_ref()?;
        let x = batch(obs, obs.len(), &self.device());
        Some(codes(q.encode(self.net.features(x)))[0].clone())
    }

    /// The greedy action of a state code: argmax actor(HXdec(code)) (what makes the machine a Moore machine).
    pub fn state_action(&self, code: &[i8]) -> Option<usize> {
        let q = self.hx.as_ref()?;
        let c: Vec<f32> = code.iter().map(|&v| v as f32).collect();
        let h = q.decode(batch(&c, c.len(), &self.device()));
        self.net.heads_from(h).logits.map(|l| argmax_rows(l)[0])
    }
}

/// The rows of a code tensor as integer codes.
pub fn codes(t: Tensor<2>) -> Vec<Vec<i8>> {
    let [_, n] = t.dims();
    to_vec(t).chunks(n.max(1)).map(|r| r.iter().map(|&v| v.round() as i8).collect()).collect()
}

/// How actions are chosen while recording.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Acting {
    /// argmax of the logits.
    Greedy,
    /// The seed's bottleneck-data schedule: with probability `epsilon` a uniformly random action, but only in the
    /// first `until` steps of the episode.
    Explore { epsilon: f64, until: usize },
}

/// One recorded step, values of batch row 0 (episodes are played one at a time).
#[derive(Clone, Debug)]
pub struct Recorded {
    pub t: usize,
    pub obs: Vec<f32>,
    pub features: Vec<f32>,
    pub obs_code: Option<Vec<i8>>,
    /// The state the step started from (its code, with a hidden-state bottleneck).
    pub prev_state_code: Option<Vec<i8>>,
    pub raw_hidden: Vec<f32>,
    pub state_code: Option<Vec<i8>>,
    pub logits: Vec<f32>,
    /// The greedy action (the new state's, in a Moore machine).
    pub greedy: usize,
    /// The action taken.
    pub action: usize,
    pub reward: f64,
}

/// The result of one episode.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    pub score: f64,
    pub length: usize,
    /// The start state's code and action (with a hidden-state bottleneck).
    pub start: Option<(Vec<i8>, usize)>,
}

/// Plays one episode of `mmn` from `env.reset(seed)`, at most `max_steps` steps; `on_step` sees every step.
/// Off the autodiff device (acting needs no gradients).
pub fn play_episode(
    mmn: &Mmn,
    env: &mut dyn Env,
    seed: Option<u64>,
    max_steps: usize,
    acting: Acting,
    rng: &mut Xoshiro256PlusPlus,
    mut on_step: impl FnMut(&Recorded),
) -> Result<Episode, FsmError> {
    let mmn = mmn.valid();
    let device = mmn.device();
    let n = mmn.net.spec().actions;
    env.reset(seed);
    let (mut hidden, start_code) = mmn.initial(1);
    let start = start_code.map(|c| {
        let code = codes(c)[0].clone();
        let action = mmn.state_action(&code).unwrap_or(0);
        (code.clone(), action)
    });
    let mut prev = start.as_ref().map(|(c, _)| c.clone());
    let (mut score, mut length) = (0.0, 0);
    let pool = xrl::nn::acting_pool();
    while length < max_steps {
        let obs = env.obs().to_vec();
        let s = pool.install(|| mmn.step(batch(&obs, obs.len(), &device), hidden));
        let logits = to_vec(s.logits.clone());
        let greedy = argmax_rows(s.logits)[0];
        let action = match acting {
            Acting::Explore { epsilon, until } if length < until && rng.random::<f64>() < epsilon => {
                rng.random_range(0..n)
            }
            _ => greedy,
        };
        let step = env.step(&Action::Discrete(action)).map_err(|e| FsmError::Invalid(e.to_string()))?;
        let (reward, done) = (step.reward, step.done());
        let state_code = s.state_code.map(|c| codes(c)[0].clone());
        let rec = Recorded {
            t: length,
            obs,
            features: to_vec(s.features),
            obs_code: s.obs_code.map(|c| codes(c)[0].clone()),
            prev_state_code: prev.take(),
            raw_hidden: to_vec(s.raw_hidden),
            state_code: state_code.clone(),
            logits,
            greedy,
            action,
            reward,
        };
        on_step(&rec);
        prev = state_code;
        hidden = s.hidden;
        score += reward;
        length += 1;
        if done {
            break;
        }
    }
    Ok(Episode { score, length, start })
}

/// Mean score of `episodes` greedy episodes, the first from `reset(seed)`, the others continuing the
/// environment's streams.
pub fn score(mmn: &Mmn, env: &mut dyn Env, episodes: usize, seed: u64, max_steps: usize) -> Result<Vec<f64>, FsmError> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..episodes)
        .map(|e| {
            play_episode(mmn, env, (e == 0).then_some(seed), max_steps, Acting::Greedy, &mut rng, |_| {})
                .map(|ep| ep.score)
        })
        .collect()
}
