//! Networks that explain themselves.
//!
//! One [`Net`] covers every architecture xrl trains or imports: a torso (MLP, the MinAtar CNN, the Nature CNN) and a
//! head (Q values, dueling V + A, or actor-critic logits + V). The explainable-network contract (DESIGN.md):
//!
//! * **named heads**: a forward pass returns [`Heads`] with `q`, `advantage`, `value`, `logits` where they exist;
//! * **layer probes**: name a layer (`conv1`, `conv2`, …, `fc1`, …) in [`Pass::probe`] and the pass returns its
//!   activation plus a zero-valued leaf added to it, whose gradient is the gradient at that layer (burn keeps no
//!   gradients of intermediate tensors, so the leaf is how Grad-CAM reads them);
//! * **guided ReLUs** switched per call ([`Pass::relu`]): the same network, another backward;
//! * inputs are flat observations `[batch, obs_len]`; a CNN reshapes them to `[batch, C, H, W]` itself.

use crate::core::CoreModule;
use crate::head::HeadModule;
use crate::relu::ReluMode;
use crate::torso::TorsoModule;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// The trunk of a network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Torso {
    /// Fully connected layers of the given widths, ReLU after each.
    Mlp { hidden: Vec<usize> },
    /// Young & Tian (2019): conv 16 3×3 stride 1 → ReLU → FC 128 → ReLU, for C×10×10 MinAtar frames.
    MinatarCnn,
    /// Mnih et al. (2015): conv 32 8×8/4 → 64 4×4/2 → 64 3×3/1 → FC 512, for 4×84×84 frames.
    NatureCnn,
    /// Koul et al. (2019)'s control torso for Moore machine networks: FC 16 → ELU → FC 8 → ReLU6. The features are
    /// bounded so that an observation bottleneck, whose decoder ends in ReLU6, can reproduce them.
    MmnMlp,
    /// The MinAtar CNN with ReLU6 after its fully connected layer (bounded features, as [`Torso::MmnMlp`]).
    MmnMinatarCnn,
    /// Dopamine's MinAtar network for Rainbow (Obando-Ceron & Castro 2021): conv 16 3×3 stride 1 → ReLU, flattened
    /// (16 × 8 × 8 = 1,024 features), the head reading it directly.
    MinatarConv,
    /// The IFE seed's interpretable feature extractor ([`crate::ife`]): non-overlapping convolutions, a soft
    /// spatial attention over their cells (probe `attention`), residual blocks; width multiplier `m` (2), then an
    /// FC 256 (the seed's dueling streams each have one: use it with two streams).
    Ife { m: usize },
}

/// What the network outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// One Q value per action.
    Q,
    /// Wang et al. (2016): Q = V + A − mean(A), with V and A exposed.
    Dueling,
    /// Policy logits and a state value.
    ActorCritic,
}

/// A recurrent core between the torso and the heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoreKind {
    Lstm,
    Gru,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Core {
    pub kind: CoreKind,
    pub hidden: usize,
}

/// The state a recurrent core carries from one step to the next: `[batch, hidden]` (LSTMs also carry a cell).
#[derive(Clone, Debug)]
pub struct RecurrentState {
    pub hidden: Tensor<2>,
    pub cell: Option<Tensor<2>>,
}

/// Everything needed to rebuild a network (stored in `run.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSpec {
    /// Observation shape, e.g. `[4]` or `[4, 10, 10]`.
    pub obs_shape: Vec<usize>,
    pub actions: usize,
    pub torso: Torso,
    pub head: HeadKind,
    /// Observations are multiplied by this first (1/255 for networks trained on raw Atari pixels).
    #[serde(default = "one")]
    pub input_scale: f32,
    /// An LSTM or GRU between the torso and the heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<Core>,
    /// DRQN: the observation is a stack of this many frames (its first axis); the torso sees each frame, the core
    /// runs over them from a zero state, and the heads read its last step. 0 = not stacked.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frames: usize,
    /// Wang et al. (2016)'s two streams: the value head reads its own copy of the torso's hidden layers (probes
    /// `value_fc1`, …) instead of sharing them with the advantages or logits. Feed-forward only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub streams: bool,
    /// Rainbow's distributional head (C51, Bellemare et al. 2017): each action's return as a categorical
    /// distribution over evenly spaced atoms; its Q values are the distributions' means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atoms: Option<Atoms>,
    /// Rainbow's noisy nets (Fortunato et al. 2018): factorised Gaussian noise of this σ0 on the head's layers,
    /// on in passes that ask for it ([`Pass::noise`]); without it a pass computes the means, the paper's
    /// evaluation mode (what `play`, `explain` and `evaluate` see).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noisy: Option<f32>,
}

/// The support of a distributional head: `n` atoms evenly spaced on [v_min, v_max].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Atoms {
    pub n: usize,
    pub v_min: f32,
    pub v_max: f32,
}

