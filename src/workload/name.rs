//! Python module names: what a manifest may call a module.
//!
//! A manifest describes modules that `import` statements could reach, so a
//! name must be a dotted sequence of Python identifiers (`pkg.sub.leaf`).
//! Built-in scenarios may bypass this check on purpose: CPython's probes see
//! whatever string reached `__import__`, spaces and newlines included.

use thiserror::Error;

/// Why a string is not a valid dotted module name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("module name is empty")]
    Empty,
    #[error("module name {0:?} has an empty component (leading, trailing or double dot)")]
    EmptyComponent(String),
    #[error("module name {name:?}: component {component:?} is not a Python identifier")]
    NotIdentifier { name: String, component: String },
}

/// Checks that `name` is a dotted Python name such as `xml.etree.ElementTree`.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    for component in name.split('.') {
        if component.is_empty() {
            return Err(NameError::EmptyComponent(name.to_owned()));
        }
        if !is_identifier(component) {
            return Err(NameError::NotIdentifier { name: name.to_owned(), component: component.to_owned() });
        }
    }
    Ok(())
}

/// Python identifiers: a letter or underscore, then letters, digits or
/// underscores (Unicode letters allowed, as in Python 3).
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// The parent package of a dotted name (`a.b` for `a.b.c`), as CPython's
/// `name.rpartition('.')[0]`.
pub fn parent(name: &str) -> Option<&str> {
    name.rfind('.').map(|i| &name[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dotted_identifiers() {
        for ok in ["os", "_io", "xml.etree.ElementTree", "pkg.sub.leaf", "été.ünïcode", "a1.b_2"] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_what_import_statements_cannot_name() {
        assert_eq!(validate(""), Err(NameError::Empty));
        for bad in [".a", "a.", "a..b"] {
            assert!(matches!(validate(bad), Err(NameError::EmptyComponent(_))), "{bad}");
        }
        for bad in ["1a", "a-b", "a b", "a.b c", "a\nb", "pkg.2x"] {
            assert!(matches!(validate(bad), Err(NameError::NotIdentifier { .. })), "{bad}");
        }
    }

    #[test]
    fn parent_is_rpartition() {
        assert_eq!(parent("a.b.c"), Some("a.b"));
        assert_eq!(parent("a"), None);
    }
}
