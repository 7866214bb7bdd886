//! Reports rendered from the import forest ([`crate::events::forest`]), in
//! the formats the Python ecosystem already reads. One format a file;
//! `importprobe report` and `importprobe trace` both render through
//! [`render`], `diff` and `check` through [`diff`] and [`check`].
//!
//! Every report accounts for what the recording lacks (lost events,
//! anomalies, modules imported outside the probes): the formats people read
//! (`tree`, `top`) say it in their summary; the formats programs read carry
//! it in [`Report::notes`], for stderr, so their output stays valid.

pub mod check;
pub mod chrome;
pub mod colour;
pub mod diff;
pub mod flamegraph;
pub mod folded;
pub mod json;
pub mod names;
pub mod outline;
pub mod speedscope;
pub mod summary;
pub mod threads;
pub mod top;

use crate::events::blind_spots;
use crate::events::forest::Forest;
use crate::events::importtime;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A one-screen summary, then the imports indented by nesting, with
    /// cumulative and self microseconds.
    Tree,
    /// The N slowest imports by self and by cumulative time (--top N).
    Top,
    /// CPython's `-X importtime` stderr lines, byte for byte.
    Importtime,
    /// Flame graph folded stacks, weighted by self microseconds.
    Folded,
    /// A flame graph, as an SVG (rendered by inferno).
    Flamegraph,
    /// Chrome trace event JSON (Perfetto, chrome://tracing).
    Chrome,
    /// speedscope's evented profile JSON, one profile per thread.
    Speedscope,
    /// One JSON object per import, one per line.
    Json,
}

impl Format {
    /// Whether people read it (summary inside) rather than programs
    /// (diagnostics on stderr).
    pub fn is_for_people(self) -> bool {
        matches!(self, Format::Tree | Format::Top)
    }
}

/// How to render.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many imports `top` lists of each kind.
    pub top: usize,
    /// ANSI colour in `tree` and `top` (decide with [`colour::for_stdout`]).
    pub colour: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { top: 10, colour: false }
    }
}

/// A rendered report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// What goes to stdout or the output file.
    pub text: String,
    /// Lines for stderr about what the recording lacks, for formats that
    /// cannot say it themselves (empty for `tree` and `top`).
    pub notes: Vec<String>,
}

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("rendering the flame graph: {0}")]
    Flamegraph(#[from] std::io::Error),
}

/// Renders a forest in one format.
pub fn render(forest: &Forest, format: Format, opts: &Options) -> Result<Report, RenderError> {
    let text = match format {
        Format::Tree => outline::render(forest, opts.colour),
        Format::Top => top::render(forest, opts.top, opts.colour),
        Format::Importtime => importtime::render(forest),
        Format::Folded => folded::render(forest),
        Format::Flamegraph => flamegraph::render(forest)?,
        Format::Chrome => chrome::render(forest),
        Format::Speedscope => speedscope::render(forest),
        Format::Json => json::render(forest),
    };
    let notes = if format.is_for_people() { Vec::new() } else { notes(forest) };
    Ok(Report { text, notes })
}

/// Everything a machine format cannot carry: the forest's diagnostics and
/// its blind spots, one line each.
pub fn notes(forest: &Forest) -> Vec<String> {
    let mut out = forest.diagnostics();
    out.extend(blind_spots::find(forest).iter().map(|b| b.describe(forest)));
    out
}
