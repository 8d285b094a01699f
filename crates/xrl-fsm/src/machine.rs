//! Moore machines extracted from recurrent policies (Koul et al. 2019, "Learning Finite State Representations of
//! Recurrent Policy Networks"): states are quantised hidden-state codes, each with the action the policy takes in
//! it; inputs are quantised observation codes; transitions are what the policy was seen to do.
//!
//! A machine built from recorded traces ([`MooreMachine::from_traces`]) is *partial*: only the transitions seen
//! are defined. [`MooreMachine::minimise`] merges states that no recorded observation sequence can tell apart and
//! then observations that lead everywhere alike, so that the machine is small enough to read, while every recorded
//! trace is reproduced exactly (the property the tests check on random machines).
//!
//! The seed code's minimisation (`minimize_partial_fsm`) merges greedy cliques of compatible states and takes each
//! merged state's transition from "the first sub-state that defines it", which can send a trace into the wrong
//! group; here the cliques are then split until every group's successors under every observation lie in one group
//! (a closed partition), which is what makes the quotient reproduce the traces. For a complete machine the same
//! refinement, started from the partition by action, is Moore's algorithm and gives the minimal machine.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FsmError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {message}")]
    File { path: std::path::PathBuf, message: String },
    #[error(transparent)]
    Run(#[from] xrl::run::RunError),
}

/// A quantised code (each entry −1, 0 or 1; binary codes use −1 and 1).
pub type Code = Vec<i8>;

/// One recorded step: the observation code the policy saw, and the state code it moved to, with that state's action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub obs: Code,
    pub next: Code,
    pub action: usize,
}

/// One recorded episode: the start state's code and action, then its steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub start: Code,
    pub start_action: usize,
    pub steps: Vec<Step>,
}

/// One move of a machine playing on its own (see [`MooreMachine::transition`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub next: usize,
    /// The observation class taken.
    pub class: usize,
    /// Hamming distance from the code to the class's nearest code (0: a code seen when the machine was built).
    pub distance: usize,
    /// Whether the state's transition on the class was recorded (false: the nearest recorded one was taken).
    pub recorded: bool,
}

/// A (possibly partial) Moore machine over observation classes. Transitions are stored per state, only where a
/// trace went: an extracted machine has thousands of states and observation classes and few transitions each.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MooreMachine {
    /// Each state's action (the output of a Moore machine).
    pub actions: Vec<usize>,
    /// `next[state]`: observation class → the state reached (classes no trace took from it are absent).
    pub next: Vec<BTreeMap<usize, usize>>,
    pub start: usize,
    /// The codes behind each state (one for an extracted machine; the merged ones after minimisation).
    pub state_codes: Vec<Vec<Code>>,
    /// The codes behind each observation class.
    pub obs_codes: Vec<Vec<Code>>,
    /// Code → class, built on first use.
    #[serde(skip)]
    index: std::sync::OnceLock<HashMap<Code, usize>>,
}

impl PartialEq for MooreMachine {
    fn eq(&self, o: &Self) -> bool {
        (&self.actions, &self.next, self.start, &self.state_codes, &self.obs_codes)
            == (&o.actions, &o.next, o.start, &o.state_codes, &o.obs_codes)
    }
}

/// Whether two states may be merged: same action, and no observation both define leads to a pair that may not.
struct Compatibility {
    n: usize,
    /// Pairs marked incompatible by their successors (i·n + j, i < j).
    marked: Vec<u64>,
}

impl Compatibility {
    fn key(&self, i: usize, j: usize) -> usize {
        let (i, j) = if i < j { (i, j) } else { (j, i) };
        i * self.n + j
    }
    fn is_marked(&self, i: usize, j: usize) -> bool {
        let k = self.key(i, j);
        self.marked[k / 64] >> (k % 64) & 1 == 1
    }
    fn mark(&mut self, i: usize, j: usize) {
        let k = self.key(i, j);
        self.marked[k / 64] |= 1 << (k % 64);
    }
}

impl MooreMachine {
    pub fn new(
        actions: Vec<usize>,
        next: Vec<BTreeMap<usize, usize>>,
        start: usize,
        state_codes: Vec<Vec<Code>>,
        obs_codes: Vec<Vec<Code>>,
    ) -> Self {
        MooreMachine { actions, next, start, state_codes, obs_codes, index: Default::default() }
    }

