//! The evaluation job: a run's frames, every chosen method and a random-map control, every test — written as
//! `evaluate.json` (a typed [`Report`]) and plots.

use super::deletion::{Agreement, AgreementConfig, DeletionConfig, DeletionResult};
use super::faithfulness::FaithfulnessConfig;
use super::{RandomMap, Spread, Subject};
use crate::job::Source;
use crate::registry::{MethodName, MethodOptions};
use crate::{ExplainError, Inputs, Method, TargetSpec};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use xrl::run::RunDir;
use xrl::trajectory::Trajectory;

pub const REPORT_VERSION: u32 = 1;

/// Every test's settings, with defaults sized for the frame (see each config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuiteConfig {
    pub randomisation: super::randomisation::Randomisation,
    pub deletion: DeletionConfig,
    pub agreement: AgreementConfig,
    pub faithfulness: FaithfulnessConfig,
    /// Seed of the random-map control and the random orders.
    pub seed: u64,
}

impl SuiteConfig {
    pub fn for_frame(frame: [usize; 3], seed: u64) -> Self {
        SuiteConfig {
            randomisation: super::randomisation::Randomisation {
                seed: seed ^ super::randomisation::DEFAULT_SEED,
                ..Default::default()
            },
            deletion: DeletionConfig { seed, ..DeletionConfig::for_frame(frame) },
            // k cells at most as many as a frame has (CartPole's 4 features: k = 1, 2).
            agreement: {
                let mut a = AgreementConfig::default();
                a.ks.retain(|&k| k < frame[1] * frame[2]);
                a
            },
            faithfulness: FaithfulnessConfig { seed, ..FaithfulnessConfig::default() },
            seed,
        }
    }
}

/// What to evaluate.
pub struct EvaluateJob {
    pub run: PathBuf,
    pub device: Device,
    /// Frames: a played episode, a trajectory, or given observations.
    pub source: Source,
    /// Empty: the explain job's default set.
    pub methods: Vec<MethodName>,
    pub options: MethodOptions,
    /// The method options the caller set (`registry::METHOD_OPTION_USERS` names): one no chosen method reads is
    /// refused.
    pub options_given: Vec<&'static str>,
    pub target: TargetSpec,
    /// `None`: [`SuiteConfig::for_frame`] with `seed`.
    pub config: Option<SuiteConfig>,
    /// Action agreement removes cells by ROAD's noisy linear imputation (σ 0.01, Quantus' default) instead of
    /// zeroing them (MinAtar's "object removed"); applied to the default config.
    pub road_imputation: bool,
    pub seed: u64,
    pub out: PathBuf,
}

/// One method's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodReport {
    pub method: String,
    /// Seconds to compute the maps of all frames.
    pub map_seconds: f64,
    /// Model-parameter randomisation; `None` for the random-map control (its maps ignore the network; the
    /// randomisation result carries its own random-map row).
    pub randomisation: Option<super::randomisation::RandomisationResult>,
    pub deletion: DeletionResult,
    pub agreement: Agreement,
    pub faithfulness_correlation: Spread,
    pub infidelity: Spread,
    pub max_sensitivity: Spread,
    /// Object interventions (MinAtar games, frames with state documents).
    pub counterfactual: Option<super::counterfactual::CounterfactualResult>,
    /// Seconds each test took, by name.
    pub seconds: Vec<(String, f64)>,
}

/// `evaluate.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub run: String,
    pub env: String,
    pub checkpoint_step: usize,
    pub source: String,
    pub target: String,
    /// The frame numbers evaluated.
    pub frames: Vec<usize>,
    pub config: SuiteConfig,
    pub methods: Vec<MethodReport>,
    /// The same tests on uniformly random maps: the floor every method must clear.
    pub random_map: MethodReport,
    /// A recurrent agent's state: held at its recorded value through every test (absent for feed-forward agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateHeld>,
    pub files: Vec<String>,
    pub notes: Vec<String>,
}

/// What `evaluate.json` says of a recurrent agent's state.
pub const HELD_NOTE: &str = "the recurrent state entering each frame is held at its recorded value h(t-1) (the state the \
agent acted from while playing) in every pass of every test: the maps, every deleted, inserted, perturbed and \
intervened copy of the frame, and the randomised networks of model-parameter randomisation, which receive the same \
recorded state (it is not re-run through their randomised core). The tests explain the observation given that state";

