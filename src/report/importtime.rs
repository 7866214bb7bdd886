//! CPython's `-X importtime` format, byte for byte.
//!
//! ```text
//! import time: self [us] | cumulative | imported package
//! import time:       105 |        105 |   _io
//! ```
//!
//! (`Python/import.c`: `"import time: %9ld | %10ld | %*s%s\n"` with an
//! indent of two spaces per nesting level; children come before parents.)

/// The header CPython prints before the first line.
pub const HEADER: &str = "import time: self [us] | cumulative | imported package\n";

/// One line: `self_us` and `cum_us` already rounded up to microseconds.
pub fn line(self_us: u64, cum_us: u64, level: usize, module: &str) -> String {
    format!("import time: {self_us:>9} | {cum_us:>10} | {:indent$}{module}\n", "", indent = level * 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cpython_byte_for_byte() {
        // The layout of `python3.11 -X importtime` lines (values chosen here).
        assert_eq!(line(105, 105, 1, "_io"), "import time:       105 |        105 |   _io\n");
        assert_eq!(line(1234, 12345, 0, "json"), "import time:      1234 |      12345 | json\n");
        assert_eq!(line(7, 7, 3, "_json"), "import time:         7 |          7 |       _json\n");
    }
}
