//! A byte cursor over tracer output, shared by the stream and capture
//! readers: fields of decimal digits, length-prefixed module names that may
//! hold any byte, and line numbers that count the newlines inside names.

use super::NameState;

/// Why a piece of tracer output could not be read; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("line {line}: unexpected line {text:?}")]
    UnexpectedLine { line: usize, text: String },
    #[error("line {line}: bad {field} field {value:?}")]
    BadField { line: usize, field: &'static str, value: String },
    #[error("line {line}: the line ends early, in its {field} field")]
    Truncated { line: usize, field: &'static str },
    #[error("line {line}: module name of {len} bytes is not followed by {expected} (bad length?)")]
    BadLength { line: usize, len: usize, expected: &'static str },
    #[error("line {line}: module name is not valid UTF-8")]
    BadUtf8 { line: usize },
}

impl SyntaxError {
    pub fn line(&self) -> usize {
        match self {
            SyntaxError::UnexpectedLine { line, .. }
            | SyntaxError::BadField { line, .. }
            | SyntaxError::Truncated { line, .. }
            | SyntaxError::BadLength { line, .. }
            | SyntaxError::BadUtf8 { line } => *line,
        }
    }
}

/// Position in the text, and the line it is on.
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0, line: 1 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn line(&self) -> usize {
        self.line
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }

    /// Whether what follows starts with `prefix`; consumes it if so.
    pub fn eat(&mut self, prefix: &[u8]) -> bool {
        if self.rest().starts_with(prefix) {
            self.pos += prefix.len();
            true
        } else {
            false
        }
    }

    /// Consumes the rest of the line, without its `\n` (and `\r`).
    pub fn plain_line(&mut self) -> &'a [u8] {
        let rest = self.rest();
        let end = rest.iter().position(|&b| b == b'\n');
        self.pos += end.map_or(rest.len(), |e| e + 1);
        self.line += 1;
        let text = &rest[..end.unwrap_or(rest.len())];
        text.strip_suffix(b"\r").unwrap_or(text)
    }

    /// Consumes a field ended by `sep` on the current line (the separator
    /// too; a separator ending in `\n` ends the line).
    pub fn field(&mut self, name: &'static str, sep: &[u8]) -> Result<&'a [u8], SyntaxError> {
        let rest = self.rest();
        // Up to and including the line's newline (a separator may end with it).
        let limit = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |e| e + 1);
        match rest[..limit].windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                self.pos += i + sep.len();
                self.line += sep.iter().filter(|&&b| b == b'\n').count();
                Ok(&rest[..i])
            }
            None => Err(SyntaxError::Truncated { line: self.line, field: name }),
        }
    }

    /// A field of plain decimal digits (no sign, no spaces).
    pub fn number<T: std::str::FromStr>(&mut self, name: &'static str, sep: &[u8]) -> Result<T, SyntaxError> {
        let line = self.line;
        let raw = self.field(name, sep)?;
        parse_number(raw).ok_or_else(|| SyntaxError::BadField { line, field: name, value: lossy(raw) })
    }

    /// `len` raw bytes of a module name, then `after` (a `..` trailer that
    /// newer bpftrace prints after a cut string is accepted before it).
    pub fn name(&mut self, len: usize, state: NameState, after: &'static [u8]) -> Result<String, SyntaxError> {
        let line = self.line;
        let rest = self.rest();
        if rest.len() < len {
            return Err(SyntaxError::Truncated { line, field: "module name" });
        }
        let (raw, tail) = rest.split_at(len);
        let trailer =
            if state == NameState::Cut && tail.starts_with(b"..") && tail[2..].starts_with(after) { 2 } else { 0 };
        if !tail[trailer..].starts_with(after) {
            if tail.len() < after.len() {
                return Err(SyntaxError::Truncated { line, field: "end of the module name" });
            }
            let expected = if after == b"\n" { "a newline" } else { "the record's end" };
            return Err(SyntaxError::BadLength { line, len, expected });
        }
        self.pos += len + trailer + after.len();
        self.line += raw.iter().filter(|&&b| b == b'\n').count() + after.iter().filter(|&&b| b == b'\n').count();
        utf8_name(raw, state).ok_or(SyntaxError::BadUtf8 { line })
    }
}

pub fn parse_number<T: std::str::FromStr>(raw: &[u8]) -> Option<T> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

pub fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// CPython hands the probe UTF-8; a cut may split the last character, which
/// is then dropped (the name is marked cut).
fn utf8_name(raw: &[u8], state: NameState) -> Option<String> {
    match std::str::from_utf8(raw) {
        Ok(s) => Some(s.to_owned()),
        Err(e) if state == NameState::Cut && e.error_len().is_none() => {
            Some(std::str::from_utf8(&raw[..e.valid_up_to()]).ok()?.to_owned())
        }
        Err(_) => None,
    }
}

/// bpftrace's `Attaching 3 probes...` (0.17-0.23) or `Attached 3 probes`
/// (0.24+, on stderr, but a user may have merged it in).
pub fn is_attach_line(text: &[u8]) -> bool {
    let digits = |rest: &[u8]| rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if let Some(rest) = text.strip_prefix(b"Attaching ") {
        let n = digits(rest);
        return n > 0 && matches!(&rest[n..], b" probes..." | b" probe...");
    }
    if let Some(rest) = text.strip_prefix(b"Attached ") {
        let n = digits(rest);
        return n > 0 && matches!(&rest[n..], b" probes" | b" probe");
    }
    false
}

/// bpftrace's `Lost 12 events`.
pub fn lost_events(text: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(text).ok()?;
    s.strip_prefix("Lost ")?.strip_suffix(" events")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_may_hold_any_byte_and_lines_are_counted() {
        let mut c = Cursor::new(b"a\nb c\nrest");
        assert_eq!(c.name(5, NameState::Full, b"\n").unwrap(), "a\nb c");
        assert_eq!(c.line(), 3);
        assert_eq!(c.rest(), b"rest");
        let mut c = Cursor::new(b"abc..)\n");
        assert_eq!(c.name(3, NameState::Cut, b")\n").unwrap(), "abc");
        let mut c = Cursor::new(b"abc..)\n");
        assert!(matches!(c.name(3, NameState::Full, b")\n"), Err(SyntaxError::BadLength { .. })));
    }

    #[test]
    fn recognises_tracer_lines() {
        assert!(is_attach_line(b"Attaching 2 probes..."));
        assert!(is_attach_line(b"Attaching 1 probe..."));
        assert!(is_attach_line(b"Attached 4 probes"));
        assert!(!is_attach_line(b"Attaching many probes..."));
        assert_eq!(lost_events(b"Lost 12 events"), Some(12));
        assert_eq!(lost_events(b"Lost x events"), None);
    }

    #[test]
    fn fields_and_numbers() {
        let mut c = Cursor::new(b"12 x, 7\n");
        assert_eq!(c.number::<u64>("a", b" ").unwrap(), 12);
        assert!(matches!(c.number::<u64>("b", b", "), Err(SyntaxError::BadField { field: "b", .. })));
        assert!(matches!(c.field("c", b" "), Err(SyntaxError::Truncated { .. })));
    }
}
