//! Counterfactual object interventions (in the spirit of Atrey et al. 2020): move, remove or shift each object of
//! a MinAtar frame through the game's state document, and ask whether the map's mass on an object predicts how much
//! the agent cares about it.
//!
//! Every MinAtar game has a list ([`interventions`]), written from its state struct in `xrl-env` so that each edited
//! document is one `set_state` accepts: Breakout moves the ball and the paddle and removes brick rows; Space
//! Invaders moves the cannon and the alien block and removes aliens and bullets; Asterix moves the player and
//! removes or moves each enemy and gold piece; Freeway moves the chicken and each car (cars cannot be removed: the
//! game has one in each of its eight lanes); Seaquest moves the sub and removes each fish, enemy sub, diver and
//! bullet.
//!
//! For every frame and every intervention of [`interventions`], the agent's response is the change of its scores,
//! ‖s(x′) − s(x)‖₂ (Q values or logits), and whether its greedy action flips; the map's claim is its mean |saliency| on
//! the object's cells in the original frame, relative to the frame's mean (1: no more than anywhere else). The object's cells are read off the observations (the
//! cells that differ between x and x′), so no game needs a hand-written object mask. Per object kind the report
//! gives the Spearman correlation of mass with effect and its two-sided p-value (Student's t with n − 2 degrees of
//! freedom), the least-squares slope, and the flip rate; for moves, whether the map of the moved frame follows the
//! object (more mass on its new cells than on its old ones).

use super::{Spread, Subject, cell_maps};
use crate::{Attribution, ExplainError, Inputs, Method, Target};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// One edit of a state document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intervention {
    /// What is edited, e.g. `ball`, `brick row 2`, `alien (1, 4)`, `gold (3, 7)` (objects at a cell: row, column).
    pub object: String,
    /// The object's kind, the unit the report correlates over: `ball`, `paddle`, `brick-row` (Breakout); `cannon`,
    /// `alien`, `alien-block`, `bullet`, `enemy-bullet` (Space Invaders); `player`, `enemy`, `gold` (Asterix);
    /// `chicken`, `car` (Freeway); `sub`, `fish`, `enemy-sub`, `diver`, `bullet`, `enemy-bullet` (Seaquest).
    pub kind: String,
    /// `move -2`, `move +2`, `remove`.
    pub edit: String,
    #[serde(skip)]
    pub doc: Value,
}

fn cells_of(v: &Value) -> Vec<[i64; 2]> {
    v.as_array()
        .map(|a| a.iter().filter_map(|c| Some([c.get(0)?.as_i64()?, c.get(1)?.as_i64()?])).collect())
        .unwrap_or_default()
}

fn to_cells(c: &[[i64; 2]]) -> Value {
    Value::from(c.iter().map(|[y, x]| Value::from(vec![*y, *x])).collect::<Vec<_>>())
}

