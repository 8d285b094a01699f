//! The machine's decision points, where differential IG is asked: a state whose observation classes lead to
//! different next states. The extraction episodes are replayed (each was reset with its own seed), the minimised
//! machine followed along, and for each branch out of a state the first observation that took it is kept, with the
//! frame and the state the step started from; one branch's observation is the input, another's the baseline.
//! `xrl diff-ig` then draws the attributions, as the seed did and signed per bit.

use crate::FsmError;
use crate::diff_ig::{Bits, DiffIg, DiffIgConfig, diff_ig};
use crate::mmn::{Mmn, codes};
use crate::pipeline::{Extraction, FsmConfig, extraction_seed};
use burn::module::Module;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xrl::nn::{batch, to_vec};
use xrl_env::Env;
use xrl_render::RgbImage;
use xrl_render::heatmap::{Colormap, Sign, colorize, normalize, overlay, scale};

/// One observation at a decision point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub episode: usize,
    pub t: usize,
    pub class: usize,
    pub next: usize,
    pub obs: Vec<f32>,
    /// The (decoded) recurrent state the step started from.
    pub hidden: Vec<f32>,
    #[serde(skip)]
    pub frame: Option<RgbImage>,
}

/// A state of the minimised machine where two observations lead to different next states.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionPoint {
    pub state: usize,
    /// How often the replayed episodes visited the state.
    pub visits: usize,
    pub input: Sample,
    pub baseline: Sample,
}

/// Up to `max` decision points, the most visited states first; for each, the two most taken branches (input: the
/// most taken).
pub fn decision_points(
    extraction: &Extraction,
    mmn: &Mmn,
    env: &mut dyn Env,
    config: &FsmConfig,
    max: usize,
) -> Result<Vec<DecisionPoint>, FsmError> {
    let machine = &extraction.minimised;
    let plain = mmn.valid();
    let device = plain.device();
    // state → next → (times taken, first sample)
    let mut branches: BTreeMap<usize, BTreeMap<usize, (usize, Sample)>> = BTreeMap::new();
    let mut visits: BTreeMap<usize, usize> = BTreeMap::new();
    let pool = xrl::nn::acting_pool();
    for (e, trace) in extraction.traces.iter().enumerate() {
        env.reset(Some(extraction_seed(config, e)));
        let (mut hidden, _) = plain.initial(1);
        let mut state = machine.start;
        for t in 0..trace.steps.len() {
            let obs = env.obs().to_vec();
            let h = to_vec(hidden.clone());
            let step = pool.install(|| plain.step(batch(&obs, obs.len(), &device), hidden.clone()));
            let code = codes(step.obs_code.clone().expect("an MMN has an observation bottleneck"))[0].clone();
            let Some(mv) = machine.transition(state, &code) else { break };
            *visits.entry(state).or_default() += 1;
            let entry = branches.entry(state).or_default().entry(mv.next).or_insert_with(|| {
                (
                    0,
                    Sample {
                        episode: e,
                        t,
                        class: mv.class,
                        next: mv.next,
                        obs: obs.clone(),
                        hidden: h,
                        frame: Some(env.render()),
                    },
                )
            });
            entry.0 += 1;
            let action = xrl::nn::argmax_rows(step.logits)[0];
            hidden = step.hidden;
            state = mv.next;
            if env.step(&xrl_env::Action::Discrete(action)).map_err(|e| FsmError::Invalid(e.to_string()))?.done() {
                break;
            }
        }
    }
    let mut points: Vec<DecisionPoint> = branches
        .into_iter()
        .filter(|(_, b)| b.len() > 1)
        .map(|(state, b)| {
            let mut taken: Vec<(usize, Sample)> = b.into_values().collect();
            taken.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.next.cmp(&b.1.next)));
            let mut it = taken.into_iter();
            let input = it.next().expect("two branches").1;
            let baseline = it.next().expect("two branches").1;
            DecisionPoint { state, visits: visits[&state], input, baseline }
        })
        .collect();
    points.sort_by(|a, b| b.visits.cmp(&a.visits).then(a.state.cmp(&b.state)));
    points.truncate(max);
    Ok(points)
}

/// Differential IG at a decision point (`bits`: which code; the hidden code steps from the input's state).
pub fn explain_point(mmn: &Mmn, point: &DecisionPoint, config: &DiffIgConfig) -> Result<DiffIg, FsmError> {
    // A trajectory of a policy without recorded states gives none: the start state's is used.
    let hidden =
        (config.bits == Bits::Hidden && !point.input.hidden.is_empty()).then_some(point.input.hidden.as_slice());
    diff_ig(mmn, &point.input.obs, &point.baseline.obs, hidden, config)
}