/// How a recurrent agent's state was treated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateHeld {
    pub core: xrl_nn::CoreKind,
    /// The core's units.
    pub hidden: usize,
    /// `recorded`: every pass started from the state recorded entering the frame.
    pub held_at: String,
    pub note: String,
}

/// Runs every test on every method (and the random-map control) and writes `evaluate.json` and the plots into
/// `job.out`.
pub fn run(job: &EvaluateJob) -> Result<Report, ExplainError> {
    let dir = RunDir::new(&job.run);
    let card = dir.read_card()?;
    let (state, net) = dir.load_latest_online(&card, &job.device.clone().autodiff())?;
    let net = net.frozen();
    let spec = net.spec().clone();
    job.options.validate()?;
    xrl_render::check_dir_free(&job.out)?;
    let len: usize = spec.obs_shape.iter().product();
    let mut notes: Vec<String> = dir.index_note().into_iter().collect();
    let (obs, frames, source, states, held) = match &job.source {
        Source::Inputs { .. } if spec.carries_state() => {
            return Err(ExplainError::Invalid(
                "a recurrent agent is evaluated at the states it held while playing: evaluate a played episode \
                 (--frames A..B --seed S) or a trajectory (--trajectory T), not bare --inputs"
                    .into(),
            ));
        }
        Source::Inputs { values, shape } => {
            if shape.len() < 2 || shape[1..] != spec.obs_shape[..] {
                return Err(ExplainError::Invalid(format!(
                    "the inputs have shape {shape:?}; this run's agent takes [N, {}]",
                    spec.obs_shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                )));
            }
            (values.clone(), (0..values.len() / len).collect(), "inputs".to_string(), vec![], None)
        }
        Source::Play { seed, frames } => {
            let mut env = card.env.make()?;
            let tr = Trajectory::record(env.as_mut(), &card.env.id, &net, *seed, frames.end)
                .map_err(|e| ExplainError::Invalid(e.to_string()))?;
            pick(&tr, frames.clone(), &mut notes, format!("play seed {seed}"))?
        }
        Source::Trajectory { path, frames } => {
            let tr = Trajectory::load(path).map_err(|e| ExplainError::Invalid(e.to_string()))?;
            if tr.env != card.env.id || tr.obs_shape != spec.obs_shape {
                return Err(ExplainError::Invalid(format!(
                    "{} was recorded in {}; the run plays {}: evaluate it with the run that recorded it",
                    path.display(),
                    tr.env,
                    card.env.id
                )));
            }
            let range = frames.clone().unwrap_or(0..tr.len());
            pick(&tr, range, &mut notes, format!("trajectory {}", path.display()))?
        }
    };
    let inputs = Inputs::new(&obs, &spec.obs_shape)?;
    let held_state = match (&held, spec.core.filter(|_| spec.carries_state())) {
        (Some(_), Some(core)) => {
            notes.push(HELD_NOTE.into());
            Some(StateHeld { core: core.kind, hidden: core.hidden, held_at: "recorded".into(), note: HELD_NOTE.into() })
        }
        (None, Some(_)) => {
            return Err(ExplainError::Invalid(
                "the trajectory has no recorded recurrent states for this recurrent agent: record it again with \
                 `xrl explain` (or evaluate a played episode with --frames A..B --seed S)"
                    .into(),
            ));
        }
        _ => None,
    };
    let greedy = Subject { net: &net, inputs, targets: &[], state: held.as_ref() }.greedy(&obs);
    let targets = job.target.resolve(&greedy);
    let subject = match &held {
        Some(h) if spec.carries_state() => Subject::at_states(&net, inputs, &targets, h)?,
        _ => Subject::new(&net, inputs, &targets)?,
    };
    let frame = subject.frame();
    let mut config = job.config.clone().unwrap_or_else(|| SuiteConfig::for_frame(frame, job.seed));
    if job.config.is_none() && (frame[1] < 6 || frame[2] < 6) {
        // SSIM and HOG compare pictures; a feature vector (CartPole) is compared by ranks alone.
        use super::similarity::Measure;
        config.randomisation.measures = vec![Measure::SpearmanAbs, Measure::SpearmanSigned];
        notes.push(format!(
            "randomisation compares maps by Spearman only: {} observations are {}×{} cells, too small for SSIM and HOG",
            card.env.id, frame[1], frame[2]
        ));
    }
    if job.road_imputation {
        config.agreement.replacement = super::deletion::Replacement::Imputed { noise: 0.01 };
    }
    let methods = if job.methods.is_empty() { crate::job::default_methods(&net) } else { job.methods.clone() };
    MethodOptions::refuse_unused(&methods, &job.options_given)?;
    let hw = inputs.image().map(|[_, h, w]| [h, w]);
    let built: Vec<Box<dyn Method>> = methods.iter().map(|m| job.options.build(m, hw, spec.head)).collect();
    // Object interventions need each frame's state document and a MinAtar game.
    let mut env = card.env.make()?;
    let world = if states.is_empty() {
        notes.push("object interventions skipped: the frames have no state documents (bare --inputs)".into());
        None
    } else if let Err(e) = super::counterfactual::interventions(&card.env.id, &states[0]) {
        notes.push(format!("object interventions skipped: {e}"));
        None
    } else {
        Some(states.as_slice())
    };
    let mut reports = vec![];
    for method in &built {
        reports.push(evaluate_method(&subject, method.as_ref(), &config, env.as_mut(), world)?);
    }
    let random_map = evaluate_method(&subject, &RandomMap { seed: config.seed }, &config, env.as_mut(), world)?;
    // A new or empty directory, claimed against another job writing into it (checked only now, after the work;
    // claiming first would leave a directory behind for every refused request).
    let _claim = xrl_render::claim_dir(&job.out)?;
    let files = write_outputs(job, &reports, &random_map)?;
    let report = Report {
        version: REPORT_VERSION,
        run: job.run.display().to_string(),
        env: card.env.id.clone(),
        checkpoint_step: state.step,
        source,
        target: crate::job::target_name(&job.target),
        frames,
        config,
        methods: reports,
        random_map,
        state: held_state,
        files,
        notes,
    };
    let text = serde_json::to_string_pretty(&report).expect("the report serialises");
    xrl::run::write_bytes(&job.out.join("evaluate.json"), text.as_bytes())?;
    Ok(report)
}