/// The interventions of one frame of a MinAtar game, from its state document (`env.state()`); ids outside MinAtar
/// are an error. Moves stay where the game's rules can put the object (within the grid, the chicken off its goal
/// row, cars around their ring), so that every edited document is a state the game accepts.
pub fn interventions(env_id: &str, doc: &Value) -> Result<Vec<Intervention>, ExplainError> {
    let game = &doc["game"];
    let mut out = vec![];
    let mut push = |object: String, kind: &str, edit: &str, f: &dyn Fn(&mut Value)| {
        let mut d = doc.clone();
        f(&mut d["game"]);
        out.push(Intervention { object, kind: kind.into(), edit: edit.into(), doc: d });
    };
    let int = |k: &str| game[k].as_i64().unwrap_or(-1);
    if env_id.starts_with("MinAtar/Breakout") {
        for dx in [-2i64, 2] {
            let (bx, lx) = (int("ball_x") + dx, int("last_x") + dx);
            if (0..10).contains(&bx) && (0..10).contains(&lx) {
                push("ball".into(), "ball", &format!("move {dx:+}"), &|g| {
                    g["ball_x"] = bx.into();
                    g["last_x"] = lx.into();
                });
            }
            let px = int("paddle_x") + dx;
            if (0..10).contains(&px) {
                push("paddle".into(), "paddle", &format!("move {dx:+}"), &|g| g["paddle_x"] = px.into());
            }
        }
        let bricks = cells_of(&game["bricks"]);
        for row in 1..=3 {
            if bricks.iter().any(|c| c[0] == row) {
                let kept: Vec<[i64; 2]> = bricks.iter().copied().filter(|c| c[0] != row).collect();
                push(format!("brick row {row}"), "brick-row", "remove", &|g| g["bricks"] = to_cells(&kept));
            }
        }
    } else if env_id.starts_with("MinAtar/SpaceInvaders") {
        for dx in [-2i64, 2] {
            let cx = int("cannon_x") + dx;
            if (0..10).contains(&cx) {
                push("cannon".into(), "cannon", &format!("move {dx:+}"), &|g| g["cannon_x"] = cx.into());
            }
        }
        let aliens = cells_of(&game["aliens"]);
        for a in &aliens {
            let kept: Vec<[i64; 2]> = aliens.iter().copied().filter(|c| c != a).collect();
            push(format!("alien ({}, {})", a[0], a[1]), "alien", "remove", &|g| g["aliens"] = to_cells(&kept));
        }
        for dx in [-1i64, 1] {
            let moved: Vec<[i64; 2]> = aliens.iter().map(|[y, x]| [*y, x + dx]).collect();
            if !aliens.is_empty() && moved.iter().all(|c| (0..10).contains(&c[1])) {
                push("alien block".into(), "alien-block", &format!("move {dx:+}"), &|g| g["aliens"] = to_cells(&moved));
            }
        }
        for (key, kind) in [("bullets", "bullet"), ("enemy_bullets", "enemy-bullet")] {
            let shots = cells_of(&game[key]);
            for s in &shots {
                let kept: Vec<[i64; 2]> = shots.iter().copied().filter(|c| c != s).collect();
                push(format!("{kind} ({}, {})", s[0], s[1]), kind, "remove", &|g| g[key] = to_cells(&kept));
            }
        }
    } else if env_id.starts_with("MinAtar/Asterix") {
        for dx in [-2i64, 2] {
            if let Some(px) = game["player_x"].as_i64().map(|x| x + dx).filter(|x| (0..10).contains(x)) {
                push("player".into(), "player", &format!("move {dx:+}"), &|g| g["player_x"] = px.into());
            }
        }
        // Slot i is row i + 1, one entity a row; a removed one is the empty slot (`null`) the game leaves itself.
        let slots = game["entities"].as_array().map(Vec::as_slice).unwrap_or_default();
        for (i, e) in slots.iter().enumerate() {
            let Some(x) = e.get("x").and_then(Value::as_i64) else { continue };
            let kind = if e.get("gold").and_then(Value::as_bool).unwrap_or(false) { "gold" } else { "enemy" };
            let object = format!("{kind} ({}, {x})", i + 1);
            push(object.clone(), kind, "remove", &|g| g["entities"][i] = Value::Null);
            for dx in [-2i64, 2] {
                // Within the grid: the game removes an entity that leaves it, so a moved one must stay on it.
                if (0..10).contains(&(x + dx)) {
                    push(object.clone(), kind, &format!("move {dx:+}"), &|g| g["entities"][i]["x"] = (x + dx).into());
                }
            }
        }
    } else if env_id.starts_with("MinAtar/Freeway") {
        // Rows 1..=9 only: the chicken is sent back to row 9 in the very step it reaches row 0, so no frame the agent
        // sees has it there, and a move onto the goal row would be a frame from outside the game.
        for dy in [-1i64, 1] {
            if let Some(cy) = game["chicken_y"].as_i64().map(|y| y + dy).filter(|y| (1..10).contains(y)) {
                push("chicken".into(), "chicken", &format!("move {dy:+}"), &|g| g["chicken_y"] = cy.into());
            }
        }
        // Cars are moved, never removed: the game has exactly eight, one a lane (a fixed-size array), and no empty
        // lane to leave. They wrap around the road (the game steps them modulo 10), so every shift of ±2 is a
        // position the game itself produces, kept in 0..=9 the same way.
        let cars = game["cars"].as_array().map(Vec::as_slice).unwrap_or_default();
        for (i, c) in cars.iter().enumerate() {
            let Some(x) = c.get("x").and_then(Value::as_i64) else { continue };
            for dx in [-2i64, 2] {
                let nx = (x + dx).rem_euclid(10);
                push(format!("car ({}, {x})", i + 1), "car", &format!("move {dx:+}"), &|g| {
                    g["cars"][i]["x"] = nx.into()
                });
            }
        }
    } else if env_id.starts_with("MinAtar/Seaquest") {
        for dx in [-2i64, 2] {
            if let Some(sx) = game["sub_x"].as_i64().map(|x| x + dx).filter(|x| (0..10).contains(x)) {
                push("sub".into(), "sub", &format!("move {dx:+}"), &|g| g["sub_x"] = sx.into());
            }
        }
        // Removing an element of a list leaves a valid game: `validate` only asks enemy subs (and no one else) for a
        // shot timer, and the elements that stay keep theirs.
        for (key, kind) in [
            ("fish", "fish"),
            ("enemy_subs", "enemy-sub"),
            ("divers", "diver"),
            ("bullets", "bullet"),
            ("enemy_bullets", "enemy-bullet"),
        ] {
            let list = game[key].as_array().map(Vec::as_slice).unwrap_or_default();
            for (k, m) in list.iter().enumerate() {
                let (Some(x), Some(y)) = (m.get("x").and_then(Value::as_i64), m.get("y").and_then(Value::as_i64))
                else {
                    continue;
                };
                let kept: Vec<Value> =
                    list.iter().enumerate().filter(|&(j, _)| j != k).map(|(_, v)| v.clone()).collect();
                push(format!("{kind} ({y}, {x})"), kind, "remove", &|g| g[key] = Value::from(kept.clone()));
            }
        }
    } else {
        return Err(ExplainError::Invalid(format!(
            "object interventions are defined for the MinAtar games (MinAtar/<Game>-v0 and -v1), not {env_id}"
        )));
    }
    Ok(out)
}