    /// The machine the traces describe: one state per distinct state code, one observation per distinct
    /// observation code, every recorded transition. A state code seen with two actions, or a state and
    /// observation seen leading to two states, is refused (the policy's quantised step is deterministic).
    pub fn from_traces(traces: &[Trace]) -> Result<Self, FsmError> {
        let bad = |m: String| Err(FsmError::Invalid(m));
        if traces.is_empty() {
            return bad("no traces to build a machine from: record at least one episode".into());
        }
        let (mut states, mut obs): (HashMap<Code, usize>, HashMap<Code, usize>) = (HashMap::new(), HashMap::new());
        let mut m = MooreMachine::new(vec![], vec![], 0, vec![], vec![]);
        let mut state_of = |m: &mut MooreMachine, code: &Code, action: usize| -> Result<usize, FsmError> {
            if let Some(&s) = states.get(code) {
                if m.actions[s] != action {
                    return Err(FsmError::Invalid(format!(
                        "state code {code:?} was seen with actions {} and {action}: a Moore state has one action",
                        m.actions[s]
                    )));
                }
                return Ok(s);
            }
            let s = m.actions.len();
            states.insert(code.clone(), s);
            m.actions.push(action);
            m.state_codes.push(vec![code.clone()]);
            m.next.push(BTreeMap::new());
            Ok(s)
        };
        let mut starts = vec![];
        for t in traces {
            let mut s = state_of(&mut m, &t.start, t.start_action)?;
            starts.push(s);
            for step in &t.steps {
                let o = match obs.get(&step.obs) {
                    Some(&o) => o,
                    None => {
                        let o = m.obs_codes.len();
                        obs.insert(step.obs.clone(), o);
                        m.obs_codes.push(vec![step.obs.clone()]);
                        o
                    }
                };
                let n = state_of(&mut m, &step.next, step.action)?;
                match m.next[s].get(&o) {
                    Some(&prev) if prev != n => {
                        return bad(format!(
                            "state {:?} and observation {:?} were seen leading to two states: the traces do not come \
                             from one deterministic machine",
                            m.state_codes[s][0], step.obs
                        ));
                    }
                    _ => {
                        m.next[s].insert(o, n);
                    }
                }
                s = n;
            }
        }
        if starts.iter().any(|&s| s != starts[0]) {
            return bad("the traces start from different states: record them from the same initial state".into());
        }
        m.start = starts[0];
        Ok(m)
    }

    pub fn states(&self) -> usize {
        self.actions.len()
    }

    /// Checks that the machine is whole (a machine read from a file may have been edited or damaged): at least
    /// one state, a start state, codes for every state and class, every transition between known states on a known
    /// class, every action below `actions`, every code of `code_len` values in {−1, 0, 1}.
    pub fn validate(&self, actions: usize, state_code_len: usize, obs_code_len: usize) -> Result<(), String> {
        let n = self.states();
        if n == 0 || self.start >= n {
            return Err(format!("it has {n} states and start state {}", self.start));
        }
        if self.next.len() != n || self.state_codes.len() != n {
            return Err(format!(
                "{n} states but {} transition rows and {} state descriptions",
                self.next.len(),
                self.state_codes.len()
            ));
        }
        if let Some(a) = self.actions.iter().find(|&&a| a >= actions) {
            return Err(format!("a state's action is {a}, but the environment has {actions} actions"));
        }
        for (s, row) in self.next.iter().enumerate() {
            if let Some((o, t)) = row.iter().find(|&(&o, &t)| o >= self.observations() || t >= n) {
                return Err(format!("state s{s} has a transition on o{o} to s{t}, outside the machine"));
            }
        }
        let bad_code = |c: &Code, len: usize| c.len() != len || c.iter().any(|v| !(-1..=1).contains(v));
        if self.state_codes.iter().flatten().any(|c| bad_code(c, state_code_len))
            || self.state_codes.iter().any(Vec::is_empty)
        {
            return Err(format!("a state's code is not {state_code_len} values in {{−1, 0, 1}}"));
        }
        if self.obs_codes.iter().flatten().any(|c| bad_code(c, obs_code_len))
            || self.obs_codes.iter().any(Vec::is_empty)
        {
            return Err(format!("an observation class's code is not {obs_code_len} values in {{−1, 0, 1}}"));
        }
        Ok(())
    }

    pub fn observations(&self) -> usize {
        self.obs_codes.len()
    }

    /// The state reached from `state` on class `obs`, where recorded.
    pub fn next_of(&self, state: usize, obs: usize) -> Option<usize> {
        self.next.get(state)?.get(&obs).copied()
    }

    /// How many transitions are recorded.
    pub fn transitions(&self) -> usize {
        self.next.iter().map(BTreeMap::len).sum()
    }

    /// The actions the machine takes from its start state along `obs` (observation indices): the start state's
    /// action, then one per step; it stops early where a transition is undefined.
    pub fn run(&self, obs: &[usize]) -> Vec<usize> {
        let mut s = self.start;
        let mut out = vec![self.actions[s]];
        for &o in obs {
            match self.next_of(s, o) {
                Some(n) => {
                    s = n;
                    out.push(self.actions[s]);
                }
                None => break,
            }
        }
        out
    }

