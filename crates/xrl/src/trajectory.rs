//! A recorded episode: what the agent saw, did and computed at every step, saved so that explanations, evaluations
//! and finite-state extraction can read it again without replaying.
//!
//! File format (one `.safetensors` file, readable with `safetensors.numpy.load_file` in Python): tensors `obs` (f32
//! `[T, …observation shape]`), `actions` (i64 `[T]`), `rewards` (f32 `[T]`: the reward of step t's action),
//! `terminated` and `truncated` (u8 `[T]`), and where the network has them `q`, `advantage`, `logits` (f32
//! `[T, actions]`), `value` (f32 `[T]`) and, for networks whose core carries a state, `hidden` and `cell` (f32
//! `[T, hidden]`: the state each action was taken from, h(t−1)); metadata `format` = `xrl-trajectory`, `version`,
//! `env`, `seed`, `obs_shape`, `action_names` and `states` (JSON: the environment's state document before each
//! step, where it has them).

use crate::nn::{Net, Pass, RecurrentState, argmax_rows, batch, to_vec};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;
use xrl_env::{Action, Env};

pub const FORMAT: &str = "xrl-trajectory";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trajectory {
    pub env: String,
    pub seed: u64,
    pub obs_shape: Vec<usize>,
    pub action_names: Vec<String>,
    /// `[T, obs]`, flat.
    pub obs: Vec<f32>,
    pub actions: Vec<usize>,
    pub rewards: Vec<f32>,
    pub terminated: Vec<bool>,
    pub truncated: Vec<bool>,
    /// `[T, actions]` where the network has the head.
    pub q: Option<Vec<f32>>,
    pub advantage: Option<Vec<f32>>,
    pub logits: Option<Vec<f32>>,
    /// `[T]`.
    pub value: Option<Vec<f32>>,
    /// `[T, hidden]`: the recurrent state each action was taken from (zeros at the episode's start).
    pub hidden: Option<Vec<f32>>,
    pub cell: Option<Vec<f32>>,
    /// The environment's state document before each step.
    pub states: Vec<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrajectoryError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Env(#[from] xrl_env::EnvError),
    #[error(transparent)]
    Render(#[from] xrl_render::RenderError),
}

impl Trajectory {
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    pub fn obs_len(&self) -> usize {
        self.obs_shape.iter().product()
    }

    /// Observation t.
    pub fn observation(&self, t: usize) -> &[f32] {
        let l = self.obs_len();
        &self.obs[t * l..(t + 1) * l]
    }

    /// The recorded states of steps `rows` as one `[rows, hidden]` state (`None` for networks without one).
    pub fn recurrent_state(&self, rows: &[usize], device: &burn::tensor::Device) -> Option<RecurrentState> {
        let hidden = self.hidden.as_ref()?;
        let h = hidden.len() / self.len().max(1);
        let pick = |v: &Vec<f32>| {
            let rows: Vec<f32> = rows.iter().flat_map(|&t| v[t * h..(t + 1) * h].to_vec()).collect();
            batch(&rows, h, device)
        };
        Some(RecurrentState { hidden: pick(hidden), cell: self.cell.as_ref().map(pick) })
    }

    /// Plays `net` greedily in `env` from `reset(seed)` for at most `steps` steps (or to the episode's end),
    /// recording every step. Off the autodiff device: acting needs no gradients.
    pub fn record(
        env: &mut dyn Env,
        env_id: &str,
        net: &Net,
        seed: u64,
        steps: usize,
    ) -> Result<Self, TrajectoryError> {
        let net = burn::module::Module::valid(net);
        let device = net.device();
        let spec = net.spec().clone();
        let action_names = match &env.spec().action {
            xrl_env::ActionSpace::Discrete { meanings, .. } => meanings.clone(),
            xrl_env::ActionSpace::Continuous { .. } => {
                return Err(TrajectoryError::File {
                    path: env_id.into(),
                    message: "continuous actions cannot be recorded for explanation yet; use a discrete game".into(),
                });
            }
        };
        let mut tr = Trajectory {
            env: env_id.into(),
            seed,
            obs_shape: spec.obs_shape.clone(),
            action_names,
            ..Trajectory::default()
        };
        env.reset(Some(seed));
        let (mut q, mut adv, mut logits, mut value, mut hidden, mut cell) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut state: Option<RecurrentState> = None;
        let carries = spec.carries_state();
        let pool = crate::nn::acting_pool();
        for _ in 0..steps {
            let obs = env.obs().to_vec();
            tr.states.push(env.state());
            if let Some(core) = spec.core.filter(|_| carries) {
                // The state the action is taken from: zeros at the episode's start.
                let (h, c) = match &state {
                    Some(s) => (to_vec(s.hidden.clone()), s.cell.clone().map(to_vec)),
                    None => {
                        let zeros = vec![0.0; core.hidden];
                        (zeros.clone(), (core.kind == crate::nn::CoreKind::Lstm).then_some(zeros))
                    }
                };
                hidden.extend(h);
                if let Some(c) = c {
                    cell.extend(c);
                }
            }
            let pass = Pass { state: state.take(), ..Pass::default() };
            let heads = pool.install(|| net.forward(batch(&obs, obs.len(), &device), &pass));
            let scores = heads.q.clone().or(heads.logits.clone()).expect("every head yields Q values or logits");
            let action = argmax_rows(scores)[0];
            for (head, out) in
                [(heads.q, &mut q), (heads.advantage, &mut adv), (heads.logits, &mut logits), (heads.value, &mut value)]
            {
                if let Some(t) = head {
                    out.extend(to_vec(t));
                }
            }
            if carries {
                state = heads.state;
            }
            tr.obs.extend(obs);
            tr.actions.push(action);
            let step = env.step(&Action::Discrete(action))?;
            let (reward, terminated, truncated) = (step.reward as f32, step.terminated, step.truncated);
            tr.rewards.push(reward);
            tr.terminated.push(terminated);
            tr.truncated.push(truncated);
            if terminated || truncated {
                break;
            }
        }
        let some = |v: Vec<f32>| (!v.is_empty()).then_some(v);
        (tr.q, tr.advantage, tr.logits, tr.value) = (some(q), some(adv), some(logits), some(value));
        (tr.hidden, tr.cell) = (some(hidden), some(cell));
        Ok(tr)
    }

    /// Writes the trajectory atomically (see the module's documentation for the format).
    pub fn save(&self, path: &Path) -> Result<(), TrajectoryError> {
        let t = self.len();
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = vec![];
        let mut obs_shape = vec![t];
        obs_shape.extend(&self.obs_shape);
        tensors.push(("obs".into(), Dtype::F32, obs_shape, f32s(&self.obs)));
        let actions: Vec<u8> = self.actions.iter().flat_map(|&a| (a as i64).to_le_bytes()).collect();
        tensors.push(("actions".into(), Dtype::I64, vec![t], actions));
        tensors.push(("rewards".into(), Dtype::F32, vec![t], f32s(&self.rewards)));
        tensors.push(("terminated".into(), Dtype::U8, vec![t], self.terminated.iter().map(|&b| u8::from(b)).collect()));
        tensors.push(("truncated".into(), Dtype::U8, vec![t], self.truncated.iter().map(|&b| u8::from(b)).collect()));
        for (name, v) in
            [("q", &self.q), ("advantage", &self.advantage), ("logits", &self.logits), ("value", &self.value)]
        {
            if let Some(v) = v {
                let shape = if name == "value" { vec![t] } else { vec![t, v.len() / t.max(1)] };
                tensors.push((name.into(), Dtype::F32, shape, f32s(v)));
            }
        }
        for (name, v) in [("hidden", &self.hidden), ("cell", &self.cell)] {
            if let Some(v) = v {
                tensors.push((name.into(), Dtype::F32, vec![t, v.len() / t.max(1)], f32s(v)));
            }
        }
        let err = |message: String| TrajectoryError::File { path: path.display().to_string(), message };
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(n, d, s, b)| Ok((n.clone(), TensorView::new(*d, s.clone(), b).map_err(|e| err(e.to_string()))?)))
            .collect::<Result<_, TrajectoryError>>()?;
        let metadata: HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("version", VERSION.to_string()),
            ("env", self.env.clone()),
            ("seed", self.seed.to_string()),
            ("obs_shape", json(&self.obs_shape)),
            ("action_names", json(&self.action_names)),
            ("states", json(&self.states)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| err(e.to_string()))?;
        crate::run::write_bytes(path, &bytes).map_err(|e| err(e.to_string()))
    }

    /// Reads a trajectory written by [`Trajectory::save`], checking every tensor's shape against the others.
    pub fn load(path: &Path) -> Result<Self, TrajectoryError> {
        let err = |message: String| TrajectoryError::File { path: path.display().to_string(), message };
        xrl_render::check_input(path).map_err(|e| err(e.to_string()))?;
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read it ({e})")))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
            err(format!("not a safetensors file ({e}); give a trajectory.safetensors written by xrl explain"))
        })?;
        let meta = meta.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(err("not an xrl trajectory (its metadata has no `format: xrl-trajectory`)".into()));
        }
        if meta.get("version").map(String::as_str) != Some(&VERSION.to_string()) {
            return Err(err(format!("trajectory version {:?}; this xrl reads version {VERSION}", meta.get("version"))));
        }
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
        let field = |k: &str| meta.get(k).ok_or_else(|| err(format!("its metadata has no `{k}`")));
        let parse = |k: &str| -> Result<serde_json::Value, TrajectoryError> {
            serde_json::from_str(field(k)?).map_err(|e| err(format!("metadata `{k}`: {e}")))
        };
        let obs_shape: Vec<usize> =
            serde_json::from_value(parse("obs_shape")?).map_err(|e| err(format!("metadata `obs_shape`: {e}")))?;
        let action_names: Vec<String> =
            serde_json::from_value(parse("action_names")?).map_err(|e| err(format!("metadata `action_names`: {e}")))?;
        let states: Vec<serde_json::Value> =
            serde_json::from_value(parse("states")?).map_err(|e| err(format!("metadata `states`: {e}")))?;
        type Raw = Option<(Vec<usize>, Vec<u8>)>;
        let tensor = |name: &str, dtype: Dtype| -> Result<Raw, TrajectoryError> {
            match st.tensor(name) {
                Ok(v) if v.dtype() == dtype => Ok(Some((v.shape().to_vec(), v.data().to_vec()))),
                Ok(v) => Err(err(format!("tensor `{name}` is {:?}, expected {dtype:?}", v.dtype()))),
                Err(_) => Ok(None),
            }
        };
        let f32s =
            |b: &[u8]| b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<_>>();
        let required =
            |name: &str, dtype: Dtype| tensor(name, dtype)?.ok_or_else(|| err(format!("no tensor `{name}`")));
        let (oshape, obs) = required("obs", Dtype::F32)?;
        let t = *oshape.first().unwrap_or(&0);
        if oshape[1..] != obs_shape[..] {
            return Err(err(format!("`obs` has shape {oshape:?}, not [T, {obs_shape:?}…]")));
        }
        let (_, actions) = required("actions", Dtype::I64)?;
        let actions: Vec<usize> =
            actions.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as usize).collect();
        let flags = |name: &str| -> Result<Vec<bool>, TrajectoryError> {
            Ok(required(name, Dtype::U8)?.1.into_iter().map(|b| b != 0).collect())
        };
        let opt = |name: &str| -> Result<Option<Vec<f32>>, TrajectoryError> {
            let v = tensor(name, Dtype::F32)?.map(|(s, b)| (s, f32s(&b)));
            match v {
                Some((s, _)) if s.first() != Some(&t) => Err(err(format!("`{name}` has {s:?} rows, expected {t}"))),
                v => Ok(v.map(|(_, v)| v)),
            }
        };
        let tr = Trajectory {
            env: field("env")?.clone(),
            seed: field("seed")?.parse().map_err(|_| err("metadata `seed` is not a number".into()))?,
            obs_shape,
            action_names,
            obs: f32s(&obs),
            rewards: f32s(&required("rewards", Dtype::F32)?.1),
            terminated: flags("terminated")?,
            truncated: flags("truncated")?,
            q: opt("q")?,
            advantage: opt("advantage")?,
            logits: opt("logits")?,
            value: opt("value")?,
            hidden: opt("hidden")?,
            cell: opt("cell")?,
            actions,
            states,
        };
        let n = tr.len();
        if n != t || tr.rewards.len() != t || tr.terminated.len() != t || tr.truncated.len() != t {
            return Err(err(format!("its tensors disagree on the number of steps ({t} observations, {n} actions)")));
        }
        if let Some(i) = tr.obs.iter().position(|v| !v.is_finite()) {
            return Err(err(format!("observation value {i} is {}: a trajectory must hold finite numbers", tr.obs[i])));
        }
        Ok(tr)
    }
}