/// One intervention's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// Index into the subject's frames.
    pub frame: usize,
    pub object: String,
    pub kind: String,
    pub edit: String,
    /// The map's mean |saliency| on the object's cells in the original frame over its mean on all cells.
    pub mass: f64,
    /// ‖s(x′) − s(x)‖₂ over the agent's scores.
    pub effect: f64,
    pub flipped: bool,
    /// Moves: the moved frame's map density (as `mass`) on the object's new cells minus that on its old cells;
    /// positive when the map follows the object.
    pub follows: Option<f64>,
}

/// Mass against effect over all interventions of one kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindSummary {
    pub kind: String,
    pub count: usize,
    pub spearman: f64,
    /// Two-sided p-value of the Spearman correlation (t approximation); 1 with fewer than 3 interventions.
    pub p_value: f64,
    /// Least-squares slope of effect on mass.
    pub slope: f64,
    pub flip_rate: f64,
    /// Moves: the share of moves whose map followed the object, and the mean difference.
    pub follow_rate: Option<f64>,
    pub follow: Option<Spread>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CounterfactualResult {
    pub effects: Vec<Effect>,
    pub kinds: Vec<KindSummary>,
    /// Over every intervention.
    pub all: KindSummary,
    /// Interventions the game refused (a state the rules forbid): skipped, counted.
    pub skipped: usize,
}

