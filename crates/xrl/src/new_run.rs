//! A new run's card from the choices a user makes (what `xrl train --env … --agent …` takes): every option is
//! checked against the agent it belongs to, so an option of another agent is refused rather than ignored, and
//! the network is built for the environment's observations and actions.

use crate::agents::a2c::A2cConfig;
use crate::agents::a3c::A3cConfig;
use crate::agents::dqn::DqnConfig;
use crate::agents::ppo::PpoConfig;
use crate::agents::rainbow::RainbowConfig;
use crate::nn::{Core, CoreKind, Torso};
use crate::per::PerConfig;
use crate::run::{AgentCard, EnvCard, RunCard, RunError};

/// The longest run a card may ask for: a trillion steps (a typo of a few zeros more is refused rather than run
/// with checkpoints that never come).
pub const MAX_STEPS: usize = 1_000_000_000_000;

/// The most checkpoints a new run is set to write.
pub const MAX_CHECKPOINTS: usize = 1_000;

/// The agents xrl trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentKind {
    Dqn,
    /// DQN with an LSTM over the last `frames` frames (seed 002).
    Drqn,
    A2c,
    A3c,
    /// PPO with CleanRL's semantics (feed-forward).
    Ppo,
    /// Rainbow (Hessel et al. 2018), each part switchable.
    Rainbow,
}

/// Rainbow's parts a run leaves out (`--no-per`, `--no-noisy`, `--no-c51`, `--no-double`, `--no-dueling`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RainbowOff {
    pub per: bool,
    pub noisy: bool,
    pub c51: bool,
    pub double: bool,
    pub dueling: bool,
}

impl RainbowOff {
    fn any(&self) -> bool {
        self.per || self.noisy || self.c51 || self.double || self.dueling
    }
}

impl std::str::FromStr for AgentKind {
    type Err = RunError;
    fn from_str(s: &str) -> Result<Self, RunError> {
        match s {
            "dqn" => Ok(AgentKind::Dqn),
            "drqn" => Ok(AgentKind::Drqn),
            "a2c" => Ok(AgentKind::A2c),
            "a3c" => Ok(AgentKind::A3c),
            "ppo" => Ok(AgentKind::Ppo),
            "rainbow" => Ok(AgentKind::Rainbow),
            _ => Err(RunError::Invalid(format!(
                "unknown agent `{s}`; the available agents are `dqn`, `drqn`, `a2c`, `a3c`, `ppo` and `rainbow`"
            ))),
        }
    }
}

/// What a new run is: `None` leaves an option at the agent's default, and an option another agent owns must stay
/// `None` (or `false`).
#[derive(Clone, Debug)]
pub struct NewRun {
    pub env: String,
    pub agent: AgentKind,
    pub steps: usize,
    pub seed: u64,
    /// Default: a twentieth of the run, at least 1,000.
    pub checkpoint_every: Option<usize>,
    pub lr: Option<f64>,
    /// MinAtar: probability that the previous action repeats (`None`: 0.1, the MinAtar paper's).
    pub sticky: Option<f64>,
    pub difficulty_ramping: bool,
    /// DQN family.
    pub double: bool,
    pub dueling: bool,
    /// DQN and Rainbow: n-step returns (default 1 for DQN, 3 for Rainbow).
    pub n_step: Option<usize>,
    /// Rainbow: parts switched off for ablations.
    pub rainbow_off: RainbowOff,
    /// A3C: worker threads (0 or `None`: one per core).
    pub workers: Option<usize>,
    /// A2C: a recurrent core after the torso.
    pub core: Option<CoreKind>,
    /// DRQN and recurrent A2C: the core's units (default 128).
    pub core_size: Option<usize>,
    /// DRQN: frames the LSTM runs over (default 4).
    pub frames: Option<usize>,
    /// A2C: Koul et al. (2019)'s torso for finite-state abstraction ([`Torso::MmnMlp`], or
    /// [`Torso::MmnMinatarCnn`] on MinAtar): features bounded by ReLU6, which an observation bottleneck can
    /// reproduce.
    pub mmn_torso: bool,
    /// Rainbow, PPO and A2C: the IFE seed's interpretable feature extractor ([`Torso::Ife`], m = 2) with two
    /// streams (each with its own FC 256), its attention mask an explanation.
    pub ife_torso: bool,
    /// Atari: the preprocessed frame (Gymnasium's 84 × 84 by default).
    pub atari_frame: xrl_env::AtariFrame,
    /// Atari: frames per observation (default 4; 1 for a recurrent core that supplies the memory).
    pub frame_stack: Option<usize>,
}

