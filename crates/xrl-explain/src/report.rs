//! The HTML report of a run: its card and learning curve, and optionally its explanations (the frame player) and
//! their evaluation — gathered from the files the other commands wrote, checked to belong to this run.

use crate::ExplainError;
use crate::evaluate::suite::Report as Evaluation;
use crate::job::Summary;
use std::path::Path;
use xrl::run::RunDir;

/// An existing `out` may be replaced only when it is an earlier xrl report (regenerating one is the point of the
/// command); any other file there is the user's.
fn refuse_foreign_file(out: &Path) -> Result<(), ExplainError> {
    // Only a regular file is read here (a FIFO would block); anything else is refused when the report is written.
    if !std::fs::metadata(out).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    let head = std::fs::File::open(out).and_then(|f| {
        use std::io::Read;
        let mut buf = vec![0u8; 160];
        let n = f.take(160).read(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    });
    let ours = head.is_ok_and(|h| h.starts_with(xrl_render::report::HEAD.as_bytes()));
    if ours {
        return Ok(());
    }
    Err(ExplainError::Invalid(format!(
        "{} exists and is not an xrl report; nothing was changed. Choose another --out (an earlier xrl report there is \
         replaced)",
        out.display()
    )))
}

/// Writes the self-contained report of the run in `run` to `out`, with the explanations in `explanations` (a
/// directory written by `xrl explain --layout grid`) and the evaluation in `evaluation` (one written by
/// `xrl evaluate`); each is refused when it belongs to another game. `extra_html`: further sections, already
/// HTML and checked by their makers (the finite-state section).
pub fn write(
    run: &Path,
    explanations: Option<&Path>,
    evaluation: Option<&Path>,
    extra_html: &str,
    out: &Path,
) -> Result<(), ExplainError> {
    refuse_foreign_file(out)?;
    let dir = RunDir::new(run);
    let card = dir.read_card()?;
    let run_card = xrl_render::read_regular_string(dir.card_path())
        .map_err(|e| ExplainError::Invalid(format!("cannot read {} ({e})", dir.card_path().display())))?;
    let curve = xrl_render::read_regular(dir.curve_path()).ok();
    let other_game = |what: &Path, env: &str| {
        ExplainError::Invalid(format!(
            "{} is about an agent in {env}, but {} plays {}: give the outputs of this run",
            what.display(),
            run.display(),
            card.env.id
        ))
    };
    // Results of this run at its current checkpoint only: another run's (or an older checkpoint's) would be shown
    // under this run's title.
    let step = dir.latest()?.map(|s| s.step);
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    let check_run = |what: &Path, recorded_run: &str, recorded_step: usize| -> Result<(), ExplainError> {
        let other_dir = match (canonical(Path::new(recorded_run)), canonical(run)) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        };
        if other_dir || step != Some(recorded_step) {
            return Err(ExplainError::Invalid(format!(
                "{} was made from {recorded_run} at checkpoint step {recorded_step}, but {} is at step {}: give the \
                 outputs of this run (run `xrl explain` / `xrl evaluate` on it again)",
                what.display(),
                run.display(),
                step.map_or("none".to_string(), |s| s.to_string())
            )));
        }
        Ok(())
    };
    let (mut frames, mut frames_json, mut timings_json, mut methods) =
        (vec![], "[]".to_string(), "{}".to_string(), vec![]);
    if let Some(ex) = explanations {
        let summary = Summary::read(&ex.join("summary.json"))?;
        if summary.env != card.env.id {
            return Err(other_game(ex, &summary.env));
        }
        check_run(ex, &summary.run, summary.checkpoint_step)?;
        for f in &summary.files {
            let name = Path::new(f).file_name().and_then(|n| n.to_str()).unwrap_or("");
            // One grid picture per frame: frame_0000.png, frame_0001.png, …
            if name.starts_with("frame_") && name.ends_with(".png") && name.len() == "frame_0000.png".len() {
                let bytes = xrl_render::read_regular(ex.join(name)).map_err(|e| {
                    ExplainError::Invalid(format!(
                        "cannot read {} ({e}), a picture summary.json lists; run `xrl explain` again into a new \
                         directory",
                        ex.join(name).display()
                    ))
                })?;
                frames.push(bytes);
            }
        }
        if frames.is_empty() {
            return Err(ExplainError::Invalid(format!(
                "{} has no frame pictures: explanations of vector observations (CartPole, …) have none, and for \
                 games the frame player needs `xrl explain --layout grid` (the default)",
                ex.display()
            )));
        }
        frames_json = serde_json::to_string(&summary.frames).expect("frames serialise");
        let timings: std::collections::BTreeMap<&str, f64> =
            summary.methods.iter().map(|m| (m.name.as_str(), m.ms_per_frame)).collect();
        timings_json = serde_json::to_string(&timings).expect("timings serialise");
        methods = summary.methods.iter().map(|m| m.name.clone()).collect();
    }
    let evaluation_html = match evaluation {
        Some(ev) => {
            let report = Evaluation::read(&ev.join("evaluate.json"))?;
            if report.env != card.env.id {
                return Err(other_game(ev, &report.env));
            }
            check_run(ev, &report.run, report.checkpoint_step)?;
            Some(report.section_html(ev))
        }
        None => None,
    };
    let title = format!("{} — {}", card.env.id, card.agent.name());
    let html = xrl_render::report::report_html(&xrl_render::report::ReportInput {
        title: &title,
        run_card: &run_card,
        learning_curve_png: curve.as_deref(),
        frames_png: &frames,
        frames_json: &frames_json,
        timings_json: &timings_json,
        methods: &methods,
        evaluation_html: evaluation_html.as_deref(),
        extra_html,
    });
    xrl::run::write_bytes(out, html.as_bytes())?;
    Ok(())
}