/// Spearman's ρ of `a` and `b` and its two-sided p-value (t = ρ√((n−2)/(1−ρ²)), Student's t with n − 2 degrees of
/// freedom, as scipy.stats.spearmanr).
pub fn spearman_p(a: &[f64], b: &[f64]) -> (f64, f64) {
    let n = a.len();
    let rho = super::similarity::spearman_f64(a, b);
    if n < 3 {
        return (rho, 1.0);
    }
    let df = (n - 2) as f64;
    if rho.abs() >= 1.0 {
        return (rho, 0.0);
    }
    let t = rho * (df / (1.0 - rho * rho)).sqrt();
    let dist = StudentsT::new(0.0, 1.0, df).expect("positive degrees of freedom");
    (rho, 2.0 * dist.sf(t.abs()))
}

fn summarise(kind: &str, effects: &[&Effect]) -> KindSummary {
    let mass: Vec<f64> = effects.iter().map(|e| e.mass).collect();
    let effect: Vec<f64> = effects.iter().map(|e| e.effect).collect();
    let (spearman, p_value) = spearman_p(&mass, &effect);
    let n = effects.len().max(1) as f64;
    let (mm, me) = (mass.iter().sum::<f64>() / n, effect.iter().sum::<f64>() / n);
    let var: f64 = mass.iter().map(|m| (m - mm) * (m - mm)).sum();
    let cov: f64 = mass.iter().zip(&effect).map(|(m, e)| (m - mm) * (e - me)).sum();
    let follows: Vec<f64> = effects.iter().filter_map(|e| e.follows).collect();
    KindSummary {
        kind: kind.into(),
        count: effects.len(),
        spearman,
        p_value,
        slope: if var == 0.0 { 0.0 } else { cov / var },
        flip_rate: effects.iter().filter(|e| e.flipped).count() as f64 / n,
        follow_rate: (!follows.is_empty())
            .then(|| follows.iter().filter(|&&f| f > 0.0).count() as f64 / follows.len() as f64),
        follow: (!follows.is_empty()).then(|| Spread::of(follows)),
    }
}

