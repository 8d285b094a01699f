//! Model-parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps"): a map that explains
//! the network should change when the network's learned weights are replaced by fresh random ones.
//!
//! Layers are re-initialised with the initialiser the network was built with, from a recorded seed: cascading
//! (the top k layers, from the output down, k = 1..L) and independent (one layer at a time). For each variant the
//! method's maps of every frame (one batched `attribute` call) are compared with the trained network's by the
//! [`Measure`]s, under Huber et al. 2022's inversion rule; a control row compares random maps with the
//! originals, the floor a measure reaches by chance.
//!
//! The re-initialisation works on any backend: the network goes through its safetensors bytes
//! ([`xrl::run::weights_bytes`]), the chosen layers' tensors are replaced there, and the bytes are loaded into a
//! fresh network of the same spec ([`xrl::run::load_weights`]).

use super::similarity::{Measure, SimilarityParams};
use super::{Subject, cell_maps};
use crate::{ExplainError, Method};
use rand::SeedableRng;
use rand::distr::{Distribution, Uniform};
use rand_distr::Normal;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use xrl_nn::Net;

/// Quantus MPRT's default seed.
pub const DEFAULT_SEED: u64 = 42;

/// The test's settings. Defaults: seed 42 (Quantus MPRT's), all four measures, and [`SimilarityParams`] sized
/// to the frame ([`SimilarityParams::for_frame`]: SSIM window 3 and HOG cells of 2×2 cells on MinAtar's 10×10,
/// window 11 and 16×16 cells on Atari's 84×84).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct Randomisation {
    /// Every random draw derives from it: the layers' new weights and the control's random maps.
    pub seed: u64,
    pub measures: Vec<Measure>,
    /// `None`: sized to the frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<SimilarityParams>,
    /// Also randomise each layer alone (Adebayo et al.'s independent test); `false`: cascading only (Quantus
    /// MPRT's `top_down`).
    pub independent: bool,
}

impl Default for Randomisation {
    fn default() -> Self {
        Randomisation { seed: DEFAULT_SEED, measures: Measure::ALL.to_vec(), params: None, independent: true }
    }
}

/// A measure's similarity to the original maps over the frames: mean and population standard deviation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Score {
    pub measure: Measure,
    pub mean: f64,
    pub std: f64,
}

/// One randomised network: which layers were re-initialised, and each measure's score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Variant {
    pub randomised: Vec<String>,
    pub scores: Vec<Score>,
}

/// What [`Randomisation::run`] measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RandomisationResult {
    pub method: String,
    pub seed: u64,
    pub frames: usize,
    /// Frames whose original map is constant: their rank correlations are 0 by definition, whatever the
    /// randomised maps.
    pub constant_frames: usize,
    pub params: SimilarityParams,
    /// The layers, from the output down ([`layers`]).
    pub layers: Vec<String>,
    /// Row k: layers 1..=k re-initialised.
    pub cascading: Vec<Variant>,
    /// Row k: layer k alone re-initialised.
    pub independent: Vec<Variant>,
    /// The control: maps drawn uniformly from [−1, 1) per cell, one per frame, against the originals.
    pub random_maps: Vec<Score>,
}

/// A tensor of a network's safetensors record.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// E.g. `head.out.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The distribution a tensor's values are drawn from when its layer is re-initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(−bound, bound).
    Uniform { bound: f64 },
    /// N(0, std²).
    Normal { std: f64 },
    /// All zeros (the IFE extractor's HUE biases).
    Zeros,
}

/// The network's tensors, in the record's order (sorted by name).
pub fn named_tensors(net: &Net) -> Result<Vec<NamedTensor>, ExplainError> {
    let bytes = xrl::run::weights_bytes(net)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| ExplainError::Invalid(format!("cannot read the network's own weights back: {e}")))?;
    let mut out = vec![];
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(ExplainError::Invalid(format!(
                "tensor {name} is {:?}: parameter randomisation re-initialises f32 weights only",
                view.dtype()
            )));
        }
        let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        out.push(NamedTensor { name, shape: view.shape().to_vec(), values });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The layer a tensor belongs to: a recurrent core is one layer (`core`: every gate of the LSTM or GRU);