    /// The observation class of `code`, or the nearest known one by Hamming distance (an observation never seen
    /// when the machine was built — the seed code crashed on these) with its distance.
    pub fn classify(&self, code: &[i8]) -> (usize, usize) {
        let index = self.index.get_or_init(|| {
            let mut index = HashMap::new();
            for (o, codes) in self.obs_codes.iter().enumerate() {
                for c in codes {
                    index.entry(c.clone()).or_insert(o);
                }
            }
            index
        });
        if let Some(&o) = index.get(code) {
            return (o, 0);
        }
        let mut best = (0, usize::MAX);
        for (o, codes) in self.obs_codes.iter().enumerate() {
            for c in codes {
                let d = hamming(c, code);
                if d < best.1 {
                    best = (o, d);
                }
            }
        }
        best
    }

    /// The machine's move from `state` on an observation code: the class of the code (the nearest known one by
    /// Hamming distance when the code was never seen), then its transition; where `state` has no transition on
    /// that class (never recorded), the nearest class by code among those `state` has one for. `None` only for a
    /// state without any transition.
    pub fn transition(&self, state: usize, code: &[i8]) -> Option<Move> {
        let (class, distance) = self.classify(code);
        if let Some(next) = self.next_of(state, class) {
            return Some(Move { next, class, distance, recorded: true });
        }
        let mut best: Option<Move> = None;
        for (&o, &next) in &self.next[state] {
            for c in &self.obs_codes[o] {
                let d = hamming(c, code);
                if best.as_ref().is_none_or(|b| d < b.distance) {
                    best = Some(Move { next, class: o, distance: d, recorded: false });
                }
            }
        }
        best
    }

    /// The smallest machine this procedure finds that reproduces every recorded trace: states merged (compatible
    /// states, then split until closed; for a complete machine, Moore's partition refinement), then observations
    /// merged whose transitions are the same from every state.
    pub fn minimise(&self) -> MooreMachine {
        let groups = self.closed_groups();
        let merged = self.quotient(&groups);
        merged.merge_observations()
    }

    /// Whether every transition is defined.
    pub fn is_complete(&self) -> bool {
        self.next.iter().all(|row| row.len() == self.observations())
    }

    /// Pairs of states that no observation sequence defined for both can tell apart (the greatest such relation):
    /// states with different actions are incompatible, and so is a pair some observation both define sends to an
    /// incompatible pair. Computed backwards from the pairs with different actions through the predecessors
    /// under each observation (the table-filling algorithm), so that its cost follows the transitions recorded,
    /// not states² × observations.
    fn compatible(&self) -> Compatibility {
        let n = self.states();
        let mut c = Compatibility { n, marked: vec![0; (n * n).div_ceil(64)] };
        // pred[t]: observation → the states that go to t on it.
        let mut pred: Vec<BTreeMap<usize, Vec<usize>>> = vec![BTreeMap::new(); n];
        // by_obs[o]: the targets reached on o.
        let mut by_obs: Vec<Vec<usize>> = vec![vec![]; self.observations()];
        for (s, row) in self.next.iter().enumerate() {
            for (&o, &t) in row {
                let preds = pred[t].entry(o).or_default();
                if preds.is_empty() {
                    by_obs[o].push(t);
                }
                preds.push(s);
            }
        }
        let incompatible =
            |c: &Compatibility, i: usize, j: usize| self.actions[i] != self.actions[j] || c.is_marked(i, j);
        let mut queue = vec![];
        let mark_preds = |c: &mut Compatibility, queue: &mut Vec<(usize, usize)>, pa: &[usize], pb: &[usize]| {
            for &p in pa {
                for &q in pb {
                    if p != q && !incompatible(c, p, q) {
                        c.mark(p, q);
                        queue.push((p, q));
                    }
                }
            }
        };
        // The pairs incompatible by action, through every observation that reaches both.
        for (o, targets) in by_obs.iter().enumerate() {
            for (x, &a) in targets.iter().enumerate() {
                for &b in &targets[x + 1..] {
                    if self.actions[a] != self.actions[b] {
                        mark_preds(&mut c, &mut queue, &pred[a][&o], &pred[b][&o]);
                    }
                }
            }
        }
        // Then the pairs marked since, until none is new.
        while let Some((a, b)) = queue.pop() {
            for (o, pa) in &pred[a] {
                if let Some(pb) = pred[b].get(o) {
                    mark_preds(&mut c, &mut queue, pa, pb);
                }
            }
        }
        c
    }

