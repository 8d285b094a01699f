//! The report's finite-state section: the minimised machine's graph, its size before and after minimisation and
//! the scores (when `xrl fsm play` ran), a state-by-state walk through the first extraction episode, sample frames
//! per observation class and the machine's annotated episode, and the diff-IG pictures at its decision points.

use crate::FsmError;
use crate::pipeline::{FsmDir, read_json};
use crate::play::PlayReport;
use std::fmt::Write;
use std::path::Path;
use xrl_render::report::{data_uri, escape};

/// Steps of the walk-through table.
const WALK_STEPS: usize = 40;

/// The section's HTML for the machine in `fsm` (and the diff-IG results in `diff_ig`, a directory `xrl diff-ig`
/// wrote), checked to belong to the run in `run`.
pub fn section_html(
    run: &Path,
    fsm: &Path,
    diff_ig: Option<&Path>,
    action_names: &[String],
) -> Result<String, FsmError> {
    let dir = FsmDir::new(fsm);
    let card = dir.read_card()?;
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same(&card.run, run) {
        return Err(FsmError::Invalid(format!(
            "{} is a machine of {}, not of {}: give the `xrl fsm` output of this run",
            fsm.display(),
            card.run.display(),
            run.display()
        )));
    }
    let ex = dir.extraction()?;
    let (m, min) = (&ex.machine, &ex.minimised);
    let action = |a: usize| action_names.get(a).cloned().unwrap_or_else(|| a.to_string());
    let mut h = String::from("<section id=\"finite-state\">\n<h2>Finite-state abstraction</h2>\n");
    let _ = writeln!(
        h,
        "<p>Moore machine extracted from the GRU policy with quantised bottlenecks (Koul et al. 2019; {} hidden-state \
         bits, {} observation bits): {} states and {} observation classes over {} episodes, minimised to <b>{} \
         states</b> and <b>{} observation classes</b>. Each state acts the same way every time it is reached; an \
         arrow is labelled with the observation classes that take it.</p>",
        card.config.hx_bits,
        card.config.ox_bits,
        m.states(),
        m.observations(),
        ex.traces.len(),
        min.states(),
        min.observations()
    );
    // What `xrl fsm play` and `xrl diff-ig` wrote is optional; what is there but damaged is an error, not a
    // section silently left out.
    let scores_path = dir.path("scores.json");
    if scores_path.exists() {
        let scores: PlayReport = read_json(&scores_path)?;
        let _ = writeln!(
            h,
            "<p>Mean score over {} episodes: policy {:.2}, Moore machine network {:.2}, minimised machine playing \
             alone {:.2} ({} of {} steps saw a code unseen in extraction).</p>",
            scores.episodes,
            scores.policy_mean,
            scores.mmn_mean,
            scores.machine_mean,
            scores.machine.unseen_codes,
            scores.machine.steps
        );
    }
    let _ = writeln!(h, "<div class=\"fsm-graph\">{}</div>", crate::output::svg(min, action_names));
    // The walk: the first extraction episode through the minimised machine.
    if let Some(trace) = ex.traces.first() {
        let _ = writeln!(
            h,
            "<h3>A walk through the first extraction episode</h3>\n<table>\n<tr><th>t</th><th>state</th><th>observation \
             class</th><th>next state</th><th>action</th></tr>"
        );
        let mut state = min.start;
        for (t, step) in trace.steps.iter().take(WALK_STEPS).enumerate() {
            let Some(mv) = min.transition(state, &step.obs) else { break };
            let branch = if min.next[state].values().any(|&n| n != mv.next) { " (decision point)" } else { "" };
            let _ = writeln!(
                h,
                "<tr><td>{t}</td><td>s{state}{branch}</td><td>o{}</td><td>s{}</td><td>{}</td></tr>",
                mv.class,
                mv.next,
                escape(&action(min.actions[mv.next]))
            );
            state = mv.next;
        }
        if trace.steps.len() > WALK_STEPS {
            let _ = writeln!(h, "<tr><td colspan=\"5\">… {} more steps</td></tr>", trace.steps.len() - WALK_STEPS);
        }
        h.push_str("</table>\n");
    }
    for (file, alt) in
        [("classes.png", "sample frames per observation class"), ("machine-episode.gif", "the machine playing alone")]
    {
        if let Some(bytes) = picture(&dir.path(file))? {
            let uri = if file.ends_with(".gif") {
                data_uri(&bytes).replacen("image/png", "image/gif", 1)
            } else {
                data_uri(&bytes)
            };
            let _ = writeln!(
                h,
                "<figure><img alt=\"{alt}\" src=\"{uri}\" style=\"max-width: 720px\"><figcaption>{alt}</figcaption></figure>"
            );
        }
    }
    if let Some(d) = diff_ig {
        let doc: serde_json::Value = read_json(&d.join("diff_ig.json"))?;
        if !doc.get("points").is_some_and(serde_json::Value::is_array) {
            return Err(FsmError::File {
                path: d.join("diff_ig.json"),
                message: "is not a result of `xrl diff-ig` (it has no points); give the --out of `xrl diff-ig`".into(),
            });
        }
        // The machine it explained, by content: a directory copied elsewhere is still the same machine, one
        // extracted again is not.
        if doc.get("machine").and_then(|v| v.as_str()) != Some(crate::pipeline::fingerprint(min).as_str()) {
            return Err(FsmError::Invalid(format!(
                "{} explains another machine than the one now in {}: run `xrl diff-ig --fsm {}` again",
                d.display(),
                fsm.display(),
                fsm.display()
            )));
        }
        h.push_str("<h3>Differential integrated gradients at the decision points</h3>\n");
        let points = doc.get("points").and_then(|p| p.as_array()).cloned().unwrap_or_default();
        for (k, p) in points.iter().enumerate() {
            let get =
                |path: &[&str]| path.iter().try_fold(p, |v, key| v.get(*key)).and_then(|v| v.as_u64()).unwrap_or(0);
            let differing = p.pointer("/diff_ig/differing").and_then(|v| v.as_array()).map_or(0, |a| a.len());
            let _ = writeln!(
                h,
                "<p>State s{}: input o{} → s{}, baseline o{} → s{}; {differing} observation bits differ.</p>",
                get(&["point", "state"]),
                get(&["point", "input", "class"]),
                get(&["point", "input", "next"]),
                get(&["point", "baseline", "class"]),
                get(&["point", "baseline", "next"])
            );
            for file in [format!("point-{k}.png"), format!("point-{k}-bits.png")] {
                if let Some(bytes) = picture(&d.join(&file))? {
                    let _ = writeln!(h, "<img alt=\"{file}\" src=\"{}\">", data_uri(&bytes));
                }
            }
        }
    }
    h.push_str("</section>\n");
    Ok(h)
}

/// A picture's bytes, `None` when the file is absent; a file that is not a PNG or GIF (or cannot be read) is an
/// error naming it.
fn picture(path: &Path) -> Result<Option<Vec<u8>>, FsmError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let bad = |why: String| FsmError::File {
        path: path.to_path_buf(),
        message: format!("{why}; remove it and rerun the command that wrote it"),
    };
    let bytes = xrl_render::read_regular(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
    if !(bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(b"GIF8")) {
        return Err(bad("is not a PNG or GIF picture".into()));
    }
    Ok(Some(bytes))
}