/// otherwise the name less its last part (`head.out.weight` → `head.out`, `torso.convs.0.bias` →
/// `torso.convs.0`).
fn layer_of(tensor: &str) -> String {
    if tensor.starts_with("core.") {
        return "core".into();
    }
    tensor.rsplit_once('.').map_or(tensor, |(prefix, _)| prefix).to_string()
}

/// Where a layer goes in the order from the output down: (group, −index within its stack).
fn depth(layer: &str) -> Option<(u8, i64)> {
    let index = |prefix: &str| layer.strip_prefix(prefix).and_then(|i| i.parse::<i64>().ok());
    match layer {
        "head.out" => Some((0, 0)),
        "head.value" => Some((1, 0)),
        "core" => Some((3, 0)),
        _ => {
            if let Some(i) = index("head.value_fc.") {
                Some((2, -i))
            } else if let Some(i) = index("torso.fc.") {
                Some((4, -i))
            } else if let Some(i) = index("torso.ife.res.") {
                // The IFE extractor from its output down: residual convolutions, attention, HUE convolutions.
                Some((5, -i))
            } else if layer == "torso.ife.att_out" {
                Some((6, 0))
            } else if layer == "torso.ife.att_hidden" {
                Some((7, 0))
            } else if let Some(i) = index("torso.ife.hue.") {
                Some((8, -i))
            } else {
                index("torso.convs.").map(|i| (9, -i))
            }
        }
    }
}

fn ordered_layers(tensors: &[NamedTensor]) -> Result<Vec<String>, ExplainError> {
    let mut layers: Vec<String> = tensors.iter().map(|t| layer_of(&t.name)).collect();
    layers.sort();
    layers.dedup();
    let mut keyed = vec![];
    for l in layers {
        // A noisy layer's σ acts only in training passes; the evaluated network is its mean, so σ is no layer here.
        if l.ends_with("_noise") {
            continue;
        }
        let key = depth(&l).ok_or_else(|| {
            ExplainError::Invalid(format!("layer {l}: parameter randomisation does not know its place or initialiser"))
        })?;
        keyed.push((key, l));
    }
    keyed.sort();
    Ok(keyed.into_iter().map(|(_, l)| l).collect())
}

/// The network's layers from the output down, the order of the cascading test: the head's outputs (`head.out`:
/// Q values, advantages or logits), its value output (`head.value`), a two-stream value head's own hidden layers
/// from last to first (`head.value_fc.N`), the recurrent core (`core`), the torso's fully connected layers from
/// last to first (`torso.fc.N`), then its convolutions from last to first (`torso.convs.N`). Names are the
/// tensors' prefixes in the network's safetensors record.
pub fn layers(net: &Net) -> Result<Vec<String>, ExplainError> {
    ordered_layers(&named_tensors(net)?)
}

/// The initialiser `xrl_nn` builds a tensor with (burn 0.22.1's defaults), from the tensor's name and the shape
/// of its layer's weight:
///
/// * `Linear` and `Conv2d` weights and biases: `KaimingUniform { gain: 1/√3 }`, i.e. U(−1/√fan_in, 1/√fan_in)
///   (PyTorch's default), fan_in = the input features (a Linear weight is stored `[in, out]`) or
///   in_channels·k·k (a Conv2d weight is `[out, in, k, k]`);
/// * an LSTM's or GRU's gates (`core.…`, each gate two Linears, `input_transform` and `hidden_transform`):
///   `XavierNormal { gain: 1 }` for weights and biases alike (burn-nn's `GateController` passes the gate's
///   initialiser to both), N(0, 2/(fan_in + fan_out)) with the Linear's `[in, out]`.
pub fn initialiser(tensor: &str, layer_weight_shape: &[usize]) -> Result<Init, ExplainError> {
    let bad = || ExplainError::Invalid(format!("tensor {tensor}: no known initialiser for its layer"));
    if tensor.starts_with("core.") {
        let [fan_in, fan_out] = layer_weight_shape[..] else { return Err(bad()) };
        return Ok(Init::Normal { std: (2.0 / (fan_in + fan_out) as f64).sqrt() });
    }
    let fan_in = match layer_weight_shape {
        [fan_in, _] => *fan_in,
        [_, c, kh, kw] => c * kh * kw,
        _ => return Err(bad()),
    };
    if fan_in == 0 {
        return Err(bad());
    }
    // The IFE seed's HUE convolutions: the default times the ReLU gain √2, biases 0.
    if tensor.starts_with("torso.ife.hue.") {
        return Ok(if tensor.ends_with(".bias") {
            Init::Zeros
        } else {
            Init::Uniform { bound: std::f64::consts::SQRT_2 / (fan_in as f64).sqrt() }
        });
    }
    Ok(Init::Uniform { bound: 1.0 / (fan_in as f64).sqrt() })
}

