//! A machine for people to read: the seed's text table, Graphviz DOT, and an SVG drawing made here (no Graphviz
//! needed). States are `s0, s1, …` with their action; observation classes `o0, o1, …`.

use crate::machine::{Code, MooreMachine};
use std::collections::BTreeMap;
use std::fmt::Write;

fn code_text(c: &Code) -> String {
    let parts: Vec<String> = c.iter().map(|v| v.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// A state's or class's codes: the one code, or (merged by minimisation) how many and the first (every code is in
/// the JSON file).
fn codes_text(codes: &[Code]) -> String {
    match codes {
        [one] => code_text(one),
        [first, ..] => format!("{} codes, e.g. {}", codes.len(), code_text(first)),
        [] => String::new(),
    }
}

/// A table with a header row, boxed like PrettyTable (the seed's output).
fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = || {
        let mut s = String::from("+");
        for w in &widths {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let row = |cells: &[String]| {
        let mut s = String::from("|");
        // Padded by hand: a format width is limited to 65535, and a wide machine's row can exceed it.
        for (c, w) in cells.iter().zip(&widths) {
            s.push(' ');
            s.push_str(c);
            s.push_str(&" ".repeat(w - c.chars().count()));
            s.push_str(" |");
        }
        s.push('\n');
        s
    };
    let mut out = line() + &row(header) + &line();
    for r in rows {
        out.push_str(&row(r));
    }
    out + &line()
}

/// The seed's `fsm.txt` layout: counts and start state, the observation classes with their codes, the states with
/// their actions and codes, and the transition matrix (rows states, columns observation classes, cells the next
/// state or `None`). `action_names` label the actions where given.
pub fn text(m: &MooreMachine, action_names: &[String]) -> String {
    let action = |a: usize| action_names.get(a).map_or(a.to_string(), |n| format!("{a} ({n})"));
    let mut out = String::new();
    let _ = writeln!(out, "Total Unique States:{}", m.states());
    let _ = writeln!(out, "Total Unique Observations:{}", m.observations());
    let _ = writeln!(out, "Start State: s{}\n", m.start);
    let _ = writeln!(out, "Observation Description");
    let rows: Vec<Vec<String>> =
        m.obs_codes.iter().enumerate().map(|(o, codes)| vec![format!("o{o}"), codes_text(codes)]).collect();
    out.push_str(&table(&["Index".into(), "Features".into()], &rows));
    let _ = writeln!(out, "\nStates Description");
    let rows: Vec<Vec<String>> =
        (0..m.states()).map(|s| vec![format!("s{s}"), action(m.actions[s]), codes_text(&m.state_codes[s])]).collect();
    out.push_str(&table(&["Name".into(), "Action".into(), "Description".into()], &rows));
    // The seed's matrix for machines narrow enough to read; a wide one (an unminimised Atari machine has
    // thousands of classes) as one line per recorded transition.
    if m.observations() <= 64 {
        let _ = writeln!(out, "\nTransaction Matrix: (StateIndex_ObservationIndex x StateIndex)");
        let header: Vec<String> =
            std::iter::once(String::new()).chain((0..m.observations()).map(|o| format!("o{o}"))).collect();
        let rows: Vec<Vec<String>> = (0..m.states())
            .map(|s| {
                std::iter::once(format!("s{s}"))
                    .chain((0..m.observations()).map(|o| m.next_of(s, o).map_or("None".into(), |n| format!("s{n}"))))
                    .collect()
            })
            .collect();
        out.push_str(&table(&header, &rows));
    } else {
        let _ = writeln!(out, "\nTransitions ({} recorded; state --observation--> next state):", m.transitions());
        for (s, row) in m.next.iter().enumerate() {
            for (o, n) in row {
                let _ = writeln!(out, "s{s} --o{o}--> s{n}");
            }
        }
    }
    out
}

/// The edges of the drawing: (from, to) → observation classes, in order.
fn edges(m: &MooreMachine) -> BTreeMap<(usize, usize), Vec<usize>> {
    let mut e: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for (s, row) in m.next.iter().enumerate() {
        for (&o, &n) in row {
            e.entry((s, n)).or_default().push(o);
        }
    }
    e
}

/// At most `max` class names, then how many more.
fn class_list(classes: &[usize], max: usize) -> String {
    let mut names: Vec<String> = classes.iter().take(max).map(|o| format!("o{o}")).collect();
    if classes.len() > max {
        names.push(format!("+{}", classes.len() - max));
    }
    names.join(",")
}

/// Graphviz DOT: one node per state (its action in the label, the start state doubly circled), one edge per
/// (state, next state) labelled with the observation classes that take it.
pub fn dot(m: &MooreMachine, action_names: &[String]) -> String {
    let mut out = String::from("digraph moore_machine {\n  rankdir=LR;\n  node [shape=circle];\n");
    for s in 0..m.states() {
        let a = m.actions[s];
        let name = action_names.get(a).cloned().unwrap_or_else(|| a.to_string());
        let peripheries = if s == m.start { 2 } else { 1 };
        let _ = writeln!(out, "  s{s} [label=\"s{s}\\n{}\", peripheries={peripheries}];", escape(&name));
    }
    for ((s, n), classes) in edges(m) {
        let _ = writeln!(out, "  s{s} -> s{n} [label=\"{}\"];", class_list(&classes, 12));
    }
    out.push_str("}\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('<', "&lt;").replace('>', "&gt;").replace('&', "&amp;")
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG drawing: states on a circle (the start state at the top, doubly ringed), each labelled with its name and
/// action; transitions as curved arrows (self-loops as small loops outside the circle) labelled with their
/// observation classes, at most six names each.
pub fn svg(m: &MooreMachine, action_names: &[String]) -> String {
    let n = m.states().max(1);
    let radius = if n == 1 { 0.0 } else { (70.0 * n as f64 / std::f64::consts::PI).max(120.0) };
    let (node, margin) = (34.0, 135.0);
    let size = 2.0 * (radius + margin);
    let c = size / 2.0;
    // The start state first, at the top, the others clockwise.
    let pos = |s: usize| {
        let k = (s + n - m.start) % n;
        let a = -std::f64::consts::FRAC_PI_2 + 2.0 * std::f64::consts::PI * k as f64 / n as f64;
        (c + radius * a.cos(), c + radius * a.sin())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size:.0}\" height=\"{:.0}\" viewBox=\"0 0 {size:.0} {:.0}\" font-family=\"sans-serif\">",
        size + 24.0,
        size + 24.0
    );
    out.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
         orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#444\"/></marker></defs>\n",
    );
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    for ((s, t), classes) in edges(m) {
        let label = xml(&class_list(&classes, 6));
        let (x1, y1) = pos(s);
        if s == t {
            // A loop on the side away from the centre.
            let (dx, dy) = (x1 - c, y1 - c);
            let len = (dx * dx + dy * dy).sqrt().max(1e-9);
            let (ux, uy) = if n == 1 { (0.0, -1.0) } else { (dx / len, dy / len) };
            let (px, py) = (-uy, ux);
            let (ax, ay) = (x1 + ux * node + px * 12.0, y1 + uy * node + py * 12.0);
            let (bx, by) = (x1 + ux * node - px * 12.0, y1 + uy * node - py * 12.0);
            let (cx1, cy1) = (ax + ux * 60.0 + px * 30.0, ay + uy * 60.0 + py * 30.0);
            let (cx2, cy2) = (bx + ux * 60.0 - px * 30.0, by + uy * 60.0 - py * 30.0);
            let _ = writeln!(
                out,
                "<path d=\"M {ax:.1} {ay:.1} C {cx1:.1} {cy1:.1} {cx2:.1} {cy2:.1} {bx:.1} {by:.1}\" fill=\"none\" stroke=\"#444\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/>"
            );
            let (lx, ly) = (x1 + ux * (node + 62.0), y1 + uy * (node + 62.0));
            let _ = writeln!(
                out,
                "<text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#a33\">{label}</text>"
            );
            continue;
        }
        let (x2, y2) = pos(t);
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-9);
        let (ux, uy) = (dx / len, dy / len);
        // Bend to the right of the direction of travel, so that s→t and t→s do not overlap.
        let (px, py) = (uy, -ux);
        let bend = 0.18 * len;
        let (sx, sy) = (x1 + ux * node, y1 + uy * node);
        let (ex, ey) = (x2 - ux * node, y2 - uy * node);
        let (qx, qy) = ((x1 + x2) / 2.0 + px * bend, (y1 + y2) / 2.0 + py * bend);
        let _ = writeln!(
            out,
            "<path d=\"M {sx:.1} {sy:.1} Q {qx:.1} {qy:.1} {ex:.1} {ey:.1}\" fill=\"none\" stroke=\"#444\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/>"
        );
        let (lx, ly) = ((x1 + x2) / 2.0 + px * bend * 0.55, (y1 + y2) / 2.0 + py * bend * 0.55);
        let _ = writeln!(
            out,
            "<text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#a33\">{label}</text>"
        );
    }
    for s in 0..m.states() {
        let (x, y) = pos(s);
        let a = m.actions[s];
        let name = action_names.get(a).cloned().unwrap_or_else(|| format!("action {a}"));
        if s == m.start {
            let _ = writeln!(
                out,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{:.1}\" fill=\"none\" stroke=\"#246\" stroke-width=\"1.5\"/>",
                node + 5.0
            );
        }
        let _ = writeln!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{node:.1}\" fill=\"#dde8f4\" stroke=\"#246\" stroke-width=\"2\"/>"
        );
        let _ = writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\">s{s}</text>",
            y - 2.0
        );
        let _ = writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            y + 14.0,
            xml(&name)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"8\" y=\"{:.0}\" font-size=\"13\">{} states, {} observation classes; start s{} (double ring)</text>",
        size + 16.0,
        m.states(),
        m.observations(),
        m.start
    );
    out.push_str("</svg>\n");
    out
}