/// Observations, frame numbers, where they came from, each frame's state document (empty without them), and the
/// recurrent state entering each frame (recurrent agents).
type Frames = (Vec<f32>, Vec<usize>, String, Vec<serde_json::Value>, Option<super::HeldState>);

/// Frames `range` of a trajectory: their observations and numbers (a range past the episode's end is cut, with a
/// note).
fn pick(
    tr: &Trajectory,
    range: std::ops::Range<usize>,
    notes: &mut Vec<String>,
    source: String,
) -> Result<Frames, ExplainError> {
    let frames: Vec<usize> = crate::job::frames_within(&range, tr.len(), notes)?.collect();
    let states =
        if tr.states.len() == tr.len() { frames.iter().map(|&t| tr.states[t].clone()).collect() } else { vec![] };
    let held = super::HeldState::of_trajectory(tr, &frames);
    Ok((frames.iter().flat_map(|&t| tr.observation(t).to_vec()).collect(), frames, source, states, held))
}

/// Every test on one method's maps (computed once, for all frames).
fn evaluate_method(
    subject: &Subject,
    method: &dyn Method,
    config: &SuiteConfig,
    env: &mut dyn xrl_env::Env,
    world: Option<&[serde_json::Value]>,
) -> Result<MethodReport, ExplainError> {
    let mut seconds = vec![];
    let mut timed =
        |name: &str, started: std::time::Instant| seconds.push((name.to_string(), started.elapsed().as_secs_f64()));
    let attr = subject.maps(method)?;
    if let Some(i) = attr.maps.iter().position(|v| !v.is_finite()) {
        return Err(ExplainError::Invalid(format!(
            "{}'s map value {i} is {}: the network's outputs are not finite where it was explained",
            attr.method, attr.maps[i]
        )));
    }
    let t = std::time::Instant::now();
    let randomisation =
        if method.name() == "random-map" { None } else { Some(config.randomisation.run(subject, method)?) };
    timed("randomisation", t);
    let t = std::time::Instant::now();
    let deletion = config.deletion.run(subject, &attr)?;
    timed("deletion", t);
    let t = std::time::Instant::now();
    let agreement = config.agreement.run(subject, &attr, config.seed)?;
    timed("agreement", t);
    let t = std::time::Instant::now();
    let faithfulness_correlation = config.faithfulness.correlation(subject, &attr)?;
    timed("faithfulness-correlation", t);
    let t = std::time::Instant::now();
    let infidelity = config.faithfulness.infidelity(subject, &attr)?;
    timed("infidelity", t);
    let t = std::time::Instant::now();
    let max_sensitivity = config.faithfulness.max_sensitivity(subject, method, &attr)?;
    timed("max-sensitivity", t);
    let t = std::time::Instant::now();
    let counterfactual = match world {
        Some(states) => Some(super::counterfactual::run(subject, env, states, method, &attr)?),
        None => None,
    };
    timed("counterfactual", t);
    Ok(MethodReport {
        method: attr.method.clone(),
        map_seconds: attr.seconds,
        randomisation,
        deletion,
        agreement,
        faithfulness_correlation,
        infidelity,
        max_sensitivity,
        counterfactual,
        seconds,
    })
}