/// FNV-1a of a name: a hash that stays the same across Rust versions and platforms, unlike std's.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The random stream of one tensor (or of the control, under a name no tensor has): from the seed and the name
/// only, so a tensor's new values do not depend on which other layers are randomised or in what order.
fn stream(seed: u64, name: &str) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ fnv1a(name))
}

/// Fresh values for every tensor of `layer`, by its initialiser, each from its own stream.
fn redraw(tensors: &[NamedTensor], layer: &str, seed: u64) -> Result<HashMap<String, Vec<f32>>, ExplainError> {
    let shape_of: HashMap<&str, &[usize]> = tensors.iter().map(|t| (t.name.as_str(), t.shape.as_slice())).collect();
    let mut out = HashMap::new();
    for t in tensors.iter().filter(|t| layer_of(&t.name) == layer) {
        let (prefix, _) = t.name.rsplit_once('.').unwrap_or((&t.name, ""));
        let weight = shape_of.get(format!("{prefix}.weight").as_str()).copied().ok_or_else(|| {
            ExplainError::Invalid(format!("tensor {}: its layer has no weight to size its initialiser", t.name))
        })?;
        let mut rng = stream(seed, &t.name);
        let n = t.values.len();
        let values = match initialiser(&t.name, weight)? {
            Init::Uniform { bound } => {
                let b = bound as f32;
                let u = Uniform::new(-b, b).map_err(|e| ExplainError::Invalid(format!("tensor {}: {e}", t.name)))?;
                (0..n).map(|_| u.sample(&mut rng)).collect()
            }
            Init::Zeros => vec![0.0; n],
            Init::Normal { std } => {
                let d = Normal::new(0.0f32, std as f32)
                    .map_err(|e| ExplainError::Invalid(format!("tensor {}: {e}", t.name)))?;
                (0..n).map(|_| d.sample(&mut rng)).collect()
            }
        };
        out.insert(t.name.clone(), values);
    }
    if out.is_empty() {
        return Err(ExplainError::Invalid(format!("the network has no layer {layer}")));
    }
    Ok(out)
}

