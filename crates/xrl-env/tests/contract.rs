//! The environment contract: errors, episode ends, determinism, state documents, wrappers, vector env.

use serde_json::{Value, json};
use xrl_env::vector::{Autoreset, VecEnv};
use xrl_env::wrappers::{ClipReward, EpisodeStats, FrameStack, TimeLimit};
use xrl_env::{Action, Env, EnvError, MakeOptions, make, make_with};

const NOOP: Action = Action::Discrete(0);
const LEFT: Action = Action::Discrete(1);
const UP: Action = Action::Discrete(2);
const RIGHT: Action = Action::Discrete(3);

fn no_sticky() -> MakeOptions {
    MakeOptions { sticky_action_prob: 0.0, ..MakeOptions::default() }
}

fn cell(obs: &[f32], c: usize, y: usize, x: usize) -> bool {
    obs[c * 100 + y * 10 + x] > 0.5
}

#[test]
fn unknown_id_lists_the_known_ids() {
    let err = make("MinAtar/Pong-v0").err().unwrap().to_string();
    assert!(err.contains("unknown environment id `MinAtar/Pong-v0`"), "{err}");
    for id in xrl_env::ids() {
        assert!(err.contains(&id), "{err} should list {id}");
    }
}

#[test]
fn bad_actions_are_errors_that_say_what_is_allowed() {
    let mut env = make("MinAtar/Breakout-v1").unwrap();
    let err = env.step(&Action::Discrete(3)).unwrap_err().to_string();
    assert!(err.contains("out of range") && err.contains("3 actions"), "{err}");
    let err = env.step(&Action::Continuous(vec![0.5])).unwrap_err().to_string();
    assert!(err.contains("discrete"), "{err}");
    let mut pendulum = make("Pendulum-v1").unwrap();
    assert!(matches!(pendulum.step(&Action::Continuous(vec![1.0, 2.0])), Err(EnvError::ActionShape { .. })));
    assert!(matches!(pendulum.step(&Action::Continuous(vec![f32::NAN])), Err(EnvError::ActionNotFinite { .. })));
    assert!(matches!(pendulum.step(&NOOP), Err(EnvError::ActionKind { .. })));
    // A refused action changes nothing: the episode goes on.
    assert!(pendulum.step(&Action::Continuous(vec![1.0])).is_ok());
}

#[test]
fn stepping_a_finished_episode_is_refused_until_reset() {
    // Termination (MinAtar) …
    let mut env = make("MinAtar/Breakout-v0").unwrap();
    env.reset(Some(1));
    while !env.step(&NOOP).unwrap().terminated {}
    assert!(matches!(env.step(&NOOP), Err(EnvError::NeedsReset { .. })));
    env.reset(None);
    assert!(env.step(&NOOP).is_ok());
    // … and truncation (Pendulum never terminates; the time limit truncates at step 200).
    let mut env = make("Pendulum-v1").unwrap();
    env.reset(Some(1));
    let a = Action::Continuous(vec![0.0]);
    for t in 1..=200 {
        let s = env.step(&a).unwrap();
        assert_eq!(s.truncated, t == 200, "step {t}");
        assert!(!s.terminated);
    }
    let err = env.step(&a).unwrap_err().to_string();
    assert!(err.contains("call reset()"), "{err}");
}

#[test]
fn equal_seeds_give_equal_episodes_for_every_id() {
    // Atari ids are covered step for step against ale-py in tests/atari.rs (NoFrameskip-v4 games are
    // deterministic whatever the seed, as in ale-py).
    for id in xrl_env::ids().into_iter().filter(|id| !xrl_env::is_atari_id(id)) {
        let trace = |seed: u64| {
            let mut env = make(&id).unwrap();
            // History before the seeded reset must not matter.
            env.reset(Some(seed + 100));
            let mut out = env.reset(Some(seed)).to_vec();
            let n = env.spec().action.n().unwrap_or(0);
            for t in 0..300usize {
                let a =
                    if n > 0 { Action::Discrete(t * 7 % n) } else { Action::Continuous(vec![(t % 5) as f32 - 2.0]) };
                let s = env.step(&a).unwrap();
                out.extend_from_slice(s.obs);
                out.push(s.reward as f32);
                if s.done() {
                    env.reset(None);
                }
            }
            out
        };
        assert_eq!(trace(5), trace(5), "{id}");
        assert_ne!(trace(5), trace(6), "{id}: the seed should matter");
    }
}