/// The plots: deletion and insertion curves, and the action-agreement curve, of every method and the control.
fn write_outputs(
    job: &EvaluateJob,
    reports: &[MethodReport],
    random: &MethodReport,
) -> Result<Vec<String>, ExplainError> {
    let all: Vec<&MethodReport> = reports.iter().chain([random]).collect();
    let mut files = vec![];
    let curves = |pick: &dyn Fn(&DeletionResult) -> &super::deletion::Curve| -> Vec<(String, Vec<f64>, Vec<f64>)> {
        all.iter()
            .map(|r| {
                let c = pick(&r.deletion);
                (format!("{} (AUC {:.3})", r.method, c.auc.mean), c.fraction.clone(), c.mean.clone())
            })
            .collect()
    };
    for (name, title, series) in [
        ("deletion.png", "deletion: the target as the most salient cells are removed", curves(&|d| &d.deletion)),
        ("insertion.png", "insertion: the target as the most salient cells are put back", curves(&|d| &d.insertion)),
    ] {
        let path = job.out.join(name);
        xrl_render::plot::lines(&path, title, ("fraction of cells", "target"), &series)?;
        files.push(name.to_string());
    }
    let agreement: Vec<(String, Vec<f64>, Vec<f64>)> = all
        .iter()
        .map(|r| {
            let a = &r.agreement;
            (r.method.clone(), a.config.percents.iter().map(|&p| p as f64).collect(), a.top_percent.clone())
        })
        .collect();
    let path = job.out.join("agreement.png");
    xrl_render::plot::lines(
        &path,
        "action agreement: frames whose action survives removing the top k% of cells",
        ("cells removed (%)", "fraction of frames unchanged"),
        &agreement,
    )?;
    files.push("agreement.png".into());
    files.push("evaluate.json".into());
    Ok(files)
}

impl Report {
    /// Reads `evaluate.json`, refusing another version (with the command that rewrites it).
    pub fn read(path: &std::path::Path) -> Result<Self, ExplainError> {
        crate::job::read_versioned(path, "evaluation", "xrl evaluate", REPORT_VERSION, |r: &Report| r.version)
    }