impl Atoms {
    /// The atoms' values z_i = v_min + i·Δz.
    pub fn values(&self) -> Vec<f32> {
        let dz = (self.v_max - self.v_min) / (self.n.max(2) - 1) as f32;
        (0..self.n).map(|i| self.v_min + i as f32 * dz).collect()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// For serde: leave zero counts out of documents.
pub fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn one() -> f32 {
    1.0
}

/// The options of one forward pass.
///
/// For a recurrent network the observations are `seq_len` consecutive steps of each sequence, sequence-major (row
/// `b·seq_len + t` is step t of sequence b); the core starts from `state` (zeros when `None`) and the returned
/// [`Heads::state`] is its state after the last step. Feed-forward networks ignore both.
#[derive(Clone, Debug, Default)]
pub struct Pass {
    pub state: Option<RecurrentState>,
    /// Steps per sequence (0 or 1: one step).
    pub seq_len: usize,
    /// Layer to expose (see [`Net::layer_names`]).
    pub probe: Option<String>,
    /// How every ReLU of the pass sends gradients back (guided backprop, deconvnet); the forward is unchanged.
    pub relu: ReluMode,
    /// Noisy networks: use the current noise (training and acting); otherwise the means.
    pub noise: bool,
}

/// A layer's activation and the zero leaf added to it (read the leaf's gradient after `backward`).
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: String,
    /// `[batch, channels, height, width]` for conv layers, `[batch, features, 1, 1]` for dense ones.
    pub activation: Tensor<4>,
    /// Present when the pass runs on an autodiff device.
    pub leaf: Option<Tensor<4>>,
}

/// The named outputs of a forward pass; each is `[batch, n]`.
#[derive(Debug, Clone)]
pub struct Heads {
    pub q: Option<Tensor<2>>,
    pub advantage: Option<Tensor<2>>,
    /// `[batch, 1]`.
    pub value: Option<Tensor<2>>,
    pub logits: Option<Tensor<2>>,
    pub probe: Option<Probe>,
    /// The recurrent state after the last step (recurrent networks only).
    pub state: Option<RecurrentState>,
}

/// A network composed of pieces: a [`TorsoModule`] (convolutions, fully connected layers), an optional recurrent
/// [`CoreModule`], and a [`HeadModule`]. The fields are in the order the optimiser's state was saved in before the pieces were
/// split out (convolutions, fully connected layers, value stream, outputs, value, core).
#[derive(Module, Debug)]
pub struct Net {
    torso: TorsoModule,
    head: HeadModule,
    core: Option<CoreModule>,
    #[module(skip)]
    spec: NetSpec,
}

/// A layer's activation, exposed as the pass's probe when it names the layer: on an autodiff device a zero leaf is
/// added to it, whose gradient is the gradient at the layer.
pub(crate) fn tap(pass: &Pass, probe: &mut Option<Probe>, name: String, act: Tensor<4>) -> Tensor<4> {
    if pass.probe.as_deref() != Some(name.as_str()) {
        return act;
    }
    let leaf = act.is_autodiff().then(|| act.zeros_like().require_grad());
    let out = match &leaf {
        Some(l) => act.clone() + l.clone(),
        None => act.clone(),
    };
    *probe = Some(Probe { name, activation: act, leaf });
    out
}

impl NetSpec {
    /// A spec for raw observations (input scale 1).
    pub fn new(obs_shape: Vec<usize>, actions: usize, torso: Torso, head: HeadKind) -> Self {
        NetSpec {
            obs_shape,
            actions,
            torso,
            head,
            input_scale: 1.0,
            core: None,
            frames: 0,
            streams: false,
            atoms: None,
            noisy: None,
        }
    }

    /// The same network with separate value and advantage (or policy) streams.
    pub fn with_streams(self) -> Self {
        NetSpec { streams: true, ..self }
    }

    /// The same network with a recurrent core.
    pub fn with_core(self, core: Core) -> Self {
        NetSpec { core: Some(core), ..self }
    }

    /// The shape the torso sees: one frame of a DRQN stack, else the whole observation.
    pub fn frame_shape(&self) -> &[usize] {
        if self.frames > 0 { &self.obs_shape[1..] } else { &self.obs_shape }
    }

    /// Whether the core carries a state from one step to the next (a DRQN restarts from zeros over its stack).
    pub fn carries_state(&self) -> bool {
        self.core.is_some() && self.frames == 0
    }

    /// Checks that the torso fits the observation, with an error that says what would.
    pub fn validate(&self) -> Result<(), String> {
        if self.actions == 0 {
            return Err("a network needs at least one action".into());
        }
        if self.frames > 0 && (self.core.is_none() || self.obs_shape.first() != Some(&self.frames)) {
            return Err(format!(
                "a {}-frame network needs a recurrent core and observations stacked on their first axis, got {:?}",
                self.frames, self.obs_shape
            ));
        }
        if let Some(a) = self.atoms
            && (a.n < 2 || a.v_min >= a.v_max || !a.v_min.is_finite() || !a.v_max.is_finite())
        {
            return Err(format!(
                "a distributional head needs at least 2 atoms on a finite [v_min, v_max] with v_min < v_max, got {} \
                 on [{}, {}]",
                a.n, a.v_min, a.v_max
            ));
        }
        if self.atoms.is_some() && self.head == HeadKind::ActorCritic {
            return Err("a distributional head is a Q head (plain or dueling), not an actor-critic one".into());
        }
        if self.noisy.is_some_and(|s| !(s >= 0.0 && s.is_finite())) {
            return Err("noisy layers need a finite σ0 ≥ 0 (0.5 in Fortunato et al.)".into());
        }
        if self.streams && (self.core.is_some() || self.head == HeadKind::Q) {
            return Err(
                "separate value and advantage streams need a dueling or actor-critic head and no recurrent core".into(),
            );
        }
        match (&self.torso, self.frame_shape()) {
            (Torso::Mlp { .. } | Torso::MmnMlp, s) if !s.is_empty() => Ok(()),
            (Torso::MinatarCnn | Torso::MmnMinatarCnn | Torso::MinatarConv, [_, 10, 10]) => Ok(()),
            // 84 × 84 (Mnih et al.), or any frame its three convolutions fit (the seeds' 80 × 80): 36 px at least.
            (Torso::NatureCnn, [_, h, w]) if *h >= 36 && *w >= 36 => Ok(()),
            (Torso::Ife { m }, s) if (1..=16).contains(m) => crate::ife::IfeShape::for_frame(s, *m).map(|_| ()),
            (torso, s) => Err(format!("torso {torso:?} does not fit observations of shape {s:?}")),
        }
    }
}

impl Net {
    /// A freshly initialised network (PyTorch's default initialisation), on `device`.
    pub fn new(spec: &NetSpec, device: &Device) -> Result<Self, String> {
        spec.validate()?;
        let (torso, conv_flat) = TorsoModule::new(spec, device);
        let mut features = torso.out_len(conv_flat);
        let core = spec.core.map(|c| {
            let core = CoreModule::new(c, features, device);
            features = c.hidden;
            core
        });
        let head = HeadModule::new(spec, features, conv_flat, device);
        Ok(Net { torso, head, core, spec: spec.clone() })
    }