/// Names of a vector observation's features (the seed's labels for its control tasks).
pub fn feature_names(env_id: &str, n: usize) -> Vec<String> {
    let known: &[&str] = match env_id {
        "CartPole-v1" | "CartPole-v0" => &["cart position", "cart velocity", "pole angle", "pole angular velocity"],
        "Acrobot-v1" => &["cos θ1", "sin θ1", "cos θ2", "sin θ2", "θ1 velocity", "θ2 velocity"],
        "MountainCar-v0" => &["position", "velocity"],
        _ => &[],
    };
    (0..n).map(|i| known.get(i).map_or(format!("x{i}"), |s| s.to_string())).collect()
}

/// A map over a C×H×W observation summed over channels (H×W), or the vector itself.
fn spatial(map: &[f32], shape: &[usize]) -> (Vec<f32>, u32, u32) {
    match shape {
        [c, h, w] => {
            let plane = h * w;
            ((0..plane).map(|p| (0..*c).map(|ch| map[ch * plane + p]).sum()).collect(), *w as u32, *h as u32)
        }
        _ => (map.to_vec(), 1, map.len() as u32),
    }
}

/// The seed's picture: the masked and unmasked maps side by side, each in the `hot` colormap at α 0.6 over the
/// input frame (frames: MinAtar and Atari), or as a labelled column of features (vector observations: the mean of
/// IG over every bit, as the seed's control picture). `None` when no bit differs and the frame has pixels.
pub fn seed_picture(d: &DiffIg, point: &DecisionPoint, shape: &[usize], names: &[String]) -> Option<RgbImage> {
    if shape.len() == 3 {
        let frame = point.input.frame.as_ref()?;
        let panel = |map: &Option<Vec<f32>>, title: &str| -> Option<RgbImage> {
            let (m, w, h) = spatial(map.as_ref()?, shape);
            let s = scale(&[&m], Sign::Absolute, 100.0);
            let v = normalize(&m, s, Sign::Absolute);
            let heat = colorize(&v, w, h, Colormap::Hot, Sign::Absolute);
            let ones = vec![1.0; v.len()];
            Some(xrl_render::plot::captioned(&overlay(frame, &heat, &ones, 0.6), &[title.to_string()]))
        };
        let (a, b) = (panel(&d.masked, "masked_diff_IG")?, panel(&d.unmasked, "unmasked_diff_IG")?);
        Some(xrl_render::heatmap::grid(&[vec![a, b]], 4))
    } else {
        Some(xrl_render::plot::feature_column(names, &d.all_bits, "mean diff-IG over all bits"))
    }
}

/// Our picture: one signed panel per differing bit (red: pushes the bit's value towards the input's, blue: away),
/// labelled with the bit and its two codes; for vector observations one column per bit.
pub fn bit_panels(
    d: &DiffIg,
    point: &DecisionPoint,
    shape: &[usize],
    names: &[String],
    max_bits: usize,
) -> Option<RgbImage> {
    let bits: Vec<usize> = d.differing.iter().copied().filter(|&j| d.bit(j).is_some()).take(max_bits).collect();
    if bits.is_empty() {
        return None;
    }
    let maps: Vec<(Vec<f32>, u32, u32)> =
        bits.iter().map(|&j| spatial(&d.bit(j).expect("filtered above").ig, shape)).collect();
    let refs: Vec<&[f32]> = maps.iter().map(|m| m.0.as_slice()).collect();
    let s = scale(&refs, Sign::Signed, 100.0);
    let label = |j: usize| format!("bit {j}: {} → {}", d.baseline_code[j], d.input_code[j]);
    let panels: Vec<RgbImage> = bits
        .iter()
        .zip(&maps)
        .map(|(&j, (m, w, h))| {
            let v = normalize(m, s, Sign::Signed);
            if shape.len() == 3 {
                let heat = colorize(&v, *w, *h, Colormap::RedBlue, Sign::Signed);
                let frame = point.input.frame.clone().unwrap_or_else(|| RgbImage::new(*w * 16, *h * 16));
                let intensity: Vec<f32> = v.iter().map(|x| x.abs()).collect();
                xrl_render::plot::captioned(&overlay(&frame, &heat, &intensity, 0.8), &[label(j)])
            } else {
                xrl_render::plot::feature_column(names, &d.bit(j).expect("filtered above").ig, &label(j))
            }
        })
        .collect();
    let rows: Vec<Vec<RgbImage>> = panels.chunks(6).map(|c| c.to_vec()).collect();
    Some(xrl_render::heatmap::grid(&rows, 4))
}
