//! How a module name is written in a report, so that no name can pass for
//! another, for a marker, or for report syntax.
//!
//! A module name is whatever string reached `__import__`: it can hold
//! newlines, tabs, `;` (the folded format's frame separator), text that
//! looks like an event, or exactly the words of a marker. So:
//!
//! - a *plain* name (dotted identifiers, as Python spells modules) is
//!   written as it is: `json.decoder`;
//! - any other name is written quoted, with `"`, `\`, `;` and every
//!   non-printing character escaped: `"evil\nname"`, `"a b"`,
//!   `"<unencodable name>"`;
//! - a name cut at the tracer's string limit is its prefix (plain or quoted)
//!   followed by `…` (U+2026, which no plain name holds and which is outside
//!   the quotes of a quoted one): `numpy.core._multiarr…`;
//! - a name the probe received as NULL is `<unencodable name>`, unquoted,
//!   which no real name renders to (a real `<...>` name is quoted).
//!
//! The result holds no control character and no `;`, so it is also safe as
//! a folded-stack frame and on one line of any text report.

use crate::events::NameState;
use std::borrow::Cow;

/// What a name the probe received as NULL is shown as.
pub const MISSING: &str = "<unencodable name>";

/// The mark after a cut name's prefix.
pub const CUT: char = '…';

/// The name as a report shows it (see the module doc).
pub fn shown(module: &str, state: NameState) -> Cow<'_, str> {
    match state {
        NameState::Missing => Cow::Borrowed(MISSING),
        NameState::Cut => Cow::Owned(format!("{}{CUT}", quoted_unless_plain(module, true))),
        NameState::Full => quoted_unless_plain(module, false),
    }
}

/// Whether `module` is spelled as Python spells module names: non-empty
/// identifiers joined by single dots. A prefix (`partial`) may end anywhere,
/// even right after a dot.
pub fn is_plain(module: &str, partial: bool) -> bool {
    let mut parts = module.split('.').peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let ok = part.chars().all(|c| c == '_' || c.is_alphanumeric())
            && (!part.is_empty() || (partial && last && !module.is_empty()));
        if !ok {
            return false;
        }
    }
    !module.is_empty()
}

fn quoted_unless_plain(module: &str, partial: bool) -> Cow<'_, str> {
    if is_plain(module, partial) {
        return Cow::Borrowed(module);
    }
    let mut out = String::with_capacity(module.len() + 2);
    out.push('"');
    for c in module.chars() {
        match c {
            // Quotes and backslashes escaped, `;` so a quoted name stays one
            // folded frame; a single quote needs nothing.
            '\'' => out.push(c),
            ';' => out.push_str("\\u{3b}"),
            _ => out.extend(c.escape_debug()),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_left_alone() {
        assert_eq!(shown("json.decoder", NameState::Full), "json.decoder");
        assert_eq!(shown("_frozen_importlib_external", NameState::Full), "_frozen_importlib_external");
        assert_eq!(shown("café", NameState::Full), "café");
    }

    #[test]
    fn odd_names_are_quoted_and_escaped() {
        assert_eq!(shown("evil\nname", NameState::Full), r#""evil\nname""#);
        assert_eq!(shown("a\tb c", NameState::Full), r#""a\tb c""#);
        assert_eq!(shown("a;b", NameState::Full), r#""a\u{3b}b""#);
        assert_eq!(shown("say \"hi\" \\", NameState::Full), r#""say \"hi\" \\""#);
        assert_eq!(shown("it's", NameState::Full), r#""it's""#);
        assert_eq!(shown("a..b", NameState::Full), r#""a..b""#);
        assert_eq!(shown("", NameState::Full), r#""""#);
        assert_eq!(shown("E 1 2 3 4 0 start - 0 1 x", NameState::Full), r#""E 1 2 3 4 0 start - 0 1 x""#);
        // A bidi override cannot reorder the line it is shown on.
        assert_eq!(shown("a\u{202e}b", NameState::Full), r#""a\u{202e}b""#);
    }

    #[test]
    fn markers_never_equal_a_real_name() {
        assert_eq!(shown("", NameState::Missing), MISSING);
        assert_ne!(shown(MISSING, NameState::Full), MISSING);
        assert_eq!(shown("numpy.cor", NameState::Cut), "numpy.cor…");
        assert_eq!(shown("numpy.", NameState::Cut), "numpy.…");
        assert_ne!(shown("numpy.cor…", NameState::Full), "numpy.cor…");
        assert_eq!(shown("a b", NameState::Cut), "\"a b\"…");
        for name in ["x\ny", "a;b", "p\tq", MISSING, "z…"] {
            let s = shown(name, NameState::Full);
            assert!(!s.contains(['\n', '\t', ';']), "{s}");
        }
    }
}
