//! Moore-machine minimisation on machines whose minimal forms are known by hand, and on random machines, where
//! the minimised machine must reproduce every recorded trace.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use xrl_fsm::{FsmError, MooreMachine, Step, Trace};

fn code(i: usize) -> Vec<i8> {
    // Distinct ternary codes of length 4 for small indices.
    (0..4).map(|k| ((i / 3usize.pow(k)) % 3) as i8 - 1).collect()
}

/// A trace of state indices and observation indices through a machine given as (actions, next).
fn trace(actions: &[usize], next: &[Vec<usize>], start: usize, obs: &[usize]) -> Trace {
    let mut s = start;
    let steps = obs
        .iter()
        .map(|&o| {
            s = next[s][o];
            Step { obs: code(o), next: code(s), action: actions[s] }
        })
        .collect();
    Trace { start: code(start), start_action: actions[start], steps }
}

/// The actions a (minimised) machine takes along a recorded trace, its observations classified by code.
fn replay(m: &MooreMachine, t: &Trace) -> Vec<usize> {
    let obs: Vec<usize> = t
        .steps
        .iter()
        .map(|s| {
            let (o, d) = m.classify(&s.obs);
            assert_eq!(d, 0, "every recorded observation is known");
            o
        })
        .collect();
    m.run(&obs)
}

fn recorded(t: &Trace) -> Vec<usize> {
    std::iter::once(t.start_action).chain(t.steps.iter().map(|s| s.action)).collect()
}

#[test]
fn a_partial_machine_merges_states_no_trace_tells_apart() {
    // A and B act alike (0) and are never seen under the same observation: one state. C acts 1.
    // A -x-> C, C -x-> A, C -y-> B, B -y-> C.
    let (a, b, c) = (0, 1, 2);
    let (x, y) = (0, 1);
    let actions = [0, 0, 1];
    let next = vec![vec![c, c], vec![c, c], vec![a, b]];
    let traces = [trace(&actions, &next, a, &[x, x, y, y, x])];
    let m = MooreMachine::from_traces(&traces).unwrap();
    assert_eq!((m.states(), m.observations()), (3, 2));
    assert!(!m.is_complete(), "A has no y, B no x");
    let min = m.minimise();
    assert_eq!(min.states(), 2);
    assert_eq!(min.actions[min.start], 0);
    assert_eq!(min.state_codes.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1], "A and B merged");
    // With A and B one state, both observations lead everywhere alike (to C, and from C back to {A, B}): one class.
    assert_eq!(min.observations(), 1);
    for t in &traces {
        assert_eq!(replay(&min, t), recorded(t));
    }
}

#[test]
fn a_complete_machine_minimises_to_its_moore_quotient_and_merges_alike_observations() {
    // States 0..4: 1 and 3 are equivalent (action 1, and their successors' classes agree); 0 and 2 act alike but
    // observation 0 tells them apart (0 goes to an action-1 state, 2 to an action-0 one); observations 1 and 2
    // lead everywhere alike.
    let actions = [0, 1, 0, 1];
    let next = vec![vec![1, 2, 2], vec![0, 3, 3], vec![2, 0, 0], vec![0, 1, 1]];
    let mut traces = vec![];
    // Every sequence of length 4 over the three observations covers every transition from the start.
    for i in 0..81usize {
        let obs: Vec<usize> = (0..4).map(|k| (i / 3usize.pow(k)) % 3).collect();
        traces.push(trace(&actions, &next, 0, &obs));
    }
    let m = MooreMachine::from_traces(&traces).unwrap();
    assert!(m.is_complete());
    assert_eq!(m.states(), 4);
    let min = m.minimise();
    assert_eq!(min.states(), 3, "1 and 3 merged, 0 and 2 told apart by their successors");
    assert_eq!(min.observations(), 2, "observations 1 and 2 merged");
    for t in &traces {
        assert_eq!(replay(&min, t), recorded(t));
    }
    // Minimising again changes nothing.
    assert_eq!(min.minimise(), min);
}