#[test]
fn minimal_action_sets_map_to_the_full_set() {
    // Breakout-v1's actions are [no-op, left, right]: index 2 moves the paddle right.
    let mut env = make_with("MinAtar/Breakout-v1", &no_sticky()).unwrap();
    env.reset(Some(0));
    let before = env.state()["game"]["paddle_x"].as_i64().unwrap();
    env.step(&Action::Discrete(2)).unwrap();
    assert_eq!(env.state()["game"]["paddle_x"].as_i64().unwrap(), before + 1);
}

#[test]
fn state_documents_round_trip_for_every_minatar_game() {
    for name in ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"] {
        let id = format!("MinAtar/{name}-v0");
        let mut env = make_with(&id, &no_sticky()).unwrap();
        env.reset(Some(3));
        for t in 0..150 {
            if env.step(&Action::Discrete(t % 6)).unwrap().done() {
                env.reset(None);
            }
        }
        let doc = env.state();
        let mut other = make_with(&id, &no_sticky()).unwrap();
        other.set_state(&doc).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(other.state(), doc, "{id}: the document survives a round trip");
        assert_eq!(other.obs(), env.obs(), "{id}: the observation follows the state");
    }
}

#[test]
fn moving_the_ball_moves_the_observation_and_the_future() {
    let mut env = make_with("MinAtar/Breakout-v0", &no_sticky()).unwrap();
    env.reset(Some(0));
    let mut doc = env.state();
    doc["game"]["ball_x"] = json!(6);
    doc["game"]["ball_y"] = json!(7);
    doc["game"]["last_x"] = json!(5);
    doc["game"]["last_y"] = json!(6);
    doc["game"]["ball_dir"] = json!(2); // down-right
    doc["game"]["paddle_x"] = json!(8);
    env.set_state(&doc).unwrap();
    assert!(cell(env.obs(), 1, 7, 6) && cell(env.obs(), 2, 6, 5) && cell(env.obs(), 0, 9, 8));
    // Next step the ball reaches (8, 8); the one after it lands on the paddle and bounces back up.
    env.step(&NOOP).unwrap();
    assert!(cell(env.obs(), 1, 8, 7));
    let s = env.step(&NOOP).unwrap();
    assert!(!s.terminated, "the ball lands on the paddle");
    assert_eq!(env.state()["game"]["ball_dir"], json!(0), "reflected back up-left");
}

#[test]
fn invalid_state_documents_name_the_field() {
    let mut env = make("MinAtar/Breakout-v0").unwrap();
    let good = env.state();
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut d = good.clone();
                d["game"]["ball_x"] = json!(12);
                d
            },
            "game.ball_x",
        ),
        (
            {
                let mut d = good.clone();
                d["game"]["ball_dir"] = json!("down");
                d
            },
            "game.ball_dir",
        ),
        (
            {
                let mut d = good.clone();
                d["game"].as_object_mut().unwrap().remove("bricks");
                d
            },
            "bricks",
        ),
        (
            {
                let mut d = good.clone();
                d["game"]["bricks"] = json!([[1, 2], [10, 0]]);
                d
            },
            "game.bricks",
        ),
        (
            {
                let mut d = good.clone();
                d["game"]["colour"] = json!(1);
                d
            },
            "colour",
        ),
        (
            {
                let mut d = good.clone();
                d["last_action"] = json!(9);
                d
            },
            "last_action",
        ),
        (json!([1, 2, 3]), "invalid state document"),
    ];
    for (doc, field) in cases {
        let err = env.set_state(&doc).unwrap_err().to_string();
        assert!(err.contains(field), "error `{err}` should name `{field}`");
    }
    // A refused document leaves the game untouched.
    assert_eq!(env.state(), good);
    let mut cp = make("CartPole-v1").unwrap();
    let err = cp.set_state(&json!({"x": 0.0, "x_dot": 0.0, "theta": "up"})).unwrap_err().to_string();
    assert!(err.contains("theta"), "{err}");
    let err = cp.set_state(&json!({"x": 0.0, "x_dot": 0.0, "theta": 0.0})).unwrap_err().to_string();
    assert!(err.contains("missing field `theta_dot`"), "{err}");
}

#[test]
fn classic_state_documents_set_the_physics() {
    let mut env = make("CartPole-v1").unwrap();
    env.set_state(&json!({"x": 0.0, "x_dot": 0.0, "theta": 0.2, "theta_dot": 1.0})).unwrap();
    assert_eq!(env.obs()[2], 0.2);
    // The pole is past 12° after one step: terminated, and the reward of the terminating step is still +1.
    let s = env.step(&NOOP).unwrap();
    assert!(s.terminated && s.reward == 1.0);
}