    pub fn spec(&self) -> &NetSpec {
        &self.spec
    }

    /// The same network re-initialised as CleanRL's `layer_init` does for PPO: every weight orthogonal — gain √2
    /// in the torso (and a two-stream value copy of it), `out_gain` for the logits or Q values (0.01 in CleanRL's
    /// actor), 1 for the value head — and every bias 0. A recurrent core keeps its own initialisation.
    pub fn orthogonal_init(mut self, out_gain: f64) -> Net {
        let device = self.device();
        let root2 = std::f64::consts::SQRT_2;
        self.torso.orthogonal(root2, &device);
        self.head.orthogonal(root2, out_gain, &device);
        self
    }

    pub fn torso(&self) -> &TorsoModule {
        &self.torso
    }

    pub fn head(&self) -> &HeadModule {
        &self.head
    }

    /// The device the network's parameters live on (with autodiff when they take gradients).
    pub fn device(&self) -> Device {
        self.head.out().weight.val().device()
    }

    fn takes_gradients(&self) -> bool {
        self.head.out().weight.val().is_autodiff()
    }

    /// The names a probe can take, input side first: each convolution's output `convN` and its ReLU's
    /// `convN.relu`, each fully connected layer's `fcN` and `fcN.relu` (`value_fcN…` for a two-stream value head),
    /// and the recurrent core's output `core`.
    pub fn layer_names(&self) -> Vec<String> {
        let core = self.core.as_ref().map(|_| "core".to_string());
        self.torso.layer_names().into_iter().chain(self.head.layer_names()).chain(core).collect()
    }

    /// Runs the network on flat observations `[batch, obs_len]`.
    pub fn forward(&self, obs: Tensor<2>, pass: &Pass) -> Heads {
        // Observations off the autodiff device want no gradients: run the inner-backend copy of the weights.
        // (Through autodiff parameters, burn keeps every pass's graph until a backward that never comes — about
        // 50 MB per Nature-CNN batch of 64.)
        if !obs.is_autodiff() && self.takes_gradients() {
            return self.valid().forward(obs, pass);
        }
        let [batch, _] = obs.dims();
        let obs = if self.spec.input_scale == 1.0 { obs } else { obs.mul_scalar(self.spec.input_scale) };
        let mut probe = None;
        // A DRQN stack of k frames becomes k rows per sample, each frame through the torso.
        let k = self.spec.frames.max(1);
        let frame_len = self.spec.frame_shape().iter().product::<usize>();
        let obs: Tensor<2> = if k > 1 { obs.reshape([batch * k, frame_len]) } else { obs };
        let x = self.torso.conv_features(obs, self.spec.frame_shape(), pass, &mut probe);
        self.after_convs(x, pass, probe)
    }

    /// The heads from the first convolution's output before its ReLU, `[batch, c·h·w]` (flat; one frame per row):
    /// what [`Net::forward`] computes after that convolution. The first layer is linear in the input, so methods
    /// that sum input gradients (integrated gradients, SmoothGrad's mean) can sum them at its output instead and
    /// take its backward once per sample.
    pub fn forward_from_first_conv(&self, z: Tensor<2>, pass: &Pass) -> Heads {
        if !z.is_autodiff() && self.takes_gradients() {
            return self.valid().forward_from_first_conv(z, pass);
        }
        let g = *self.conv_geometries().first().expect("a network with convolutions");
        let ([batch, _], (oh, ow)) = (z.dims(), g.out_hw());
        let mut probe = None;
        let x = self.torso.convs_from(z.reshape([batch, g.cout, oh, ow]), pass, &mut probe);
        self.after_convs(x, pass, probe)
    }

    /// The heads from the convolutions' flattened output `[batch, features]` (each frame's, for a DRQN stack):
    /// what [`Net::forward`] computes after its last convolution. Perturbation saliency computes that output
    /// itself, only where a perturbation reaches.
    pub fn forward_from_convs(&self, features: Tensor<2>, pass: &Pass) -> Heads {
        if !features.is_autodiff() && self.takes_gradients() {
            return self.valid().forward_from_convs(features, pass);
        }
        self.after_convs(features, pass, None)
    }

    /// Each convolution's geometry, input side first (none for an MLP).
    pub fn conv_geometries(&self) -> Vec<crate::fast::conv::Geometry> {
        let [mut c, mut h, mut w] = self.spec.frame_shape()[..] else { return vec![] };
        let mut out = vec![];
        for conv in self.torso.convs() {
            let [cout, _, k, _] = conv.weight.dims();
            let g = crate::fast::conv::Geometry { c, h, w, cout, k, s: conv.stride[0] };
            out.push(g);
            (c, (h, w)) = (cout, g.out_hw());
        }
        out
    }

