//! What `xrl fsm` writes once a machine is extracted, and what `xrl fsm play` measures: the machine's files, the
//! scores of the policy, the MMN and the minimised machine playing alone, sample frames per observation class, and
//! an episode video annotated with state, observation class and next state.

use crate::FsmError;
use crate::output;
use crate::pipeline::{
    Extraction, FsmCard, FsmDir, MachinePlay, TrainingLog, mean, play_machine, play_mmn, read_json, write_json,
};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use xrl_render::RgbImage;

fn render_err(e: xrl_render::RenderError) -> FsmError {
    FsmError::Invalid(e.to_string())
}

/// Writes the machines as text (the seed's `fsm.txt` and `minimized_moore_machine.txt` layouts), JSON, DOT and
/// SVG, and the bottlenecks' training curves; returns the paths written.
pub fn write_machine_files(
    dir: &FsmDir,
    extraction: &Extraction,
    action_names: &[String],
) -> Result<Vec<PathBuf>, FsmError> {
    let mut written = vec![];
    let mut text = |name: &str, body: String| -> Result<(), FsmError> {
        let path = dir.path(name);
        xrl::run::write_bytes(&path, body.as_bytes())?;
        written.push(path);
        Ok(())
    };
    text("machine.txt", output::text(&extraction.machine, action_names))?;
    text("minimised.txt", output::text(&extraction.minimised, action_names))?;
    text("minimised.dot", output::dot(&extraction.minimised, action_names))?;
    text("minimised.svg", output::svg(&extraction.minimised, action_names))?;
    write_json(&dir.path("minimised.json"), &extraction.minimised)?;
    written.push(dir.path("minimised.json"));
    // Training curves of the stages that trained.
    for (stage, title) in [("ox", "observation bottleneck"), ("hx", "hidden-state bottleneck"), ("mmn", "fine-tuning")]
    {
        let log_path = dir.path(&format!("{stage}.json"));
        if !log_path.exists() {
            continue;
        }
        let log: TrainingLog = read_json(&log_path)?;
        let x: Vec<f64> = log.epochs.iter().map(|e| e.epoch as f64).collect();
        let png = dir.path(&format!("{stage}-training.png"));
        let series = vec![
            ("test loss".to_string(), x.clone(), log.epochs.iter().map(|e| e.test_loss).collect()),
            ("score / best score".to_string(), x, {
                let top = log.epochs.iter().map(|e| e.score).fold(f64::MIN, f64::max).max(1e-9);
                log.epochs.iter().map(|e| e.score / top).collect()
            }),
        ];
        xrl_render::plot::lines(&png, title, ("epoch", "value"), &series).map_err(render_err)?;
        written.push(png);
    }
    Ok(written)
}

/// `xrl fsm play`'s result (`scores.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlayReport {
    pub env: String,
    pub episodes: usize,
    pub seed: u64,
    pub max_steps: usize,
    pub policy: Vec<f64>,
    pub mmn: Vec<f64>,
    pub machine: MachinePlay,
    pub states: usize,
    pub observation_classes: usize,
    pub policy_mean: f64,
    pub mmn_mean: f64,
    pub machine_mean: f64,
}

/// Scores the policy (no bottlenecks), the MMN and the minimised machine alone on the same `episodes` episodes
/// (episode e reset with `seed + e`), and writes `scores.json`, `classes.png` (sample frames of the most frequent
/// observation classes) and `machine-episode.gif` (the first episode, at most `video_frames` frames, annotated).
pub fn play(
    dir: &FsmDir,
    episodes: usize,
    seed: u64,
    max_steps: usize,
    video_frames: usize,
    device: &Device,
) -> Result<(PlayReport, Vec<PathBuf>), FsmError> {
    if !(1..=100_000).contains(&episodes) {
        return Err(FsmError::Invalid(format!("--episodes must be between 1 and 100000, got {episodes}")));
    }
    if !(1..=10_000_000).contains(&max_steps) {
        return Err(FsmError::Invalid(format!("--max-steps must be between 1 and 10000000, got {max_steps}")));
    }
    if video_frames > xrl::rollout::MAX_FRAMES {
        return Err(FsmError::Invalid(format!(
            "--video-frames must be at most {}, got {video_frames}",
            xrl::rollout::MAX_FRAMES
        )));
    }
    let card: FsmCard = dir.read_card()?;
    let extraction = dir.extraction()?;
    let mmn = dir.mmn(&card, device)?;
    let run_card = dir.run_card(&card)?;
    let mut env = run_card.env.make().map_err(|e| FsmError::Invalid(e.to_string()))?;
    let names = action_names(env.as_ref());
    let policy = crate::mmn::Mmn::new(mmn.net.clone(), None, None)?;
    let policy_scores = play_mmn(&policy, env.as_mut(), episodes, seed, max_steps)?;
    let mmn_scores = play_mmn(&mmn, env.as_mut(), episodes, seed, max_steps)?;
    let machine = &extraction.minimised;
    // Sample frames per class, and the first episode's annotated frames.
    let mut samples: BTreeMap<usize, (usize, Vec<RgbImage>)> = BTreeMap::new();
    let mut video = vec![];
    let action = |a: usize| names.get(a).cloned().unwrap_or_else(|| a.to_string());
    let played = play_machine(machine, &mmn, env.as_mut(), episodes, seed, max_steps, |e, env, step| {
        let entry = samples.entry(step.class).or_default();
        entry.0 += 1;
        if entry.1.len() < 4 && entry.0 % 7 == 1 {
            entry.1.push(env.render());
        }
        if e == 0 && video.len() < video_frames {
            let note = if step.recorded { String::new() } else { " (nearest recorded)".to_string() };
            video.push(xrl_render::plot::captioned(
                &env.render(),
                &[
                    format!("t {}  state s{} + obs o{} -> s{}{note}", video.len(), step.state, step.class, step.next),
                    format!("action {}", action(step.action)),
                ],
            ));
        }
    })?;
    let report = PlayReport {
        env: card.env.clone(),
        episodes,
        seed,
        max_steps,
        policy_mean: mean(&policy_scores),
        mmn_mean: mean(&mmn_scores),
        machine_mean: mean(&played.scores),
        policy: policy_scores,
        mmn: mmn_scores,
        machine: played,
        states: machine.states(),
        observation_classes: machine.observations(),
    };
    let mut written = vec![dir.path("scores.json")];
    write_json(&dir.path("scores.json"), &report)?;
    let mut by_count: Vec<(usize, usize, Vec<RgbImage>)> = samples.into_iter().map(|(c, (n, f))| (c, n, f)).collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let rows: Vec<Vec<RgbImage>> = by_count
        .iter()
        .take(12)
        .filter(|(_, _, f)| !f.is_empty())
        .map(|(c, n, frames)| {
            frames.iter().map(|f| xrl_render::plot::captioned(f, &[format!("o{c} ({n} steps)")])).collect()
        })
        .collect();
    if !rows.is_empty() {
        let path = dir.path("classes.png");
        xrl_render::write_png(&path, &xrl_render::heatmap::grid(&rows, 4)).map_err(render_err)?;
        written.push(path);
    }
    if !video.is_empty() {
        let path = dir.path("machine-episode.gif");
        xrl_render::write_gif(&path, &video, 10.0).map_err(render_err)?;
        written.push(path);
    }
    Ok((report, written))
}

/// The environment's action names (empty for continuous actions).
pub fn action_names(env: &dyn xrl_env::Env) -> Vec<String> {
    match &env.spec().action {
        xrl_env::ActionSpace::Discrete { meanings, .. } => meanings.clone(),
        _ => vec![],
    }
}