#[test]
fn seaquest_full_load_bonus_and_the_reference_quirk() {
    let mut env = make_with("MinAtar/Seaquest-v0", &MakeOptions { difficulty_ramping: true, ..no_sticky() }).unwrap();
    env.reset(Some(0));
    let mut doc = env.state();
    let g = &mut doc["game"];
    g["sub_y"] = json!(1);
    g["surface"] = json!(false);
    g["divers_carried"] = json!(6);
    g["oxygen"] = json!(120);
    env.set_state(&doc).unwrap();
    assert!((3..9).all(|x| cell(env.obs(), 8, 9, x)), "six divers on the gauge");
    let s = env.step(&UP).unwrap();
    // Surfacing with six divers: reward = oxygen·10 // 200 after this step's use of oxygen (none at the surface).
    assert_eq!(s.reward, (120 * 10 / 200) as f64);
    assert!(!s.terminated);
    let g = &env.state()["game"];
    assert_eq!(g["oxygen"], json!(200));
    assert_eq!(g["divers_carried"], json!(-1), "the reference leaves −1 after emptying a full load");
    assert_eq!(g["ramp_index"], json!(1));
    assert_eq!(g["enemy_spawn_speed"], json!(19));
}

#[test]
fn seaquest_surfacing_empty_handed_ends_the_episode() {
    let mut env = make_with("MinAtar/Seaquest-v0", &no_sticky()).unwrap();
    env.reset(Some(0));
    let mut doc = env.state();
    doc["game"]["sub_y"] = json!(1);
    doc["game"]["surface"] = json!(false);
    env.set_state(&doc).unwrap();
    assert!(env.step(&UP).unwrap().terminated);
}

#[test]
fn space_invaders_respawns_a_faster_block_when_cleared() {
    let mut env = make_with("MinAtar/SpaceInvaders-v0", &no_sticky()).unwrap();
    env.reset(Some(0));
    let mut doc = env.state();
    let g = &mut doc["game"];
    g["aliens"] = json!([[4, 5]]);
    g["bullets"] = json!([[5, 5]]); // moves up into the alien this step
    g["enemy_bullets"] = json!([]);
    g["alien_move_timer"] = json!(3);
    g["alien_shot_timer"] = json!(3);
    env.set_state(&doc).unwrap();
    let s = env.step(&NOOP).unwrap();
    assert_eq!(s.reward, 1.0);
    let g = &env.state()["game"];
    assert_eq!(g["aliens"].as_array().unwrap().len(), 24, "a new 4×6 block");
    assert_eq!(g["enemy_move_interval"], json!(11));
    assert_eq!(g["ramp_index"], json!(1));
}

#[test]
fn sticky_actions_repeat_the_executed_action_and_persist_across_unseeded_resets() {
    let always = MakeOptions { sticky_action_prob: 1.0, ..MakeOptions::default() };
    let mut env = make_with("MinAtar/Breakout-v0", &always).unwrap();
    env.reset(Some(0));
    let mut doc = env.state();
    doc["last_action"] = json!(1); // left
    env.set_state(&doc).unwrap();
    let x0 = env.state()["game"]["paddle_x"].as_i64().unwrap();
    env.step(&RIGHT).unwrap();
    assert_eq!(env.state()["game"]["paddle_x"].as_i64().unwrap(), x0 - 1, "the sticky left wins over right");
    env.reset(None);
    assert_eq!(env.state()["last_action"], json!(1), "kept across an unseeded reset, as the reference");
    env.reset(Some(0));
    assert_eq!(env.state()["last_action"], json!(0), "a seeded reset restores the just-built state");
    let err = make_with("MinAtar/Breakout-v0", &MakeOptions { sticky_action_prob: 1.5, ..MakeOptions::default() });
    assert!(err.err().unwrap().to_string().contains("sticky"));
}

#[test]
fn time_limit_truncates_and_keeps_terminations() {
    let mut env = TimeLimit::new(make_with("MinAtar/Freeway-v0", &no_sticky()).unwrap(), 5);
    env.reset(Some(0));
    let flags: Vec<(bool, bool)> = (0..5)
        .map(|_| {
            let s = env.step(&NOOP).unwrap();
            (s.terminated, s.truncated)
        })
        .collect();
    assert_eq!(flags, vec![(false, false), (false, false), (false, false), (false, false), (false, true)]);
    assert!(env.step(&NOOP).is_err());
    env.reset(None);
    assert_eq!(env.elapsed(), 0);
}

