//! The `flamegraph` format: an SVG flame graph drawn by inferno (the Rust
//! port of Brendan Gregg's flamegraph.pl), from the stacks of
//! [`super::folded`] weighted in nanoseconds.
//!
//! Each frame is one import stack, identical stacks merged (a module
//! imported from the same place twice is one frame), and is labelled with
//! its module and both of its times, `json (self 529 µs, cumulative
//! 13.61 ms)`, so the frame's text and its tooltip (`<title>`) say them;
//! inferno adds the share of the whole. With several threads, each
//! thread's stacks stand on a frame of their own. The subtitle carries the
//! import time and what the recording lacks (lost events, anomalies, blind
//! spots; their details go to stderr).

use super::folded;
use crate::analysis::duration::human;
use crate::analysis::summary::Summary;
use crate::events::forest::Forest;
use inferno::flamegraph::{self, Options};
use std::collections::HashMap;

/// One merged stack.
struct Node {
    frame: String,
    self_ns: u64,
    cumulative_ns: u64,
    children: Vec<usize>,
}

/// Imports merged by stack: node 0 is the (unlabelled) root.
fn merge(forest: &Forest) -> Vec<Node> {
    let mut nodes = vec![Node { frame: String::new(), self_ns: 0, cumulative_ns: 0, children: Vec::new() }];
    let mut index: HashMap<(usize, String), usize> = HashMap::new();
    let several = super::threads::several(forest);
    // The node of each stack prefix seen so far on the current path.
    let mut path_nodes: Vec<usize> = Vec::new();
    folded::stacks(forest, several, |path, id| {
        // Keep the nodes of the prefix this stack shares with the last one.
        let shared = path_nodes.iter().zip(&path[..path.len() - 1]).take_while(|(&n, f)| nodes[n].frame == **f).count();
        path_nodes.truncate(shared);
        // A thread frame (the first of a path with several threads) has no
        // import: create it on the way.
        while path_nodes.len() < path.len() {
            let parent = path_nodes.last().copied().unwrap_or(0);
            let frame = &path[path_nodes.len()];
            let next = nodes.len();
            let node = *index.entry((parent, frame.clone())).or_insert(next);
            if node == next {
                nodes.push(Node { frame: frame.clone(), self_ns: 0, cumulative_ns: 0, children: Vec::new() });
                nodes[parent].children.push(node);
            }
            path_nodes.push(node);
        }
        let node = &mut nodes[*path_nodes.last().expect("a path has a frame")];
        node.self_ns += forest.self_ns(id);
        node.cumulative_ns += forest.cumulative_ns(id);
    });
    // Thread frames: their cumulative time is their imports'.
    for i in (0..nodes.len()).rev() {
        if nodes[i].cumulative_ns == 0 {
            nodes[i].cumulative_ns = nodes[i].children.iter().map(|&c| nodes[c].cumulative_ns).sum();
        }
    }
    nodes
}

/// The stack lines inferno reads, each frame labelled with its times.
fn lines(nodes: &[Node]) -> Vec<String> {
    let label = |n: &Node| format!("{} (self {}, cumulative {})", n.frame, human(n.self_ns), human(n.cumulative_ns));
    let mut out = Vec::with_capacity(nodes.len());
    // (node, length of `prefix` before its label was appended)
    let mut stack: Vec<(usize, usize)> = nodes[0].children.iter().rev().map(|&c| (c, 0)).collect();
    let mut prefix = String::new();
    while let Some((id, keep)) = stack.pop() {
        prefix.truncate(keep);
        if keep > 0 {
            prefix.push(';');
        }
        prefix.push_str(&label(&nodes[id]));
        if nodes[id].self_ns > 0 {
            out.push(format!("{prefix} {}", nodes[id].self_ns));
        }
        let len = prefix.len();
        stack.extend(nodes[id].children.iter().rev().map(|&c| (c, len)));
    }
    out
}

/// The title: the traced command, when there is one.
fn title(forest: &Forest) -> String {
    match forest.processes.as_slice() {
        [p] if !p.info.command.is_empty() => format!("Import time: {}", crate::events::escape(&p.info.command)),
        _ => "Import time".to_owned(),
    }
}

/// Renders the SVG.
pub fn render(forest: &Forest) -> std::io::Result<String> {
    let summary = Summary::of(forest, 0);
    let subtitle = format!(
        "import time {} in {} imports ({} failed), {} thread(s); lost events: {}; anomalies: {}; blind spots: {}",
        human(summary.total_ns),
        summary.imports,
        summary.failed,
        summary.threads(),
        summary.lost_events,
        summary.anomalies,
        summary.blind_spots.len()
    );
    let stacks = lines(&merge(forest));
    if stacks.is_empty() {
        return Ok(empty(&title(forest), &subtitle));
    }
    let mut opts = Options::default();
    opts.title = title(forest);
    opts.subtitle = Some(subtitle);
    opts.count_name = "µs".into();
    opts.name_type = "Import:".into();
    // Weights are nanoseconds; tooltips count microseconds.
    opts.factor = 0.001;
    // Colour by name, so the same module has the same colour everywhere.
    opts.hash = true;
    opts.deterministic = true;
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut opts, stacks.iter().map(String::as_str), &mut svg)?;
    String::from_utf8(svg).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A valid SVG saying there is nothing to draw (inferno refuses).
fn empty(title: &str, subtitle: &str) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg version=\"1.1\" width=\"1200\" height=\"80\" \
         xmlns=\"http://www.w3.org/2000/svg\"><text x=\"600\" y=\"24\" text-anchor=\"middle\" font-size=\"17\">{}</text>\
         <text x=\"600\" y=\"48\" text-anchor=\"middle\" font-size=\"12\">{} (no import time to draw)</text></svg>\n",
        esc(title),
        esc(subtitle)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{forest, package_and_failure, two_threads};

    #[test]
    fn frames_carry_their_times_and_merge_by_stack() {
        let nodes = merge(&forest(package_and_failure()));
        assert_eq!(
            lines(&nodes),
            [
                "a.b (self 4.5 µs, cumulative 11.0 µs) 4500",
                "a.b (self 4.5 µs, cumulative 11.0 µs);a (self 3.0 µs, cumulative 3.0 µs) 3000",
                "a.b (self 4.5 µs, cumulative 11.0 µs);json (self 3.5 µs, cumulative 3.5 µs) 3500",
                "nope [failed] (self 400 ns, cumulative 400 ns) 400",
            ]
        );
    }

    #[test]
    fn threads_get_a_frame_each() {
        let l = lines(&merge(&forest(two_threads())));
        assert!(l[0].starts_with("thread 1 (main) (self 0 ns, cumulative 500 ns);x "), "{l:?}");
        assert!(l.iter().any(|s| s.starts_with("thread 2 (self 0 ns, cumulative 350 ns);y [failed]")), "{l:?}");
    }

    #[test]
    fn renders_an_svg_even_with_nothing_to_draw() {
        let svg = render(&forest(package_and_failure())).unwrap();
        assert!(svg.contains("<svg") && svg.contains("a.b (self 4.5 µs, cumulative 11.0 µs)"), "{svg}");
        let none = render(&Forest::default()).unwrap();
        assert!(none.contains("no import time to draw"));
    }
}