    /// The convolutions as plain values, input side first: (geometry, weight `[cout, c·k·k]`, bias), each copied
    /// out of its tensor only when the iterator reaches it.
    pub fn conv_values(&self) -> impl Iterator<Item = (crate::fast::conv::Geometry, Vec<f32>, Vec<f32>)> + '_ {
        self.conv_geometries().into_iter().zip(self.torso.convs()).map(|(g, conv)| {
            let bias = conv.bias.as_ref().map(|b| to_vec(b.val())).unwrap_or_else(|| vec![0.0; g.cout]);
            (g, to_vec(conv.weight.val()), bias)
        })
    }

    /// The torso's fully connected layers, the core and the head, from the convolutions' flattened output.
    fn after_convs(&self, conv_features: Tensor<2>, pass: &Pass, probe: Option<Probe>) -> Heads {
        let (x, value_x, probe, state) = self.head_inputs(conv_features, pass, probe);
        Heads { probe, state, ..self.head.forward(x, value_x, pass.noise) }
    }

    /// A distributional network's log-probabilities `[batch, actions, atoms]` (C51's loss reads them; Q is their
    /// mean under [`Atoms::values`]); `None` for a network without atoms.
    pub fn log_distribution(&self, obs: Tensor<2>, pass: &Pass) -> Option<Tensor<3>> {
        self.spec.atoms?;
        if !obs.is_autodiff() && self.takes_gradients() {
            return self.valid().log_distribution(obs, pass);
        }
        let obs = if self.spec.input_scale == 1.0 { obs } else { obs.mul_scalar(self.spec.input_scale) };
        let mut probe = None;
        let x = self.torso.conv_features(obs, self.spec.frame_shape(), pass, &mut probe);
        let (x, value_x, _, _) = self.head_inputs(x, pass, probe);
        self.head.log_distribution(x, value_x, pass.noise)
    }

    /// Draws fresh noise for every noisy layer (nothing for a network without them).
    pub fn reset_noise(&mut self, rng: &mut impl rand::Rng) {
        self.head.reset_noise(rng);
    }

    /// What the head reads: (features, a two-stream value's features, the probe, the core's state).
    #[allow(clippy::type_complexity)]
    fn head_inputs(
        &self,
        conv_features: Tensor<2>,
        pass: &Pass,
        mut probe: Option<Probe>,
    ) -> (Tensor<2>, Option<Tensor<2>>, Option<Probe>, Option<RecurrentState>) {
        let k = self.spec.frames.max(1);
        // Two-stream networks: the value stream starts from the convolutions' features too.
        let value_x = self.head.value_stream(conv_features.clone(), pass, &mut probe);
        let mut x = self.torso.dense(conv_features, pass, &mut probe);
        let mut state = None;
        if let Some(core) = &self.core {
            // Rows are sequences of t steps: a DRQN's k stacked frames (the heads read the last step), or
            // `pass.seq_len` steps of a stateful core (the heads read every step).
            let t = if self.spec.frames > 0 { k } else { pass.seq_len.max(1) };
            let [rows, f] = x.dims();
            assert_eq!(rows % t, 0, "{rows} rows do not split into sequences of {t} steps");
            let (out, s) = core.forward(x.reshape([rows / t, t, f]), pass.state.clone());
            let h = out.dims()[2];
            let out: Tensor<2> = if self.spec.frames > 0 {
                out.slice([0..rows / t, t - 1..t, 0..h]).reshape([rows / t, h])
            } else {
                out.reshape([rows, h])
            };
            let n = out.dims()[0];
            x = tap(pass, &mut probe, "core".into(), out.reshape([n, h, 1, 1])).reshape([n, h]);
            state = Some(s);
        }
        (x, value_x, probe, state)
    }

    /// The torso's output for one step, `[batch, features]`: what the recurrent core reads (a Moore machine network's
    /// observation bottleneck goes here). Plain observations, one step per row.
    pub fn features(&self, obs: Tensor<2>) -> Tensor<2> {
        if !obs.is_autodiff() && self.takes_gradients() {
            return self.valid().features(obs);
        }
        let pass = Pass::default();
        let obs = if self.spec.input_scale == 1.0 { obs } else { obs.mul_scalar(self.spec.input_scale) };
        let x = self.torso.conv_features(obs, self.spec.frame_shape(), &pass, &mut None);
        self.torso.dense(x, &pass, &mut None)
    }

    /// One step of the recurrent core from `features` `[batch, features]` and the previous hidden state
    /// `[batch, hidden]`: the new hidden state (the GRU's output; an LSTM's cell is started from zeros). `None` for
    /// a network without a core.
    pub fn core_step(&self, features: Tensor<2>, hidden: Tensor<2>) -> Option<Tensor<2>> {
        let core = self.core.as_ref()?;
        let [b, f] = features.dims();
        let (_, s) = core.forward(features.reshape([b, 1, f]), Some(RecurrentState { hidden, cell: None }));
        Some(s.hidden)
    }

    /// The heads read from the core's output `[batch, hidden]` (or from the torso's features without a core).
    pub fn heads_from(&self, x: Tensor<2>) -> Heads {
        self.head.forward(x, None, false)
    }

    /// The recurrent core's width (`None` without one).
    pub fn hidden_size(&self) -> Option<usize> {
        self.spec.core.map(|c| c.hidden)
    }

    /// The torso's output width (what [`Net::features`] returns per row).
    pub fn feature_size(&self) -> usize {
        let flat = match self.conv_geometries().last() {
            Some(g) => g.cout * g.out_hw().0 * g.out_hw().1,
            None => self.spec.frame_shape().iter().product(),
        };
        self.torso.out_len(flat)
    }