/// Runs every intervention of every frame. `states[i]` is frame i's state document, `env` a fresh environment of
/// the subject's game (its state is set and read back); `attr` the method's maps of the original frames, `method`
/// the method itself (for the maps of moved frames, one batched call).
pub fn run(
    subject: &Subject,
    env: &mut dyn xrl_env::Env,
    states: &[Value],
    method: &dyn Method,
    attr: &Attribution,
) -> Result<CounterfactualResult, ExplainError> {
    super::deletion::check_maps(subject, attr)?;
    let (n, len, frame) = (subject.count(), subject.inputs.len(), subject.frame());
    if states.len() != n {
        return Err(ExplainError::Invalid(format!(
            "{} state documents for {n} frames: interventions need the state of every frame (play an episode or \
             give a trajectory, not bare inputs)",
            states.len()
        )));
    }
    let id = env.spec().id.clone();
    let cells = frame[1] * frame[2];
    // Every intervened observation, with what it came from.
    let mut obs: Vec<f32> = vec![];
    let mut meta: Vec<(usize, Intervention)> = vec![];
    let mut skipped = 0;
    for (i, doc) in states.iter().enumerate() {
        for iv in interventions(&id, doc)? {
            if env.set_state(&iv.doc).is_err() {
                skipped += 1;
                continue;
            }
            obs.extend_from_slice(env.obs());
            meta.push((i, iv));
        }
    }
    if meta.is_empty() {
        return Err(ExplainError::Invalid("no intervention applied to these frames".into()));
    }
    let x = subject.inputs.values;
    // Intervened observation k is of frame meta[k].0 (and starts from that frame's held state).
    let own: Vec<usize> = (0..n).collect();
    let of_frame: Vec<usize> = meta.iter().map(|(i, _)| *i).collect();
    let model = subject.model();
    let scores = |rows: &[f32], frame_of: &[usize]| {
        crate::outputs(&model, crate::Rows::Given(rows), len, frame_of, super::PASSES, &|h, _| crate::scores(&h))
    };
    let (base, after) = (scores(x, &own), scores(&obs, &of_frame));
    let a = base.len() / n;
    let greedy = subject.greedy_of(crate::Rows::Given(x), &own);
    let greedy_after = subject.greedy_of(crate::Rows::Given(&obs), &of_frame);
    // Maps of the moved frames, for the target of the frame each came from.
    let moved: Vec<usize> = (0..meta.len()).filter(|&k| meta[k].1.edit.starts_with("move")).collect();
    let moved_maps = if moved.is_empty() {
        None
    } else {
        let rows: Vec<f32> = moved.iter().flat_map(|&k| obs[k * len..(k + 1) * len].to_vec()).collect();
        let targets: Vec<Target> = moved.iter().map(|&k| subject.targets[meta[k].0].clone()).collect();
        let inputs = Inputs::new(&rows, subject.inputs.shape)?;
        let frame_of: Vec<usize> = moved.iter().map(|&k| meta[k].0).collect();
        Some(cell_maps(
            &method.attribute(&subject.model_of(subject.net, Some(&frame_of)), &inputs, &targets, None)?,
            frame,
        ))
    };
    let maps = cell_maps(attr, frame);
    // Mean |saliency| per cell of the object relative to the frame's mean (Atrey et al.'s mean over the object's
    // box): a sum would grow with the object's size, and then even a random map "prefers" big objects.
    let share = |m: &[f32], cs: &[usize]| {
        let total: f64 = m.iter().map(|v| f64::from(v.abs())).sum();
        if total == 0.0 || cs.is_empty() {
            return 0.0;
        }
        let on: f64 = cs.iter().map(|&j| f64::from(m[j].abs())).sum();
        (on / cs.len() as f64) / (total / m.len() as f64)
    };
    let occupied = |o: &[f32], j: usize| (0..frame[0]).any(|c| o[c * cells + j] != 0.0);
    let mut effects = vec![];
    for (k, (i, iv)) in meta.iter().enumerate() {
        let (before, now) = (&x[i * len..(i + 1) * len], &obs[k * len..(k + 1) * len]);
        // The object's cells: what differs between the two observations, split into where it was and where it is.
        let changed: Vec<usize> =
            (0..cells).filter(|&j| (0..frame[0]).any(|c| before[c * cells + j] != now[c * cells + j])).collect();
        let old: Vec<usize> = changed.iter().copied().filter(|&j| occupied(before, j)).collect();
        let new: Vec<usize> = changed.iter().copied().filter(|&j| occupied(now, j)).collect();
        let effect = (0..a).map(|q| f64::from(after[k * a + q] - base[i * a + q]).powi(2)).sum::<f64>().sqrt();
        let follows = moved.iter().position(|&m| m == k).and_then(|p| {
            let mm = moved_maps.as_ref()?;
            let m = &mm[p * cells..(p + 1) * cells];
            Some(share(m, &new) - share(m, &old))
        });
        effects.push(Effect {
            frame: *i,
            object: iv.object.clone(),
            kind: iv.kind.clone(),
            edit: iv.edit.clone(),
            mass: share(&maps[i * cells..(i + 1) * cells], &old),
            effect,
            flipped: greedy_after[k] != greedy[*i],
            follows,
        });
    }
    let mut kinds: Vec<String> = effects.iter().map(|e| e.kind.clone()).collect();
    kinds.dedup();
    kinds.sort();
    kinds.dedup();
    let summaries =
        kinds.iter().map(|k| summarise(k, &effects.iter().filter(|e| &e.kind == k).collect::<Vec<_>>())).collect();
    let all = summarise("all", &effects.iter().collect::<Vec<_>>());
    Ok(CounterfactualResult { effects, kinds: summaries, all, skipped })
}