    /// A partition of the states into groups of pairwise-compatible states (greedy cliques, each state joining
    /// the first group of its action it is compatible with), split until closed: every group's defined successors
    /// under each observation lie in one group. For a complete machine, compatibility is equivalence, and this is
    /// the minimal partition.
    fn closed_groups(&self) -> Vec<usize> {
        let n = self.states();
        let c = self.compatible();
        let mut group = vec![usize::MAX; n];
        let mut members: Vec<Vec<usize>> = vec![];
        let mut by_action: HashMap<usize, Vec<usize>> = HashMap::new();
        for (s, (g_of_s, &action)) in group.iter_mut().zip(&self.actions).enumerate() {
            let candidates = by_action.entry(action).or_default();
            match candidates.iter().find(|&&g| members[g].iter().all(|&t| !c.is_marked(s, t))) {
                Some(&g) => {
                    members[g].push(s);
                    *g_of_s = g;
                }
                None => {
                    *g_of_s = members.len();
                    candidates.push(members.len());
                    members.push(vec![s]);
                }
            }
        }
        // Split a group whose members' successors under one observation fall into different groups, by that
        // successor group (members without the transition join the first part), until none does.
        loop {
            let mut split = None;
            'search: for (g, ms) in members.iter().enumerate() {
                let mut seen: HashMap<usize, usize> = HashMap::new();
                for &s in ms {
                    for (&o, &t) in &self.next[s] {
                        if *seen.entry(o).or_insert(group[t]) != group[t] {
                            split = Some((g, o));
                            break 'search;
                        }
                    }
                }
            }
            let Some((g, o)) = split else { break };
            let mut parts: BTreeMap<Option<usize>, Vec<usize>> = BTreeMap::new();
            for &s in &members[g] {
                parts.entry(self.next_of(s, o).map(|t| group[t])).or_default().push(s);
            }
            let mut parts: Vec<Vec<usize>> = parts.into_values().collect();
            // Members without the transition (key None, first) stay with the first defined part.
            if self.next_of(parts[0][0], o).is_none() && parts.len() > 1 {
                let undefined = parts.remove(0);
                parts[0].extend(undefined);
            }
            let first = parts.remove(0);
            for &s in &first {
                group[s] = g;
            }
            members[g] = first;
            for part in parts {
                let id = members.len();
                for &s in &part {
                    group[s] = id;
                }
                members.push(part);
            }
        }
        group
    }

    /// The machine over state groups: each group's action (its members agree) and transitions (its members'
    /// defined ones agree, by closure).
    fn quotient(&self, group: &[usize]) -> MooreMachine {
        // Number the groups in order of first member, so the result does not depend on how groups were split.
        let mut id: BTreeMap<usize, usize> = BTreeMap::new();
        for &g in group {
            let next = id.len();
            id.entry(g).or_insert(next);
        }
        let k = id.len();
        let g = |s: usize| id[&group[s]];
        let mut m = MooreMachine::new(
            vec![0; k],
            vec![BTreeMap::new(); k],
            g(self.start),
            vec![vec![]; k],
            self.obs_codes.clone(),
        );
        for s in 0..self.states() {
            m.actions[g(s)] = self.actions[s];
            m.state_codes[g(s)].extend(self.state_codes[s].iter().cloned());
            for (&o, &t) in &self.next[s] {
                m.next[g(s)].insert(o, g(t));
            }
        }
        m
    }

    /// Observations whose transition column is the same from every state (defined from the same states, to the
    /// same states) become one class (the seed's observation minimisation).
    fn merge_observations(&self) -> MooreMachine {
        let mut columns: Vec<Vec<(usize, usize)>> = vec![vec![]; self.observations()];
        for (s, row) in self.next.iter().enumerate() {
            for (&o, &t) in row {
                columns[o].push((s, t));
            }
        }
        let mut class_of_column: HashMap<&[(usize, usize)], usize> = HashMap::new();
        let mut classes: Vec<Vec<usize>> = vec![];
        let mut class = vec![0; self.observations()];
        for (o, col) in columns.iter().enumerate() {
            let c = *class_of_column.entry(col.as_slice()).or_insert_with(|| {
                classes.push(vec![]);
                classes.len() - 1
            });
            classes[c].push(o);
            class[o] = c;
        }
        let next = self.next.iter().map(|row| row.iter().map(|(&o, &t)| (class[o], t)).collect()).collect();
        let obs_codes = classes.iter().map(|c| c.iter().flat_map(|&o| self.obs_codes[o].clone()).collect()).collect();
        MooreMachine::new(self.actions.clone(), next, self.start, self.state_codes.clone(), obs_codes)
    }
}

fn hamming(a: &[i8], b: &[i8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len())
}
