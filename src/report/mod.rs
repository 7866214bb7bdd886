//! Reports rendered from the import forest ([`crate::events::forest`]), in
//! the formats the Python ecosystem already reads. One renderer a file;
//! `importprobe report` and `importprobe trace` both render through
//! [`render`].

pub mod chrome;
pub mod folded;
pub mod json;
pub mod outline;

use crate::events::forest::Forest;
use crate::events::importtime;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Imports indented by nesting, with cumulative and self microseconds.
    Tree,
    /// CPython's `-X importtime` stderr lines, byte for byte.
    Importtime,
    /// Flame graph folded stacks, weighted by self microseconds.
    Folded,
    /// One JSON object per import (times in ns, found, tid, parents).
    Json,
    /// Chrome trace event format (chrome://tracing, Perfetto).
    Chrome,
}

/// Renders a forest in one format.
pub fn render(forest: &Forest, format: Format) -> String {
    match format {
        Format::Tree => outline::render(forest),
        Format::Importtime => importtime::render(forest),
        Format::Folded => folded::render(forest),
        Format::Json => json::render(forest),
        Format::Chrome => chrome::render(forest),
    }
}