/// A fresh network of `tensors`' spec with `replaced` tensors' values swapped in.
fn rebuild(net: &Net, tensors: &[NamedTensor], replaced: &HashMap<String, Vec<f32>>) -> Result<Net, ExplainError> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| replaced.get(&t.name).unwrap_or(&t.values).iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            safetensors::tensor::TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| ExplainError::Invalid(format!("tensor {}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let record = safetensors::serialize(views, None)
        .map_err(|e| ExplainError::Invalid(format!("cannot write the randomised weights: {e}")))?;
    Ok(xrl::run::load_weights(net.spec(), Path::new("<randomised weights>"), record, &net.device())?)
}

/// A copy of `net` with the named tensors' values replaced (names as [`named_tensors`] gives them, burn's layout:
/// Linear weights `[in, out]`); every other tensor is kept. How a network with given weights is built (the
/// reference comparisons' fixtures).
pub fn with_tensors(net: &Net, values: &HashMap<String, Vec<f32>>) -> Result<Net, ExplainError> {
    let tensors = named_tensors(net)?;
    for (name, v) in values {
        let Some(t) = tensors.iter().find(|t| &t.name == name) else {
            let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
            return Err(ExplainError::Invalid(format!("no tensor {name}; the network's are {}", names.join(", "))));
        };
        if t.values.len() != v.len() {
            return Err(ExplainError::Invalid(format!(
                "tensor {name} has {} values (shape {:?}); {} were given",
                t.values.len(),
                t.shape,
                v.len()
            )));
        }
    }
    rebuild(net, &tensors, values)
}

/// A copy of `net` with `chosen` layers (names from [`layers`]) re-initialised by their own initialiser
/// ([`initialiser`]) from `seed`; every other tensor is kept bit for bit. A tensor's new values depend only on
/// the seed and its name.
pub fn randomise(net: &Net, chosen: &[String], seed: u64) -> Result<Net, ExplainError> {
    let tensors = named_tensors(net)?;
    let known = ordered_layers(&tensors)?;
    let mut replaced = HashMap::new();
    for layer in chosen {
        if !known.contains(layer) {
            return Err(ExplainError::Invalid(format!("no layer {layer}; the network's are {}", known.join(", "))));
        }
        replaced.extend(redraw(&tensors, layer, seed)?);
    }
    rebuild(net, &tensors, &replaced)
}

impl Randomisation {
    /// Runs the test on `subject`'s frames and targets: the original maps, then for k = 1..L the maps with
    /// layers 1..=k re-initialised (cascading) and with layer k alone (independent; k = 1 is the same network
    /// as cascading's first and is computed once), and the random-map control. A layer gets the same new values
    /// in every variant it is randomised in. Maps are compared as cell maps ([`cell_maps`]).
    pub fn run(&self, subject: &Subject, method: &dyn Method) -> Result<RandomisationResult, ExplainError> {
        if self.measures.is_empty() {
            return Err(ExplainError::Invalid("no similarity measures: name at least one".into()));
        }
        let frame = subject.frame();
        let [_, h, w] = frame;
        let cells = h * w;
        let params = self.params.unwrap_or_else(|| SimilarityParams::for_frame(h, w));
        let original = cell_maps(&subject.maps(method)?, frame);
        if cells == 0 || original.len() != subject.count() * cells {
            return Err(ExplainError::Invalid(format!(
                "{} cell-map values for {} frames of {h}×{w} cells: the method's maps do not fit the frames",
                original.len(),
                subject.count()
            )));
        }
        // Refuse measures that do not fit the frame before any randomised pass.
        for m in &self.measures {
            m.similarity_with(&params, &original[..cells], &original[..cells], h, w)?;
        }
        let tensors = named_tensors(subject.net)?;
        let layers = ordered_layers(&tensors)?;
        let draws = layers.iter().map(|l| redraw(&tensors, l, self.seed)).collect::<Result<Vec<_>, ExplainError>>()?;
        let maps_of = |chosen: &[usize]| -> Result<Vec<f32>, ExplainError> {
            let replaced: HashMap<String, Vec<f32>> =
                chosen.iter().flat_map(|&k| draws[k].iter().map(|(n, v)| (n.clone(), v.clone()))).collect();
            let net = rebuild(subject.net, &tensors, &replaced)?;
            // A recurrent network's randomised copy starts every frame from the same recorded state as the original
            // (the state the trained agent held; it is not re-run through the randomised core).
            let attr = method.attribute(&subject.model_of(&net, None), &subject.inputs, subject.targets, None)?;
            Ok(cell_maps(&attr, frame))
        };
        let names = |chosen: &[usize]| chosen.iter().map(|&k| layers[k].clone()).collect::<Vec<_>>();
        let mut cascading = vec![];
        let mut independent = vec![];
        for k in 0..layers.len() {
            let top: Vec<usize> = (0..=k).collect();
            let scores = self.scores(&params, &original, &maps_of(&top)?, h, w)?;
            if self.independent {
                let alone =
                    if k == 0 { scores.clone() } else { self.scores(&params, &original, &maps_of(&[k])?, h, w)? };
                independent.push(Variant { randomised: names(&[k]), scores: alone });
            }
            cascading.push(Variant { randomised: names(&top), scores });
        }
        let mut rng = stream(self.seed, "random-maps");
        let u = Uniform::new(-1.0f32, 1.0).map_err(|e| ExplainError::Invalid(e.to_string()))?;
        let random: Vec<f32> = (0..original.len()).map(|_| u.sample(&mut rng)).collect();
        let random_maps = self.scores(&params, &original, &random, h, w)?;
        let constant_frames = original.chunks(cells.max(1)).filter(|m| m.iter().all(|&v| v == m[0])).count();
        Ok(RandomisationResult {
            method: method.name(),
            seed: self.seed,
            frames: subject.count(),
            constant_frames,
            params,
            layers,
            cascading,
            independent,
            random_maps,
        })
    }

    /// Each measure's mean and population standard deviation over the frames of the similarity of `other`'s
    /// map to `original`'s.
    fn scores(
        &self,
        params: &SimilarityParams,
        original: &[f32],
        other: &[f32],
        h: usize,
        w: usize,
    ) -> Result<Vec<Score>, ExplainError> {
        let cells = h * w;
        if other.len() != original.len() {
            return Err(ExplainError::Invalid(format!(
                "{} map values for {} original ones: the method changed its map size",
                other.len(),
                original.len()
            )));
        }
        self.measures
            .iter()
            .map(|m| {
                let values = original
                    .par_chunks(cells)
                    .zip(other.par_chunks(cells))
                    .map(|(a, b)| m.similarity_with(params, a, b, h, w))
                    .collect::<Result<Vec<f64>, _>>()?;
                let (mean, std) = mean_std(&values);
                Ok(Score { measure: *m, mean, std })
            })
            .collect()
    }
}

/// Mean and population standard deviation (ddof 0, as numpy's `std`); zeros for no values.
fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (mean, (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_go_from_the_output_down() {
        let names = [
            "torso.convs.0.weight",
            "torso.convs.1.weight",
            "torso.fc.0.weight",
            "torso.fc.1.bias",
            "torso.fc.1.weight",
            "torso.fc.10.weight",
            "head.out.weight",
            "head.value.weight",
            "head.value_fc.0.weight",
            "core.Gru.update_gate.input_transform.weight",
        ];
        let tensors: Vec<NamedTensor> =
            names.iter().map(|n| NamedTensor { name: n.to_string(), shape: vec![1, 1], values: vec![0.0] }).collect();
        let got = ordered_layers(&tensors).unwrap();
        let want = [
            "head.out",
            "head.value",
            "head.value_fc.0",
            "core",
            "torso.fc.10",
            "torso.fc.1",
            "torso.fc.0",
            "torso.convs.1",
            "torso.convs.0",
        ];
        assert_eq!(got, want);
    }

    /// An IFE Rainbow network (noisy, distributional, two streams): its extractor from the output down, the noisy
    /// layers' σ left out (the evaluated network is their mean), and the HUE convolutions' own initialiser.
    #[test]
    fn an_ife_network_cascades_through_its_extractor() {
        let spec = xrl_nn::NetSpec {
            noisy: Some(0.5),
            atoms: Some(xrl_nn::Atoms { n: 5, v_min: -1.0, v_max: 1.0 }),
            ..xrl_nn::NetSpec::new(vec![4, 10, 10], 3, xrl_nn::Torso::Ife { m: 1 }, xrl_nn::HeadKind::Dueling)
                .with_streams()
        };
        let net = Net::new(&spec, &xrl_nn::device::for_tests()).unwrap();
        let got = layers(&net).unwrap();
        let want = [
            "head.out",
            "head.value",
            "head.value_fc.0",
            "torso.fc.0",
            "torso.ife.res.3",
            "torso.ife.res.2",
            "torso.ife.res.1",
            "torso.ife.res.0",
            "torso.ife.att_out",
            "torso.ife.att_hidden",
            "torso.ife.hue.2",
            "torso.ife.hue.1",
            "torso.ife.hue.0",
        ];
        assert_eq!(got, want);
        let hue = initialiser("torso.ife.hue.0.weight", &[16, 4, 1, 1]).unwrap();
        assert_eq!(hue, Init::Uniform { bound: std::f64::consts::SQRT_2 / 2.0 });
        assert_eq!(initialiser("torso.ife.hue.0.bias", &[16, 4, 1, 1]).unwrap(), Init::Zeros);
    }

    #[test]
    fn initialisers_follow_burns_defaults() {
        assert_eq!(initialiser("head.out.weight", &[16, 4]).unwrap(), Init::Uniform { bound: 0.25 });
        assert_eq!(initialiser("torso.convs.0.bias", &[16, 4, 3, 3]).unwrap(), Init::Uniform { bound: 1.0 / 6.0 });
        let Init::Normal { std } = initialiser("core.Lstm.input_gate.hidden_transform.bias", &[16, 16]).unwrap() else {
            panic!("gates are Xavier-normal")
        };
        assert!((std - 0.25).abs() < 1e-15);
    }

    #[test]
    fn mean_and_std_are_numpys() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((s - 1.118_033_988_749_895).abs() < 1e-15);
    }

    use crate::{Call, Computed, Target};
    use xrl_nn::{Core, CoreKind, HeadKind, NetSpec, Torso};

    fn net(spec: NetSpec) -> Net {
        Net::new(&spec, &xrl_nn::device::for_tests()).unwrap()
    }

    fn minatar() -> Net {
        net(NetSpec::new(vec![4, 10, 10], 6, Torso::MinatarCnn, HeadKind::Q))
    }

    /// Every architecture's layers: CNN torsos, two-stream and actor-critic heads, recurrent cores.
    fn nets() -> Vec<Net> {
        vec![
            minatar(),
            net(NetSpec::new(vec![4, 84, 84], 6, Torso::NatureCnn, HeadKind::Dueling).with_streams()),
            net(NetSpec::new(vec![6], 3, Torso::Mlp { hidden: vec![32, 16] }, HeadKind::ActorCritic)
                .with_core(Core { kind: CoreKind::Gru, hidden: 8 })),
            net(NetSpec::new(vec![6], 3, Torso::Mlp { hidden: vec![16] }, HeadKind::Q)
                .with_core(Core { kind: CoreKind::Lstm, hidden: 8 })),
        ]
    }

    #[test]
    fn every_layer_is_known_and_ordered_from_the_output_down() {
        let got: Vec<Vec<String>> = nets().iter().map(|n| layers(n).unwrap()).collect();
        assert_eq!(got[0], ["head.out", "torso.fc.0", "torso.convs.0"]);
        assert_eq!(
            got[1],
            [
                "head.out",
                "head.value",
                "head.value_fc.0",
                "torso.fc.0",
                "torso.convs.2",
                "torso.convs.1",
                "torso.convs.0"
            ]
        );
        assert_eq!(got[2], ["head.out", "head.value", "core", "torso.fc.1", "torso.fc.0"]);
        assert_eq!(got[3], ["head.out", "core", "torso.fc.0"]);
    }

    /// Re-initialising one layer changes every value of its tensors, keeps every other tensor bit for bit, draws
    /// within the initialiser's range, and is repeatable from the seed whatever else is randomised with it.
    #[test]
    fn randomising_a_layer_redraws_it_alone_repeatably() {
        for net in nets() {
            let before = named_tensors(&net).unwrap();
            for layer in layers(&net).unwrap() {
                let after = named_tensors(&randomise(&net, std::slice::from_ref(&layer), 7).unwrap()).unwrap();
                assert_eq!(after.len(), before.len());
                for (b, a) in before.iter().zip(&after) {
                    assert_eq!((&b.name, &b.shape), (&a.name, &a.shape));
                    if layer_of(&b.name) != layer {
                        let same = b.values.iter().zip(&a.values).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{} changed when {layer} was randomised", b.name);
                        continue;
                    }
                    // Two f32 draws from ranges as narrow as ±0.018 coincide about once in ten million.
                    let changed = b.values.iter().zip(&a.values).filter(|(x, y)| x != y).count();
                    let n = b.values.len();
                    assert!(changed + n / 100_000 >= n, "{}: only {changed} of {n} values redrawn", b.name);
                    let prefix = b.name.rsplit_once('.').unwrap().0;
                    let weight = &before.iter().find(|t| t.name == format!("{prefix}.weight")).unwrap().shape;
                    match initialiser(&b.name, weight).unwrap() {
                        Init::Uniform { bound } => {
                            assert!(a.values.iter().all(|v| v.abs() <= bound as f32), "{} out of range", b.name)
                        }
                        Init::Normal { std } => {
                            assert!(a.values.iter().all(|v| v.abs() <= 7.0 * std as f32), "{}: outlier", b.name)
                        }
                        Init::Zeros => assert!(a.values.iter().all(|&v| v == 0.0), "{} not zeros", b.name),
                    }
                }
                let again = named_tensors(&randomise(&net, std::slice::from_ref(&layer), 7).unwrap()).unwrap();
                assert_eq!(again, after, "{layer}: not repeatable from its seed");
                let other = named_tensors(&randomise(&net, std::slice::from_ref(&layer), 8).unwrap()).unwrap();
                assert_ne!(other, after, "{layer}: the seed does not matter");
            }
            // A layer's values do not depend on the others randomised with it, nor on their order.
            let all = layers(&net).unwrap();
            let reversed: Vec<String> = all.iter().rev().cloned().collect();
            let together = named_tensors(&randomise(&net, &reversed, 7).unwrap()).unwrap();
            let alone = named_tensors(&randomise(&net, &all[..1], 7).unwrap()).unwrap();
            for (t, a) in together.iter().zip(&alone) {
                if layer_of(&t.name) == all[0] {
                    assert_eq!(t, a);
                }
            }
        }
    }

    fn variance(v: &[f32]) -> f64 {
        let n = v.len() as f64;
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n
    }

    /// On large layers the new values have the initialiser's moments: bound²/3 for the Nature CNN's first fully
    /// connected layer (3136 × 512 weights, U(±1/√3136)), 2/(in + out) for a wide GRU's gate weights.
    #[test]
    fn large_layers_get_the_initialisers_variance() {
        let nature = net(NetSpec::new(vec![4, 84, 84], 6, Torso::NatureCnn, HeadKind::Q));
        let fc = named_tensors(&randomise(&nature, &["torso.fc.0".into()], 42).unwrap()).unwrap();
        let w = fc.iter().find(|t| t.name == "torso.fc.0.weight").unwrap();
        assert_eq!(w.shape, [3136, 512]);
        let want = 1.0 / 3136.0 / 3.0;
        assert!((variance(&w.values) / want - 1.0).abs() < 0.01, "{} vs {want}", variance(&w.values));
        let mean = w.values.iter().map(|&x| x as f64).sum::<f64>() / w.values.len() as f64;
        assert!(mean.abs() < 1e-4, "{mean}");

        let gru = net(NetSpec::new(vec![6], 3, Torso::Mlp { hidden: vec![256] }, HeadKind::Q)
            .with_core(Core { kind: CoreKind::Gru, hidden: 512 }));
        let core = named_tensors(&randomise(&gru, &["core".into()], 42).unwrap()).unwrap();
        let gates: Vec<&NamedTensor> =
            core.iter().filter(|t| t.name.starts_with("core.") && t.name.ends_with(".weight")).collect();
        assert_eq!(gates.len(), 6, "three gates of two Linears each");
        for g in gates {
            let want = 2.0 / (g.shape[0] + g.shape[1]) as f64;
            assert!((variance(&g.values) / want - 1.0).abs() < 0.02, "{}: {} vs {want}", g.name, variance(&g.values));
        }
    }

    #[test]
    fn unknown_layers_are_refused() {
        let err = randomise(&minatar(), &["torso.fc.3".into()], 1).unwrap_err();
        assert!(err.to_string().contains("no layer torso.fc.3"), "{err}");
    }

    /// The input itself as the map: Adebayo et al.'s edge-detector control, a method that ignores the network.
    struct InputAsMap;

    impl Method for InputAsMap {
        fn name(&self) -> String {
            "input".into()
        }

        fn compute(&self, call: &Call) -> Result<Computed, ExplainError> {
            Ok(Computed::at_input(call.inputs.values.to_vec(), call))
        }
    }

    fn frames(n: usize) -> Vec<f32> {
        let mut rng = stream(3, "frames");
        let u = Uniform::new(0.0f32, 1.0).unwrap();
        (0..n * 400).map(|_| if u.sample(&mut rng) < 0.2 { 1.0 } else { 0.0 }).collect()
    }

    #[test]
    fn a_method_blind_to_the_network_scores_one_and_the_control_does_not() {
        let net = minatar();
        let x = frames(5);
        let shape = [4, 10, 10];
        let targets = vec![Target::Action(0); 5];
        let subject = Subject::new(&net, crate::Inputs::new(&x, &shape).unwrap(), &targets).unwrap();
        let r = Randomisation::default().run(&subject, &InputAsMap).unwrap();
        assert_eq!(r.layers, ["head.out", "torso.fc.0", "torso.convs.0"]);
        assert_eq!((r.cascading.len(), r.independent.len(), r.frames), (3, 3, 5));
        assert_eq!(r.cascading[2].randomised, r.layers);
        assert_eq!(r.independent[1].randomised, ["torso.fc.0"]);
        for v in r.cascading.iter().chain(&r.independent) {
            assert_eq!(v.scores.len(), 4);
            for s in &v.scores {
                assert!((s.mean - 1.0).abs() < 1e-9 && s.std < 1e-9, "{:?} {s:?}", v.randomised);
            }
        }
        for s in &r.random_maps {
            assert!(s.mean < 0.5, "random maps look like the originals: {s:?}");
        }
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""measure":"spearman-abs""#), "{json}");
        let back: RandomisationResult = serde_json::from_str(&json).unwrap();
        assert_eq!((&back.layers, back.params, back.seed), (&r.layers, r.params, r.seed));
        let values = |r: &RandomisationResult| -> Vec<f64> {
            let rows = r.cascading.iter().chain(&r.independent).flat_map(|v| &v.scores);
            rows.chain(&r.random_maps).flat_map(|s| [s.mean, s.std]).collect()
        };
        // serde_json parses floats to within an ulp or so, not always to the written value.
        assert!(values(&back).iter().zip(values(&r)).all(|(a, b)| (a - b).abs() < 1e-12));
    }

    #[test]
    fn gradients_of_a_randomised_network_change() {
        let net = minatar();
        let x = frames(6);
        let shape = [4, 10, 10];
        let targets = vec![Target::Action(1); 6];
        let subject = Subject::new(&net, crate::Inputs::new(&x, &shape).unwrap(), &targets).unwrap();
        let method = crate::Gradient::new(crate::GradientKind::Vanilla);
        let run = |seed| Randomisation { seed, ..Randomisation::default() }.run(&subject, &method).unwrap();
        let r = run(42);
        assert_eq!(r, run(42), "the test is repeatable from its seed");
        for v in r.cascading.iter().chain(&r.independent) {
            for s in &v.scores {
                assert!(s.mean.is_finite() && (-1.0..=1.0).contains(&s.mean) && s.std.is_finite(), "{s:?}");
            }
        }
        // The original network is untrained too, so ask only that re-initialising every layer changes the maps.
        let full = &r.cascading.last().unwrap().scores[0];
        assert!(full.mean < 0.99, "{full:?}");
    }
}