#[test]
fn on_random_machines_the_minimised_machine_reproduces_every_trace() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let mut merged_some = 0;
    for round in 0..300 {
        let (n, k, a) = (rng.random_range(2..9), rng.random_range(1..4), rng.random_range(1..4));
        let actions: Vec<usize> = (0..n).map(|_| rng.random_range(0..a)).collect();
        let next: Vec<Vec<usize>> = (0..n).map(|_| (0..k).map(|_| rng.random_range(0..n)).collect()).collect();
        let traces: Vec<Trace> = (0..rng.random_range(1..6))
            .map(|_| {
                let len = rng.random_range(0..25);
                let obs: Vec<usize> = (0..len).map(|_| rng.random_range(0..k)).collect();
                trace(&actions, &next, 0, &obs)
            })
            .collect();
        let m = MooreMachine::from_traces(&traces).unwrap();
        let min = m.minimise();
        assert!(min.states() <= m.states() && min.observations() <= m.observations(), "round {round}");
        merged_some += usize::from(min.states() < m.states());
        for t in &traces {
            assert_eq!(replay(&min, t), recorded(t), "round {round}: {m:?} → {min:?}");
        }
        // Every state's action is the action of each code merged into it.
        for (s, codes) in min.state_codes.iter().enumerate() {
            for c in codes {
                let original = m.state_codes.iter().position(|cs| cs[0] == *c).unwrap();
                assert_eq!(m.actions[original], min.actions[s]);
            }
        }
    }
    assert!(merged_some > 100, "minimisation merged states in {merged_some} of 300 machines");
}

#[test]
fn traces_that_no_moore_machine_makes_are_refused() {
    let s = |obs: usize, next: usize, action: usize| Step { obs: code(obs), next: code(next), action };
    let t = |steps: Vec<Step>| Trace { start: code(0), start_action: 0, steps };
    let e = MooreMachine::from_traces(&[t(vec![s(0, 0, 1)])]).unwrap_err();
    assert!(matches!(&e, FsmError::Invalid(m) if m.contains("seen with actions 0 and 1")), "{e}");
    let e = MooreMachine::from_traces(&[t(vec![s(0, 1, 0), s(0, 2, 0)]), t(vec![s(0, 2, 0)])]).unwrap_err();
    assert!(e.to_string().contains("leading to two states"), "{e}");
    let other = Trace { start: code(5), start_action: 0, steps: vec![] };
    assert!(MooreMachine::from_traces(&[t(vec![]), other]).unwrap_err().to_string().contains("different states"));
    assert!(MooreMachine::from_traces(&[]).unwrap_err().to_string().contains("no traces"));
}

#[test]
fn an_unseen_observation_maps_to_the_nearest_known_code() {
    let traces = [trace(&[0, 1], &[vec![1, 0], vec![0, 1]], 0, &[0, 1, 0])];
    let m = MooreMachine::from_traces(&traces).unwrap();
    assert_eq!(m.classify(&code(0)), (0, 0));
    // code(0) = [-1,-1,-1,-1], code(1) = [0,-1,-1,-1]; [1,1,-1,-1] differs from code(0) in 2 places, code(1) in 2,
    // so the first known wins; [0,-1,-1,0] is 1 from code(1).
    assert_eq!(m.classify(&[0, -1, -1, 0]), (1, 1));
    assert_eq!(m.classify(&[1, 1, -1, -1]).1, 2);
}

/// On complete machines the result is the minimal machine: as many states as there are classes of states that no
/// observation sequence (of length up to the number of states, which suffices) tells apart, found by brute force.
#[test]
fn complete_machines_minimise_to_their_number_of_equivalence_classes() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    for round in 0..200 {
        let (n, k, a) = (rng.random_range(1..7), rng.random_range(1..3), rng.random_range(1..3));
        let actions: Vec<usize> = (0..n).map(|_| rng.random_range(0..a)).collect();
        let next: Vec<Vec<usize>> = (0..n).map(|_| (0..k).map(|_| rng.random_range(0..n)).collect()).collect();
        let m = MooreMachine::new(
            actions.clone(),
            next.iter().map(|r| r.iter().copied().enumerate().collect()).collect(),
            0,
            (0..n).map(|s| vec![code(s)]).collect(),
            (0..k).map(|o| vec![code(o)]).collect(),
        );
        let outputs = |s: usize, seq: &[usize]| -> Vec<usize> {
            let mut s = s;
            let mut out = vec![actions[s]];
            for &o in seq {
                s = next[s][o];
                out.push(actions[s]);
            }
            out
        };
        let sequences: Vec<Vec<usize>> = (0..=n)
            .flat_map(|len| (0..k.pow(len as u32)).map(move |i| (0..len).map(|j| (i / k.pow(j as u32)) % k).collect()))
            .collect();
        let signature = |s: usize| sequences.iter().map(|q| outputs(s, q)).collect::<Vec<_>>();
        let mut classes: Vec<Vec<Vec<usize>>> = vec![];
        for s in 0..n {
            let sig = signature(s);
            if !classes.contains(&sig) {
                classes.push(sig);
            }
        }
        assert_eq!(m.minimise().states(), classes.len(), "round {round}: {m:?}");
    }
}
