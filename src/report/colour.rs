//! Colour in the reports people read: on terminals only, and never when
//! `NO_COLOR` is set (or `CLICOLOR=0`, `TERM=dumb`); `CLICOLOR_FORCE`
//! forces it. The decision is anstream's, the same one clap makes for its
//! help text, so importprobe's colour follows one rule everywhere.

use clap::builder::styling::{AnsiColor, Style};

/// Whether a report written to stdout should be coloured.
pub fn for_stdout() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// Paints text, or leaves it alone when colour is off.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    fn style(self, style: Style, text: &str) -> String {
        if self.0 && !text.is_empty() {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_owned()
        }
    }

    /// Headings.
    pub fn bold(self, text: &str) -> String {
        self.style(Style::new().bold(), text)
    }

    /// Failures and lost data.
    pub fn bad(self, text: &str) -> String {
        self.style(AnsiColor::Red.on_default().bold(), text)
    }

    /// Times that are only lower bounds, anomalies.
    pub fn warn(self, text: &str) -> String {
        self.style(AnsiColor::Yellow.on_default(), text)
    }

    /// The slowest imports.
    pub fn hot(self, text: &str) -> String {
        self.style(AnsiColor::Magenta.on_default(), text)
    }

    /// Things of little weight (cached lines).
    pub fn dim(self, text: &str) -> String {
        self.style(Style::new().dimmed(), text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_means_plain_text() {
        assert_eq!(Paint(false).bad("x"), "x");
        assert_eq!(Paint(true).bad("x"), "\u{1b}[1m\u{1b}[31mx\u{1b}[0m");
        assert_eq!(Paint(true).dim(""), "");
    }
}