impl NewRun {
    /// A run of `agent` on `env` for `steps` steps, every other option at its default.
    pub fn new(env: &str, agent: AgentKind, steps: usize) -> Self {
        NewRun {
            env: env.to_string(),
            agent,
            steps,
            seed: 0,
            checkpoint_every: None,
            lr: None,
            sticky: None,
            difficulty_ramping: true,
            double: false,
            dueling: false,
            n_step: None,
            rainbow_off: RainbowOff::default(),
            workers: None,
            core: None,
            core_size: None,
            frames: None,
            mmn_torso: false,
            ife_torso: false,
            atari_frame: xrl_env::AtariFrame::Gymnasium,
            frame_stack: None,
        }
    }

    /// The run card: checked options, the agent's published hyper-parameters, and a network for the environment.
    pub fn card(&self) -> Result<RunCard, RunError> {
        let bad = |m: String| Err(RunError::Invalid(m));
        let name = format!("{:?}", self.agent).to_lowercase();
        let (dqn_family, drqn) =
            (matches!(self.agent, AgentKind::Dqn | AgentKind::Drqn), self.agent == AgentKind::Drqn);
        if self.workers.is_some() && self.agent != AgentKind::A3c {
            return bad(format!("--workers is an A3C option (worker threads); {name} does not use it"));
        }
        if self.frames.is_some() && !drqn {
            return bad(format!("--frames is a DRQN option (frames the LSTM runs over); {name} does not use it"));
        }
        if self.core.is_some() && self.agent != AgentKind::A2c {
            return bad("--core is an A2C option; for a recurrent DQN use --agent drqn".into());
        }
        if self.ife_torso && !matches!(self.agent, AgentKind::Rainbow | AgentKind::Ppo | AgentKind::A2c) {
            return bad(format!(
                "--torso ife is a Rainbow, PPO and A2C option (the IFE seed's attention extractor); {name} does not \
                 use it"
            ));
        }
        if self.ife_torso && (self.core.is_some() || self.mmn_torso) {
            return bad("--torso ife has no recurrent core (it is feed-forward, as the seed's Rainbow)".into());
        }
        if self.mmn_torso && self.agent != AgentKind::A2c {
            return bad(format!(
                "--torso mmn is an A2C option (the torso of a finite-state abstraction); {name} does not use it"
            ));
        }
        if self.core_size.is_some() && !drqn && self.core.is_none() {
            return bad(
                "--core-size sets the units of a recurrent core: use it with --agent drqn or a2c --core lstm|gru"
                    .into(),
            );
        }
        let rainbow = self.agent == AgentKind::Rainbow;
        if rainbow && (self.double || self.dueling) {
            return bad("Rainbow has double Q-learning and dueling heads on: leave out --double and --dueling (and \
                 use --no-double or --no-dueling to switch them off)"
                .into());
        }
        if !rainbow && self.rainbow_off.any() {
            return bad(format!(
                "--no-per, --no-noisy, --no-c51, --no-double and --no-dueling switch Rainbow's parts off; {name} has \
                 none of them (train --agent rainbow)"
            ));
        }
        if !dqn_family && !rainbow && (self.double || self.dueling || self.n_step.is_some()) {
            return bad(format!(
                "--double, --dueling and --n-step are DQN options; {name} uses n-step returns over its rollouts"
            ));
        }
        let (frames, core_size) = (self.frames.unwrap_or(4), self.core_size.unwrap_or(128));
        if !(1..=65_536).contains(&core_size) {
            return bad(format!("--core-size must be between 1 and 65536 units (128 by default), got {core_size}"));
        }
        if drqn && !(2..=1_024).contains(&frames) {
            return bad(format!(
                "--frames must be between 2 and 1024 for drqn (it runs an LSTM over the last frames; seed 002's 4), \
                 got {frames}"
            ));
        }
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return bad(format!("--steps must be between 1 and {MAX_STEPS}, got {}", self.steps));
        }
        if self.n_step == Some(0) {
            return bad("--n-step must be at least 1 (1 is one-step Q-learning)".into());
        }
        if self.lr.is_some_and(|lr| !(lr > 0.0 && lr.is_finite())) {
            return bad("--lr must be a positive number, e.g. 2.5e-4".into());
        }
        let minatar = self.env.starts_with("MinAtar/");
        if !minatar && (self.sticky.is_some() || !self.difficulty_ramping) {
            return bad(format!(
                "--sticky and --no-ramping are MinAtar options; {} has neither: leave them out",
                self.env
            ));
        }
        let sticky = self.sticky.unwrap_or(0.1);
        if !(0.0..=1.0).contains(&sticky) {
            return bad(format!("--sticky is a probability in [0, 1], got {sticky}"));
        }
        // Every checkpoint keeps its weights (the replay and optimiser state of the newest only): at most 1,000 of
        // them a run, so a run's disk use does not grow with a typo.
        let least = self.steps.div_ceil(MAX_CHECKPOINTS).max(1);
        if self.checkpoint_every.is_some_and(|e| e < least) {
            return bad(format!(
                "--checkpoint-every must be at least {least} steps for a {}-step run (at most {MAX_CHECKPOINTS} \
                 checkpoints, each keeping its weights)",
                self.steps
            ));
        }
        let atari = xrl_env::is_atari_id(&self.env);
        if atari && drqn {
            return bad("drqn on Atari is not built (its LSTM over 84 × 84 frames would need a sequence replay of \
                 pixel frames): train `--agent dqn`, `ppo` or `a2c` on Atari"
                .into());
        }
        // Atari runs play behind CleanRL's wrappers: Gymnasium's AtariPreprocessing (84 × 84 grey, frame skip 4
        // with max-pooling, up to 30 no-ops), FIRE after resets, a stack of 4 (rewards are clipped by the agent,
        // so the logged returns stay the game's scores).
        if atari && self.mmn_torso {
            return bad("--torso mmn has the control and MinAtar shapes of Koul et al.'s torso; its Atari shape (for \
                 --atari-frame koul80) is not built yet: leave --torso out (the Nature CNN)"
                .into());
        }
        if !atari && (self.frame_stack.is_some() || !self.atari_frame.is_gymnasium()) {
            return bad(format!(
                "--frame-stack and --atari-frame are Atari options; {} is not an Atari game",
                self.env
            ));
        }
        if self.frame_stack.is_some_and(|k| !(1..=16).contains(&k)) {
            return bad("--frame-stack must be between 1 and 16 (4 by default)".into());
        }
        let mut env_card = EnvCard {
            sticky_action_prob: sticky,
            difficulty_ramping: self.difficulty_ramping,
            ..EnvCard::for_training(&self.env, if drqn { frames } else { 0 })
        };
        if atari {
            env_card.atari.frame = self.atari_frame;
            if let Some(k) = self.frame_stack {
                env_card.frame_stack = k; // 1 too: a single frame still gets its channel axis (1 × H × W)
            }
        }
        let env = env_card.make().map_err(|e| RunError::Invalid(e.to_string()))?;
        let spec = env.spec();
        let Some(actions) = spec.action.n() else {
            return bad(format!(
                "{} has continuous actions; xrl's agents need discrete ones (try CartPole-v1 or a MinAtar game)",
                self.env
            ));
        };
        let obs_shape = spec.observation.shape().to_vec();
        let core = self.core.map(|kind| Core { kind, hidden: core_size });
        let (net, mut agent) = match self.agent {
            AgentKind::A2c => {
                let mut base = A2cConfig::for_env(&obs_shape);
                if self.mmn_torso {
                    base.torso = if obs_shape.len() == 1 { Torso::MmnMlp } else { Torso::MmnMinatarCnn };
                }
                if self.ife_torso {
                    base.torso = Torso::Ife { m: 2 };
                }
                let config = match core {
                    Some(core) => base.with_core(core),
                    None => base,
                };
                let spec = config.net_spec(&obs_shape, actions);
                (if self.ife_torso { spec.with_streams() } else { spec }, AgentCard::A2c(config))
            }
            AgentKind::Ppo => {
                let mut config = PpoConfig::for_env(&obs_shape);
                if self.ife_torso {
                    (config.torso, config.separate_critic) = (Torso::Ife { m: 2 }, true);
                }
                (config.net_spec(&obs_shape, actions), AgentCard::Ppo(config))
            }
            AgentKind::A3c => {
                let config = A3cConfig { workers: self.workers.unwrap_or(0), ..A3cConfig::for_env(&obs_shape) };
                (config.net_spec(&obs_shape, actions), AgentCard::A3c(config))
            }
            AgentKind::Rainbow => {
                let base = RainbowConfig::for_env(&obs_shape);
                let off = self.rainbow_off;
                let config = RainbowConfig {
                    n_step: self.n_step.unwrap_or(base.n_step),
                    per: if off.per { None } else { base.per.map(|p| PerConfig { beta_steps: self.steps, ..p }) },
                    noisy: if off.noisy { None } else { base.noisy },
                    atoms: if off.c51 { None } else { base.atoms },
                    double: base.double && !off.double,
                    dueling: base.dueling && !off.dueling,
                    torso: if self.ife_torso { Torso::Ife { m: 2 } } else { base.torso.clone() },
                    ..base
                };
                (config.net_spec(&obs_shape, actions), AgentCard::Rainbow(Box::new(config)))
            }
            AgentKind::Dqn | AgentKind::Drqn => {
                // DRQN's torso reads one frame of the stack (Atari's stack is the channel axis of one observation).
                let frame = if drqn { &obs_shape[1..] } else { &obs_shape[..] };
                let base = DqnConfig::for_env(frame);
                let n_step = self.n_step.unwrap_or(1);
                let mut config = DqnConfig { double: self.double, dueling: self.dueling, n_step, ..base };
                if drqn {
                    // Seed 002's DRQN: an LSTM after the torso; 128 units for MinAtar's and CartPole's small torsos.
                    config = config.drqn(frames, core_size);
                }
                (config.net_spec(&obs_shape, actions), AgentCard::Dqn(config))
            }
        };
        // Atari frames are grey levels 0–255; the networks see them ÷ 255, as CleanRL's and the Nature DQN's.
        let net = if atari { crate::nn::NetSpec { input_scale: 1.0 / 255.0, ..net } } else { net };
        net.validate().map_err(RunError::Invalid)?;
        if let Some(lr) = self.lr {
            agent.set_lr(lr);
        }
        let card = RunCard {
            xrl_version: env!("CARGO_PKG_VERSION").to_string(),
            seed: self.seed,
            total_steps: self.steps,
            checkpoint_every: self.checkpoint_every.unwrap_or((self.steps / 20).max(1_000)),
            env: env_card,
            net,
            agent,
            imported: None,
        };
        card.check_env().map_err(RunError::Invalid)?;
        Ok(card)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_of_another_agent_are_refused_and_defaults_fill_the_rest() {
        let card = NewRun::new("CartPole-v1", AgentKind::Dqn, 50_000).card().unwrap();
        assert_eq!((card.total_steps, card.checkpoint_every, card.net.actions), (50_000, 2_500, 2));
        assert_eq!(card.agent.name(), "DQN");
        let refused = |run: NewRun, needle: &str| {
            let e = run.card().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        };
        refused(NewRun { workers: Some(2), ..NewRun::new("CartPole-v1", AgentKind::A2c, 10) }, "--workers");
        refused(NewRun { double: true, ..NewRun::new("CartPole-v1", AgentKind::A3c, 10) }, "DQN options");
        refused(NewRun { frames: Some(1), ..NewRun::new("CartPole-v1", AgentKind::Drqn, 10) }, "between 2 and 1024");
        refused(NewRun { sticky: Some(0.5), ..NewRun::new("CartPole-v1", AgentKind::Dqn, 10) }, "MinAtar options");
        refused(NewRun { lr: Some(f64::NAN), ..NewRun::new("CartPole-v1", AgentKind::Dqn, 10) }, "--lr");
        refused(NewRun::new("Pendulum-v1", AgentKind::Dqn, 10), "continuous actions");
        refused(NewRun::new("Pong-v9", AgentKind::Dqn, 10), "known ids");
        let drqn =
            NewRun { frames: Some(3), ..NewRun::new("MinAtar/Breakout-v0", AgentKind::Drqn, 10) }.card().unwrap();
        assert_eq!((drqn.env.frame_stack, drqn.net.obs_shape.clone()), (3, vec![3, 4, 10, 10]));
        assert_eq!("a3c".parse::<AgentKind>().unwrap(), AgentKind::A3c);
        assert!("sac".parse::<AgentKind>().unwrap_err().to_string().contains("`ppo` and `rainbow`"));
        let ppo = NewRun::new("MinAtar/Breakout-v1", AgentKind::Ppo, 10).card().unwrap();
        assert_eq!((ppo.agent.name(), ppo.net.actions), ("PPO", 3));
        refused(NewRun { core: Some(CoreKind::Gru), ..NewRun::new("CartPole-v1", AgentKind::Ppo, 10) }, "--core");
        refused(NewRun::new("PongNoFrameskip-v4", AgentKind::Drqn, 10), "drqn on Atari");
        let off = RainbowOff { c51: true, ..RainbowOff::default() };
        refused(NewRun { rainbow_off: off, ..NewRun::new("CartPole-v1", AgentKind::Dqn, 10) }, "--agent rainbow");
        refused(NewRun { double: true, ..NewRun::new("MinAtar/Breakout-v0", AgentKind::Rainbow, 10) }, "--no-double");
        let rb =
            NewRun { n_step: Some(5), ..NewRun::new("MinAtar/Breakout-v0", AgentKind::Rainbow, 10) }.card().unwrap();
        let AgentCard::Rainbow(c) = &rb.agent else { panic!("a Rainbow card") };
        assert_eq!((c.n_step, c.per.as_ref().map(|p| p.beta_steps)), (5, Some(10)));
        assert_eq!(rb.net.atoms.map(|a| a.n), Some(51));
        let ife = |agent| NewRun { ife_torso: true, ..NewRun::new("MinAtar/Breakout-v0", agent, 10) }.card();
        for agent in [AgentKind::Rainbow, AgentKind::Ppo, AgentKind::A2c] {
            let card = ife(agent).unwrap();
            assert_eq!((card.net.torso.clone(), card.net.streams), (Torso::Ife { m: 2 }, true), "{agent:?}");
        }
        assert!(ife(AgentKind::Dqn).unwrap_err().to_string().contains("--torso ife"));
    }
}