    /// The first parameter that holds a NaN or an infinity, as (tensor index in visiting order, value index, value):
    /// imported or loaded weights are checked with it, since a diverged network explains nothing.
    pub fn first_nonfinite(&self) -> Option<(usize, usize, f32)> {
        use burn::module::{ModuleVisitor, Param};
        struct Find(usize, Option<(usize, usize, f32)>);
        impl ModuleVisitor for Find {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                if self.1.is_none() {
                    let v = to_vec(p.val());
                    self.1 = v.iter().position(|x| !x.is_finite()).map(|i| (self.0, i, v[i]));
                }
                self.0 += 1;
            }
        }
        let mut f = Find(0, None);
        self.visit(&mut f);
        f.1
    }

    /// Q values (or logits for actor-critic nets): the scores an agent acts greedily on.
    pub fn scores(&self, obs: Tensor<2>) -> Tensor<2> {
        let h = self.forward(obs, &Pass::default());
        h.q.or(h.logits).expect("every head yields Q values or logits")
    }
}

/// Re-creates every parameter as a new autodiff leaf with the same values and ids (see [`Net::with_own_leaves`]);
/// `frozen` leaves them without gradients (see [`Net::frozen`]).
struct FreshLeaves {
    frozen: bool,
}

impl burn::module::ModuleMapper for FreshLeaves {
    fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad() && !self.frozen;
        // `detach` keeps the tensor's `require_grad` flag (burn's autodiff), so set it explicitly either way.
        let fresh = tensor.detach().set_require_grad(require_grad);
        burn::module::Param::from_mapped_value(id, fresh, mapper)
    }
}

impl Net {
    /// A copy whose parameters are new autodiff leaves (same values, same parameter ids, so gradients computed on
    /// it apply to the original). Threads that run backward passes concurrently need this: burn's autodiff refuses
    /// two graphs racing over one leaf.
    pub fn with_own_leaves(&self) -> Net {
        self.clone().map(&mut FreshLeaves { frozen: false })
    }

    /// A copy whose parameters take no gradients, for explanations: a backward pass then computes input (and
    /// probe) gradients only, not the weight gradients training needs.
    pub fn frozen(&self) -> Net {
        frozen(self)
    }

    /// Scales the gradients of all the network's parameters (recurrent cores included) so that their global L2
    /// norm is at most `max_norm` (PyTorch's `clip_grad_norm_`; burn's own clipping works per tensor). Returns the
    /// norm before clipping.
    pub fn clip_grad_norm(&self, grads: &mut burn::optim::GradientsParams, max_norm: f32) -> f32 {
        clip_grad_norm(self, grads, max_norm)
    }
}

/// A copy of any module whose parameters take no gradients (see [`Net::frozen`]).
pub fn frozen<M: Module>(m: &M) -> M {
    m.clone().map(&mut FreshLeaves { frozen: true })
}

/// Scales the gradients of `module`'s parameters so that their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`; burn's own clipping works per tensor). Returns the norm before clipping.
pub fn clip_grad_norm<M: Module>(module: &M, grads: &mut burn::optim::GradientsParams, max_norm: f32) -> f32 {
    use burn::module::{ModuleVisitor, Param};
    struct SumSquares<'a> {
        grads: &'a burn::optim::GradientsParams,
        total: f32,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(p.id) {
                self.total += to_vec(g.powf_scalar(2.0).sum())[0];
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut burn::optim::GradientsParams,
        factor: f32,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(p.id) {
                self.grads.register::<D>(p.id, g.mul_scalar(self.factor));
            }
        }
    }
    let mut sum = SumSquares { grads, total: 0.0 };
    module.visit(&mut sum);
    let norm = sum.total.sqrt();
    if norm > max_norm {
        module.visit(&mut Scale { grads, factor: max_norm / (norm + 1e-6) });
    }
    norm
}

/// A one-thread pool for acting at batch 1: waking worker threads costs more than the tiny kernels they would
/// share (burn's CPU backend runs its kernels on the current rayon pool).
pub fn acting_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool can always be built")
}

/// Converts rows of f32 observations into a `[batch, len]` tensor. (Through `TensorData::new` on an owned copy:
/// burn's `from_floats` converts value by value, ten times slower — 0.19 against 0.02 ms for 8 Nature-CNN frames.)
pub fn batch(rows: &[f32], len: usize, device: &Device) -> Tensor<2> {
    let b = rows.len() / len.max(1);
    Tensor::from_data(burn::tensor::TensorData::new(rows.to_vec(), [b, len]), device)
}

/// The values of a tensor as a flat `Vec<f32>`.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 data")
}