#[test]
fn frame_stack_keeps_the_last_k_frames_oldest_first() {
    let inner = make_with("MinAtar/Breakout-v0", &no_sticky()).unwrap();
    let mut env = FrameStack::new(inner, 3).unwrap();
    assert_eq!(env.spec().observation.shape(), &[3, 4, 10, 10]);
    let first = env.reset(Some(0)).to_vec();
    assert_eq!(first[..400], first[400..800]);
    assert_eq!(first[..400], first[800..]);
    // An unwrapped twin gives the frames independently; the stack starts padded with the first one.
    let mut twin = make_with("MinAtar/Breakout-v0", &no_sticky()).unwrap();
    let mut history = vec![twin.reset(Some(0)).to_vec(); 3];
    for a in [LEFT, LEFT, RIGHT, NOOP, LEFT] {
        history.push(twin.step(&a).unwrap().obs.to_vec());
        let stacked = env.step(&a).unwrap().obs.to_vec();
        assert_eq!(stacked, history[history.len() - 3..].concat(), "after {} steps", history.len() - 3);
    }
    assert!(FrameStack::new(make("CartPole-v1").unwrap(), 0).is_err());
}

#[test]
fn reward_clipping_and_episode_statistics() {
    let inner = make_with("MinAtar/Breakout-v0", &no_sticky()).unwrap();
    let mut stats = EpisodeStats::new(Box::new(ClipReward::new(inner, -0.5, 0.5).unwrap()));
    stats.reset(Some(2));
    let mut total = 0.0;
    let mut steps = 0;
    loop {
        let s = stats.step(&NOOP).unwrap();
        assert!(s.reward.abs() <= 0.5);
        total += s.reward;
        steps += 1;
        if s.done() {
            break;
        }
    }
    let eps = stats.drain();
    assert_eq!(eps.len(), 1);
    assert_eq!((eps[0].ret, eps[0].length), (total, steps));
    assert!(stats.drain().is_empty());
    assert!(ClipReward::new(make("CartPole-v1").unwrap(), 1.0, -1.0).is_err());
}

#[test]
fn vector_env_seeds_copies_and_resets_them_on_the_same_step() {
    let n = 4;
    let mut venv = VecEnv::new(n, Autoreset::SameStep, |_| make("CartPole-v1")).unwrap();
    let obs = venv.reset(Some(10)).to_vec();
    // Copy i is seeded with 10 + i.
    for i in 0..n {
        let mut single = make("CartPole-v1").unwrap();
        assert_eq!(&obs[i * 4..(i + 1) * 4], single.reset(Some(10 + i as u64)));
    }
    let mut singles: Vec<_> = (0..n)
        .map(|i| {
            let mut e = make("CartPole-v1").unwrap();
            e.reset(Some(10 + i as u64));
            e
        })
        .collect();
    let mut finished = 0;
    for _ in 0..200 {
        venv.step(&vec![Action::Discrete(1); n]).unwrap();
        for (i, e) in singles.iter_mut().enumerate() {
            let s = e.step(&Action::Discrete(1)).unwrap();
            let (last, done) = (s.obs.to_vec(), s.done());
            assert_eq!(venv.terminated()[i], done);
            if done {
                finished += 1;
                assert_eq!(venv.final_obs()[i].as_deref(), Some(&last[..]), "final observation kept");
                e.reset(None);
            } else {
                assert!(venv.final_obs()[i].is_none());
            }
            assert_eq!(&venv.obs()[i * 4..(i + 1) * 4], e.obs(), "copy {i}");
        }
    }
    assert!(finished >= n, "always pushing right ends episodes quickly");
    assert!(venv.step(&[NOOP]).unwrap_err().to_string().contains("1 actions given for 4"));
}

#[test]
fn vector_env_next_step_mode_resets_on_the_following_step() {
    let mut venv = VecEnv::new(1, Autoreset::NextStep, |_| make("CartPole-v1")).unwrap();
    venv.reset(Some(0));
    let mut single = make("CartPole-v1").unwrap();
    single.reset(Some(0));
    loop {
        venv.step(&[Action::Discrete(1)]).unwrap();
        let s = single.step(&Action::Discrete(1)).unwrap();
        assert_eq!(venv.obs(), s.obs, "the ending step returns the last observation");
        if s.terminated {
            break;
        }
    }
    venv.step(&[Action::Discrete(0)]).unwrap();
    assert_eq!((venv.rewards()[0], venv.terminated()[0]), (0.0, false));
    assert_eq!(venv.obs(), single.reset(None), "then the first observation of the next episode");
}