/// JSON text of a metadata value (serialising these plain types cannot fail).
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{HeadKind, NetSpec, Torso};

    /// Recording plays the greedy policy (each action the argmax of the recorded Q values, observations those the
    /// environment returns after replaying the actions), and a saved trajectory loads back equal.
    #[test]
    fn records_the_greedy_episode_and_round_trips() {
        let device = burn::tensor::Device::default();
        device.seed(3);
        let mut env = xrl_env::make("MinAtar/Breakout-v0").unwrap();
        let spec = NetSpec::new(vec![4, 10, 10], 6, Torso::MinatarCnn, HeadKind::Dueling);
        let net = Net::new(&spec, &device).unwrap();
        let tr = Trajectory::record(env.as_mut(), "MinAtar/Breakout-v0", &net, 5, 30).unwrap();
        assert!(!tr.is_empty() && tr.len() <= 30);
        let q = tr.q.as_ref().unwrap();
        for t in 0..tr.len() {
            let row = &q[t * 6..(t + 1) * 6];
            let best = (0..6).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            assert_eq!(tr.actions[t], best);
        }
        // Replaying the actions gives the recorded observations and rewards.
        let mut replay = xrl_env::make("MinAtar/Breakout-v0").unwrap();
        replay.reset(Some(5));
        for t in 0..tr.len() {
            assert_eq!(replay.obs(), tr.observation(t), "step {t}");
            assert_eq!(replay.step(&Action::Discrete(tr.actions[t])).unwrap().reward as f32, tr.rewards[t]);
        }
        assert_eq!(tr.value.as_ref().unwrap().len(), tr.len());
        let path = std::env::temp_dir().join(format!("xrl-trajectory-{}.safetensors", std::process::id()));
        tr.save(&path).unwrap();
        let back = Trajectory::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back, tr);
    }
}
