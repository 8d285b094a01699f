//! One self-contained HTML report (viewable offline: pictures are embedded as data URIs): the run card, the
//! learning curve, a frame player (slider, play/pause, step) showing each explained frame with the action and the
//! network's values, and the methods' timings.

use base64::Engine;

/// What a report shows; all of it already rendered (PNG bytes) or serialised (JSON text).
pub struct ReportInput<'a> {
    pub title: &'a str,
    /// `run.toml` as text.
    pub run_card: &'a str,
    pub learning_curve_png: Option<&'a [u8]>,
    /// One picture per explained frame (e.g. the frame and each method's map).
    pub frames_png: &'a [Vec<u8>],
    /// A JSON array with one object per frame (`frame`, `action`, `q`, `value`, `policy`, `ig_delta`).
    pub frames_json: &'a str,
    /// A JSON object: method → milliseconds per frame.
    pub timings_json: &'a str,
    /// The methods, in the order the pictures show them.
    pub methods: &'a [String],
    /// An evaluation section, already HTML (`xrl_explain::evaluate::suite::section_html`), or `None`.
    pub evaluation_html: Option<&'a str>,
    /// Further sections, already HTML (the finite-state section: `xrl_fsm::report::section_html`).
    pub extra_html: &'a str,
}

/// `s` with HTML's special characters escaped.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A PNG as a `data:` URI, for pictures embedded in a page.
pub fn data_uri(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png))
}

/// How every report begins (how `xrl report` knows a file it may replace).
pub const HEAD: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>xrl — ";

/// The report as one HTML document.
pub fn report_html(r: &ReportInput) -> String {
    let frames: Vec<String> = r.frames_png.iter().map(|p| format!("\"{}\"", data_uri(p))).collect();
    let curve = r.learning_curve_png.map_or_else(
        || "<p>No learning curve (the run has no finished episodes yet).</p>".to_string(),
        |png| format!("<img alt=\"learning curve\" src=\"{}\">", data_uri(png)),
    );
    let n = r.frames_png.len();
    let methods = r.methods.iter().map(|m| escape(m)).collect::<Vec<_>>().join(", ");
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>xrl — {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.15em; margin-top: 1.6em; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }}
#frame {{ max-width: 100%; image-rendering: pixelated; border: 1px solid #ccc; }}
.controls {{ display: flex; gap: 0.6em; align-items: center; margin: 0.6em 0; }}
#slider {{ flex: 1; }}
section img, section svg {{ max-width: 100%; height: auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }}
</style></head>
<body>
<h1>xrl report — {title}</h1>
<section id="player"{hidden}><h2>Frames</h2>
<p>Each picture: the frame, then each method's map over it ({methods}).</p>
<div class="controls">
<button id="prev" title="previous frame">◀</button>
<button id="play">play</button>
<button id="next" title="next frame">▶</button>
<input type="range" id="slider" min="0" max="{last}" value="0">
<span id="label"></span>
</div>
<img id="frame" alt="explained frame">
<div id="values"></div>
</section>
<section id="timings"{hidden}><h2>Time per frame</h2><div id="timing-table"></div></section>
{evaluation}
{extra}
<section id="curve"><h2>Learning curve</h2>{curve}</section>
<section id="card"><h2>Run card (run.toml)</h2><pre>{card}</pre></section>
<script>
const frames = [{frames}];
const info = {info};
const timings = {timings};
const img = document.getElementById("frame"), slider = document.getElementById("slider");
const label = document.getElementById("label"), values = document.getElementById("values");
const fmt = v => (v === null || v === undefined) ? "–"
  : (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(4) : String(v));
function row(name, xs) {{
  if (!xs) return "";
  return "<tr><th>" + name + "</th>" + xs.map(x => "<td>" + fmt(x) + "</td>").join("") + "</tr>";
}}
function show(i) {{
  i = Math.max(0, Math.min(frames.length - 1, i));
  img.src = frames[i];
  slider.value = i;
  const f = info[i] || {{}};
  const named = f.action_name ? f.action + " (" + f.action_name + ")" : f.action;
  label.textContent = "frame " + f.frame + " · action " + named + (f.target ? " · target " + f.target : "");
  values.innerHTML = "<table>" + row("action", [f.action]) + row("Q", f.q) + row("V", f.value === null || f.value === undefined ? null : [f.value])
    + row("policy", f.policy) + row("IG delta", f.ig_delta === null || f.ig_delta === undefined ? null : [f.ig_delta]) + "</table>";
  current = i;
}}
let current = 0, timer = null;
slider.addEventListener("input", () => show(parseInt(slider.value)));
document.getElementById("prev").onclick = () => show(current - 1);
document.getElementById("next").onclick = () => show(current + 1);
document.getElementById("play").onclick = e => {{
  if (timer) {{ clearInterval(timer); timer = null; e.target.textContent = "play"; return; }}
  e.target.textContent = "pause";
  timer = setInterval(() => show((current + 1) % frames.length), 400);
}};
document.getElementById("timing-table").innerHTML = "<table><tr><th>method</th><th>ms / frame</th></tr>"
  + Object.entries(timings).map(([k, v]) => "<tr><td>" + k + "</td><td>" + v.toFixed(2) + "</td></tr>").join("") + "</table>";
// `report.html#frame=N` opens at frame N (also how the browser test moves the player).
const start = parseInt((location.hash.match(/frame=(\d+)/) || [0, 0])[1]);
if (frames.length) show(start);
</script>
</body></html>
"##,
        title = escape(r.title),
        methods = methods,
        last = n.saturating_sub(1),
        // A report without explanations (a machine's, say) has no frames to play.
        hidden = if n == 0 { " hidden" } else { "" },
        curve = curve,
        card = escape(r.run_card),
        frames = frames.join(","),
        info = r.frames_json,
        timings = r.timings_json,
        evaluation = r.evaluation_html.unwrap_or(""),
        extra = r.extra_html,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_embeds_frames_values_and_escapes_text() {
        let png = vec![0x89, b'P', b'N', b'G'];
        let frames = vec![png.clone(), png.clone(), png];
        let html = report_html(&ReportInput {
            title: "Breakout <A2C>",
            run_card: "seed = 0\nid = \"MinAtar/Breakout-v0\"",
            learning_curve_png: None,
            frames_png: &frames,
            frames_json: r#"[{"frame":0,"action":1},{"frame":1,"action":3},{"frame":2,"action":0}]"#,
            timings_json: r#"{"grad":0.5}"#,
            methods: &["grad".to_string()],
            evaluation_html: Some("<section id=\"evaluation\"></section>"),
            extra_html: "",
        });
        assert!(html.starts_with(HEAD), "xrl report recognises its own reports by their start");
        assert!(html.contains("<section id=\"evaluation\"></section>"));
        assert_eq!(html.matches("data:image/png;base64,iVBORw").count(), 3);
        assert!(html.contains(r#"max="2""#));
        assert!(html.contains("Breakout &lt;A2C&gt;") && !html.contains("<A2C>"));
        assert!(html.contains("id = &quot;MinAtar/Breakout-v0&quot;"));
        assert!(html.contains(r#"{"frame":1,"action":3}"#));
    }
}