    /// The report page's evaluation section: every method × every test (mean ± spread over frames), the plots
    /// from `dir` (where `evaluate.json` was written), and the object interventions by kind.
    pub fn section_html(&self, dir: &std::path::Path) -> String {
        use xrl_render::report::{data_uri, escape};
        let all: Vec<&MethodReport> = self.methods.iter().chain([&self.random_map]).collect();
        let pm = |s: &Spread| format!("{:.3} ± {:.3}", s.mean, s.std);
        let mut rows = String::new();
        for m in &all {
            let k1 = |v: &[f64]| v.first().map_or("–".to_string(), |x| format!("{x:.2}"));
            rows.push_str(&format!(
                "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{:.2e} ± {:.1e}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&m.method),
                pm(&m.deletion.deletion.auc),
                pm(&m.deletion.insertion.auc),
                pm(&m.faithfulness_correlation),
                m.infidelity.mean,
                m.infidelity.std,
                pm(&m.max_sensitivity),
                k1(&m.agreement.top_k),
                k1(&m.agreement.bottom_k),
            ));
        }
        // A plot that is gone or not a PNG any more is said, not silently left out.
        let plots: String = ["deletion.png", "insertion.png", "agreement.png"]
            .iter()
            .map(|f| match xrl_render::read_regular(dir.join(f)) {
                Ok(b) if b.starts_with(b"\x89PNG\r\n\x1a\n") => {
                    format!("<img alt=\"{f}\" src=\"{}\" style=\"max-width:49%\">", data_uri(&b))
                }
                _ => format!("<p>({f} is missing from {} or is not a PNG.)</p>", escape(&dir.display().to_string())),
            })
            .collect();
        let randomisation = self.methods.iter().find_map(|m| m.randomisation.as_ref()).map_or(String::new(), |first| {
            let score = |v: &super::randomisation::Variant, m: &str| {
                v.scores.iter().find(|s| s.measure.name() == m).map_or(f64::NAN, |s| s.mean)
            };
            let head: String = first.layers.iter().map(|l| format!("<th>+{}</th>", escape(l))).collect();
            let body: String = self
                .methods
                .iter()
                .filter_map(|m| {
                    let r = m.randomisation.as_ref()?;
                    let cells: String = r
                        .cascading
                        .iter()
                        .map(|v| format!("<td>{:.3} / {:.3}</td>", score(v, "spearman-abs"), score(v, "ssim")))
                        .collect();
                    Some(format!("<tr><th>{}</th>{cells}</tr>", escape(&m.method)))
                })
                .collect();
            let control: String = first
                .random_maps
                .iter()
                .map(|s| format!("{} {:.3}", s.measure.name(), s.mean))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "<h3>Model-parameter randomisation</h3><p>Layers re-initialised from the output down (cascading, \
                 seed {}): Spearman of |map| / SSIM with the original map after each layer. A map that stays near 1 \
                 ignores the weights it claims to explain. Random maps against the original: {control}.</p>\
                 <table id=\"randomisation-table\"><tr><th>method</th>{head}</tr>{body}</table>",
                first.seed
            )
        });
        let objects = self.random_map.counterfactual.as_ref().map_or(String::new(), |c| {
            let kinds: Vec<&str> = c.kinds.iter().map(|k| k.kind.as_str()).collect();
            let head: String = kinds.iter().map(|k| format!("<th>{}</th>", escape(k))).collect();
            let body: String = all
                .iter()
                .filter_map(|m| {
                    let c = m.counterfactual.as_ref()?;
                    let cells: String = c
                        .kinds
                        .iter()
                        .map(|k| {
                            let follow =
                                k.follow_rate.map_or(String::new(), |f| format!(", follows {:.0}%", 100.0 * f));
                            format!("<td>ρ {:.2} (p {:.2}){follow}</td>", k.spearman, k.p_value)
                        })
                        .collect();
                    Some(format!("<tr><th>{}</th>{cells}</tr>", escape(&m.method)))
                })
                .collect();
            format!(
                "<h3>Object interventions</h3><p>Each object moved or removed through the game's state: Spearman ρ of \
                 the map's density on the object with the agent's response (‖Δscores‖), its p-value, and for moves \
                 how often the moved frame's map followed the object.</p><table><tr><th>method</th>{head}</tr>{body}\
                 </table>"
            )
        });
        format!(
            "<section id=\"evaluation\"><h2>Evaluation</h2><p>{n} frames of {env} (checkpoint step {step}), target \
             {target}, seed {seed}. Deletion AUC: lower is better; insertion AUC and faithfulness correlation: \
             higher; infidelity and max sensitivity: lower; AIM (top cell removed, action kept): lower; AUM (bottom \
             cell removed): higher. A method is only as good as its margin over the random map.</p>\
             <table id=\"evaluation-table\"><tr><th>method</th><th>deletion AUC</th><th>insertion AUC</th>\
             <th>faithfulness</th><th>infidelity</th><th>max sensitivity</th><th>AIM k=1</th><th>AUM k=1</th></tr>\
             {rows}</table>{held}{plots}{randomisation}{objects}</section>",
            held = self.state.as_ref().map_or(String::new(), |s| format!(
                "<p id=\"evaluation-state\">Recurrent agent ({:?} core, {} units): {}.</p>",
                s.core,
                s.hidden,
                escape(&s.note)
            )),
            n = self.frames.len(),
            env = escape(&self.env),
            step = self.checkpoint_step,
            target = escape(&self.target),
            seed = self.config.seed,
        )
    }
}