/// Index of the largest value of each row of a `[batch, n]` tensor.
pub fn argmax_rows(t: Tensor<2>) -> Vec<usize> {
    let [_, n] = t.dims();
    let v = to_vec(t);
    v.chunks(n)
        .map(|row| row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relu::relu_with;
    use crate::{conv_gemm, dueling};
    use burn::nn::conv::Conv2dConfig;

    /// The tests' device: Flex unless `XRL_TEST_DEVICE` names another (see [`crate::device::for_tests`]).
    fn cpu() -> Device {
        crate::device::for_tests()
    }

    /// `conv_gemm` equals burn's convolution, and so do the gradients of the input, the weight and the bias (random
    /// data; kernel and stride of every xrl CNN layer, plus a kernel size without its own copy loop, and outputs of
    /// 289 and 256 positions, which go to their channel planes eight positions at a time; 32 and 64 output channels,
    /// which the direct product takes, at position counts that are not whole tiles of six; batches of 3 and 1, each
    /// with new weights of the same shape, so that a weight transpose kept from the call before is not reused).
    #[test]
    fn conv_gemm_matches_burns_convolution_and_its_gradients() {
        use burn::tensor::Distribution;
        let d = cpu().autodiff();
        d.seed(3);
        let layers = [
            (4, 16, 3, 1, 10),
            (4, 32, 8, 4, 20),
            (3, 5, 4, 2, 9),
            (6, 4, 3, 1, 7),
            (2, 3, 5, 3, 11),
            (2, 3, 3, 1, 19),
            (1, 2, 4, 4, 64),
            (3, 64, 3, 1, 9),
            (5, 64, 4, 2, 13),
            (2, 32, 3, 2, 19),
        ];
        // On two threads, batch 3 runs as samples {0, 1} and {2}, and the MinAtar-sized layer puts samples 0 and 1
        // in one product; batch 1 lets gemm use the threads.
        let two_threads = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let cases = layers.into_iter().flat_map(|l| [(l, 3), (l, 1)]);
        two_threads.install(|| {
            for ((cin, cout, k, s, hw), batch) in cases {
                let conv = Conv2dConfig::new([cin, cout], [k, k]).with_stride([s, s]).init(&d);
                let x = Tensor::<4>::random([batch, cin, hw, hw], Distribution::Uniform(-1.0, 1.0), &d).require_grad();
                let probe = Tensor::<4>::random(conv.forward(x.clone()).dims(), Distribution::Uniform(-1.0, 1.0), &d);
                let grads_of = |y: Tensor<4>| {
                    let g = (y.clone() * probe.clone()).sum().backward();
                    let w = conv.weight.val().grad(&g).unwrap();
                    let b = conv.bias.as_ref().unwrap().val().grad(&g).unwrap();
                    (to_vec(y), to_vec(x.grad(&g).unwrap()), to_vec(w), to_vec(b))
                };
                let ours = grads_of(conv_gemm(&conv, x.clone()));
                let burns = grads_of(conv.forward(x.clone()));
                for (name, a, b) in [
                    ("output", &ours.0, &burns.0),
                    ("dx", &ours.1, &burns.1),
                    ("dw", &ours.2, &burns.2),
                    ("db", &ours.3, &burns.3),
                ] {
                    assert_eq!(a.len(), b.len(), "{name}");
                    for (i, (u, v)) in a.iter().zip(b.iter()).enumerate() {
                        assert!((u - v).abs() <= 1e-4 * (1.0 + v.abs()), "{name}[{i}] k{k} s{s}: {u} vs {v}");
                    }
                }
            }
        });
    }

    /// CleanRL's `layer_init`: torso weights orthogonal with gain √2 (fc1 is [8 in, 16 out]: its 8 rows orthogonal,
    /// each of squared norm 2), the actor's with gain 0.01, biases zero.
    #[test]
    fn orthogonal_init_gives_orthogonal_weights_of_the_gains_and_zero_biases() {
        let d = cpu();
        d.seed(1);
        let spec = NetSpec::new(vec![8], 3, Torso::Mlp { hidden: vec![16] }, HeadKind::ActorCritic);
        let net = Net::new(&spec, &d).unwrap().orthogonal_init(0.01);
        let gram = |w: Tensor<2>, rows: bool| {
            let w = if rows { w } else { w.transpose() };
            to_vec(w.clone().matmul(w.transpose()))
        };
        // fc1: [8 in, 16 out] — its 8 rows orthogonal, each of squared norm 2.
        let fc = &net.torso.fc()[0];
        let g = gram(fc.weight.val(), true);
        for i in 0..8 {
            for j in 0..8 {
                let want = if i == j { 2.0 } else { 0.0 };
                assert!((g[i * 8 + j] - want).abs() < 1e-4, "fc1 gram[{i}][{j}] = {}", g[i * 8 + j]);
            }
        }
        assert!(to_vec(fc.bias.as_ref().unwrap().val()).iter().all(|&b| b == 0.0));
        // The actor: [16 in, 3 out] — its 3 columns orthogonal of squared norm 1e-4.
        let g = gram(net.head.out().weight.val(), false);
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1e-4 } else { 0.0 };
                assert!((g[i * 3 + j] - want).abs() < 1e-7, "actor gram[{i}][{j}] = {}", g[i * 3 + j]);
            }
        }
    }

    /// The host QR gives burn's `Initializer::Orthogonal` (the same draw, QR and signs), tall, wide and 4-D.
    #[test]
    fn host_orthogonal_init_is_burns() {
        let d = cpu();
        let check = |ours: Vec<f32>, burns: Vec<f32>| {
            assert_eq!(ours.len(), burns.len());
            for (a, b) in ours.iter().zip(&burns) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        };
        for dims in [[6usize, 4], [3, 7]] {
            d.seed(3);
            let ours = to_vec(crate::torso::orthogonal_param(dims, 1.5, &d).val());
            d.seed(3);
            let burns: Tensor<2> = burn::nn::Initializer::Orthogonal { gain: 1.5 }.init(dims, &d).val();
            check(ours, to_vec(burns));
        }
        d.seed(4);
        let ours = to_vec(crate::torso::orthogonal_param([4, 2, 3, 3], 1.0, &d).val());
        d.seed(4);
        let burns: Tensor<4> = burn::nn::Initializer::Orthogonal { gain: 1.0 }.init([4, 2, 3, 3], &d).val();
        check(ours, to_vec(burns));
    }

    #[test]
    fn dueling_aggregation_is_per_sample() {
        let d = cpu();
        let v = Tensor::<2>::from_floats([[1.0], [10.0]], &d);
        let a = Tensor::<2>::from_floats([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]], &d);
        // Sample 0: mean A = 2 → Q = 1 + A − 2; sample 1: mean A = 2 → Q = 10 + A − 2.
        assert_eq!(to_vec(dueling(v, a)), vec![0.0, 1.0, 2.0, 8.0, 8.0, 14.0]);
    }

    #[test]
    fn shapes_and_heads_for_every_torso() {
        let d = cpu();
        let specs = [
            (vec![4], Torso::Mlp { hidden: vec![64, 64] }, HeadKind::Q, vec!["fc1", "fc2"]),
            (vec![4, 10, 10], Torso::MinatarCnn, HeadKind::Dueling, vec!["conv1", "fc1"]),
            (vec![4, 84, 84], Torso::NatureCnn, HeadKind::ActorCritic, vec!["conv1", "conv2", "conv3", "fc1"]),
        ];
        for (shape, torso, head, layers) in specs {
            let spec = NetSpec::new(shape.clone(), 6, torso, head);
            let net = Net::new(&spec, &d).unwrap();
            let plain: Vec<String> = net.layer_names().into_iter().filter(|l| !l.ends_with(".relu")).collect();
            assert_eq!(plain, layers);
            let len: usize = shape.iter().product();
            let h = net.forward(Tensor::zeros([3, len], &d), &Pass::default());
            assert_eq!(net.scores(Tensor::zeros([3, len], &d)).dims(), [3, 6]);
            assert_eq!(h.value.is_some(), head != HeadKind::Q);
            assert_eq!(h.advantage.is_some(), head == HeadKind::Dueling);
        }
        let bad = NetSpec::new(vec![4], 2, Torso::NatureCnn, HeadKind::Q);
        assert!(Net::new(&bad, &d).unwrap_err().contains("does not fit"));
    }

    /// The probe leaf's gradient is d(output)/d(activation): compare with a finite difference obtained by
    /// nudging the activation through the leaf itself.
    #[test]
    fn probe_gradient_matches_finite_differences() {
        let d = cpu().autodiff();
        d.seed(7);
        let spec = NetSpec::new(vec![4, 10, 10], 3, Torso::MinatarCnn, HeadKind::Q);
        let net = Net::new(&spec, &d).unwrap();
        let obs = Tensor::<2>::random([1, 400], burn::tensor::Distribution::Uniform(0.0, 1.0), &d);
        let pass = Pass { probe: Some("conv1.relu".into()), ..Pass::default() };
        let h = net.forward(obs.clone(), &pass);
        let q0 = h.q.unwrap().slice([0..1, 1..2]).sum();
        let probe = h.probe.unwrap();
        let leaf = probe.leaf.unwrap();
        let grads = q0.backward();
        let g = to_vec(leaf.grad(&grads).unwrap());
        assert_eq!(g.len(), 16 * 8 * 8);
        // Perturb a few activation cells with positive activation (ReLU is linear there) and compare.
        let act = to_vec(probe.activation);
        let eps = 1e-2f32;
        let base = to_vec(net.forward(obs.clone(), &Pass::default()).q.unwrap())[1];
        let mut checked = 0;
        for i in (0..act.len()).filter(|&i| act[i] > 0.05).take(5) {
            // Adding eps at cell i of conv1's output changes q[1] by about g[i]·eps; do it through a bias-like
            // nudge: the same forward with the probe leaf replaced by a one-hot eps tensor.
            let mut bump = vec![0.0f32; act.len()];
            bump[i] = eps;
            let bump = Tensor::<1>::from_floats(bump.as_slice(), &d).reshape([1, 16, 8, 8]);
            let q = nudged_q(&net, obs.clone(), bump);
            let fd = (q - base) / eps;
            assert!((fd - g[i]).abs() < 1e-3 * (1.0 + g[i].abs()), "cell {i}: fd {fd} vs grad {}", g[i]);
            checked += 1;
        }
        assert!(checked > 0);
    }

    /// A recurrent core run one step at a time, carrying its explicit state, gives what one pass over the whole
    /// sequence gives; and the state matters.
    #[test]
    fn recurrent_cores_step_by_step_equal_the_sequence() {
        let d = cpu();
        d.seed(5);
        for kind in [CoreKind::Lstm, CoreKind::Gru] {
            let spec = NetSpec::new(vec![3], 2, Torso::Mlp { hidden: vec![8] }, HeadKind::ActorCritic)
                .with_core(Core { kind, hidden: 6 });
            let net = Net::new(&spec, &d).unwrap();
            assert_eq!(net.layer_names(), vec!["fc1", "fc1.relu", "core"]);
            // Two sequences of four steps, sequence-major rows.
            let obs: Vec<f32> = (0..24).map(|i| ((i * 37) % 11) as f32 / 11.0 - 0.5).collect();
            let whole = net.forward(batch(&obs, 3, &d), &Pass { seq_len: 4, ..Pass::default() });
            let whole_logits = to_vec(whole.logits.unwrap());
            let mut state: Option<RecurrentState> = None;
            for t in 0..4 {
                let rows: Vec<f32> =
                    [0, 1].iter().flat_map(|b| obs[(b * 4 + t) * 3..(b * 4 + t + 1) * 3].to_vec()).collect();
                let h = net.forward(batch(&rows, 3, &d), &Pass { state: state.clone(), seq_len: 1, ..Pass::default() });
                let step = to_vec(h.logits.unwrap());
                for b in 0..2 {
                    for a in 0..2 {
                        let (x, y) = (step[b * 2 + a], whole_logits[(b * 4 + t) * 2 + a]);
                        assert!((x - y).abs() < 1e-5, "{kind:?} t {t} b {b}: {x} vs {y}");
                    }
                }
                state = h.state;
            }
            let final_whole = to_vec(whole.state.unwrap().hidden);
            assert!(final_whole.iter().zip(to_vec(state.clone().unwrap().hidden)).all(|(a, b)| (a - b).abs() < 1e-5));
            // Another initial state changes the output.
            let first: Vec<f32> = obs[..3].to_vec();
            let zero = to_vec(net.forward(batch(&first, 3, &d), &Pass::default()).logits.unwrap());
            let carried = to_vec(
                net.forward(
                    batch(&first, 3, &d),
                    &Pass {
                        state: state.map(|s| RecurrentState {
                            hidden: s.hidden.slice([0..1, 0..6]),
                            cell: s.cell.map(|c| c.slice([0..1, 0..6])),
                        }),
                        ..Pass::default()
                    },
                )
                .logits
                .unwrap(),
            );
            assert_ne!(zero, carried, "{kind:?}: the state must matter");
        }
    }

    /// A DRQN network over a stack of k frames equals the same core run over the k frames as a sequence.
    #[test]
    fn drqn_stack_is_the_core_over_its_frames() {
        let d = cpu();
        d.seed(9);
        let core = Core { kind: CoreKind::Lstm, hidden: 5 };
        let spec = NetSpec {
            frames: 3,
            ..NetSpec::new(vec![3, 4], 2, Torso::Mlp { hidden: vec![6] }, HeadKind::Q).with_core(core)
        };
        let net = Net::new(&spec, &d).unwrap();
        let obs: Vec<f32> = (0..24).map(|i| ((i * 13) % 7) as f32 / 7.0).collect(); // 2 samples × 3 frames × 4
        let q = to_vec(net.forward(batch(&obs, 12, &d), &Pass::default()).q.unwrap());
        // The same weights as a sequence net: frames become time steps; keep each sequence's last step.
        let seq = Net { spec: NetSpec { frames: 0, obs_shape: vec![4], ..spec.clone() }, ..net.clone() };
        let q_seq = to_vec(seq.forward(batch(&obs, 4, &d), &Pass { seq_len: 3, ..Pass::default() }).q.unwrap());
        for b in 0..2 {
            for a in 0..2 {
                assert!((q[b * 2 + a] - q_seq[(b * 3 + 2) * 2 + a]).abs() < 1e-6);
            }
        }
        let bad = NetSpec { frames: 3, ..NetSpec::new(vec![3, 4], 2, Torso::Mlp { hidden: vec![6] }, HeadKind::Q) };
        assert!(Net::new(&bad, &d).unwrap_err().contains("recurrent core"));
    }

    /// Guided mode changes the input gradient of the same network, per call, and leaves no trace.
    #[test]
    fn guided_mode_is_switched_per_call() {
        let d = cpu().autodiff();
        d.seed(3);
        let spec = NetSpec::new(vec![4, 10, 10], 3, Torso::MinatarCnn, HeadKind::Dueling);
        let net = Net::new(&spec, &d).unwrap();
        let x0 = Tensor::<2>::random([2, 400], burn::tensor::Distribution::Uniform(0.0, 1.0), &d);
        let input_grad = |mode| {
            let x = x0.clone().detach().require_grad();
            let q = net.forward(x.clone(), &Pass { relu: mode, ..Pass::default() }).q.unwrap().sum();
            to_vec(x.grad(&q.backward()).unwrap())
        };
        let plain = input_grad(ReluMode::Normal);
        let guided = input_grad(ReluMode::Guided);
        assert_ne!(plain, guided);
        assert_eq!(input_grad(ReluMode::Normal), plain);
        // Same forward in both modes.
        let f = |mode| to_vec(net.forward(x0.clone(), &Pass { relu: mode, ..Pass::default() }).q.unwrap());
        assert_eq!(f(ReluMode::Normal), f(ReluMode::Guided));
    }

    /// A frozen copy computes the same input gradients and none for its weights (burn's `detach` keeps a
    /// parameter's `require_grad` flag; an earlier `frozen` relied on it dropping the flag and froze nothing).
    #[test]
    fn frozen_copy_takes_no_weight_gradients() {
        use burn::module::{ModuleVisitor, Param};
        struct Tracked(usize, usize);
        impl ModuleVisitor for Tracked {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                self.0 += 1;
                self.1 += usize::from(p.val().is_require_grad());
            }
        }
        let d = cpu().autodiff();
        d.seed(5);
        let spec = NetSpec::new(vec![4, 84, 84], 3, Torso::NatureCnn, HeadKind::Dueling);
        let net = Net::new(&spec, &d).unwrap();
        let frozen = net.frozen();
        let count = |n: &Net| {
            let mut t = Tracked(0, 0);
            n.visit(&mut t);
            t
        };
        let (all, tracked) = (count(&net), count(&frozen));
        assert_eq!((all.0, all.1), (12, 12));
        assert_eq!((tracked.0, tracked.1), (12, 0));
        let x0 = Tensor::<2>::random([2, 4 * 84 * 84], burn::tensor::Distribution::Uniform(0.0, 1.0), &d);
        let input_grad = |n: &Net| {
            let x = x0.clone().detach().require_grad();
            let v = n.forward(x.clone(), &Pass::default()).value.unwrap().sum();
            to_vec(x.grad(&v.backward()).unwrap())
        };
        assert_eq!(input_grad(&frozen), input_grad(&net));
        // The original still trains.
        let x = x0.clone();
        let grads = net.forward(x, &Pass::default()).q.unwrap().sum().backward();
        assert!(net.head.out().weight.val().grad(&grads).is_some());
    }

    /// q[1] with `bump` added to conv1's activation (the MinAtar CNN by hand, from the net's own layers).
    fn nudged_q(net: &Net, obs: Tensor<2>, bump: Tensor<4>) -> f32 {
        let relu = |t| relu_with(t, ReluMode::Normal);
        let h = relu(net.torso.convs()[0].forward(obs.reshape([1, 4, 10, 10]))) + bump;
        let x: Tensor<2> = relu_with(net.torso.fc()[0].forward(h.flatten::<2>(1, 3)), ReluMode::Normal);
        to_vec(net.head.out().forward(x))[1]
    }
}
