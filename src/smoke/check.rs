//! One smoke check and its verdict. Every check says what it looked at;
//! a failing one says what is wrong and, when tracing is impossible, how to
//! fix it, so an operator can act on the report alone.

use serde::Serialize;
use std::time::{Duration, Instant};

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Tracing works but gave wrong results (exit 1).
    Fail,
    /// Tracing cannot work here (exit 2).
    Impossible,
    /// Not run because an earlier check made it pointless.
    Skipped,
}

impl Status {
    /// The label of the text report.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Impossible => "NOGO",
            Status::Skipped => "SKIP",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `group/name`, e.g. `environment/bpftrace`, `live/refpkg/events`.
    pub name: String,
    pub status: Status,
    /// One line: what was found.
    pub summary: String,
    /// Evidence: the diff, the failed conditions, bpftrace's complaints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// Commands or actions that fix an impossible check.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixes: Vec<String>,
    /// Serialized as `duration_ms`.
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

impl Check {
    pub fn new(name: impl Into<String>, status: Status, summary: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            status,
            summary: summary.into(),
            details: Vec::new(),
            fixes: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    pub fn pass(name: impl Into<String>, summary: impl Into<String>) -> Self {
        Check::new(name, Status::Pass, summary)
    }

    pub fn fail(name: impl Into<String>, summary: impl Into<String>) -> Self {
        Check::new(name, Status::Fail, summary)
    }

    pub fn impossible(name: impl Into<String>, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Check::new(name, Status::Impossible, summary).with_fix(fix)
    }

    pub fn skipped(name: impl Into<String>, why: impl Into<String>) -> Self {
        Check::new(name, Status::Skipped, why)
    }

    pub fn with_details(mut self, details: impl IntoIterator<Item = String>) -> Self {
        self.details.extend(details);
        self
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fixes.push(fix.into());
        self
    }

    /// Stamps the time spent since `since`.
    pub fn timed(mut self, since: Instant) -> Self {
        self.duration = since.elapsed();
        self
    }

    /// The group of the name (`environment`, `probes`, `live`, `python`).
    pub fn group(&self) -> &str {
        self.name.split('/').next().unwrap_or(&self.name)
    }
}

/// The overall verdict and exit code: impossible beats wrong beats good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Exit 0: every check passed.
    Ok,
    /// Exit 1: tracing works but results are wrong.
    Wrong,
    /// Exit 2: tracing is impossible here.
    Impossible,
}

impl Verdict {
    pub fn of(checks: &[Check]) -> Verdict {
        if checks.iter().any(|c| c.status == Status::Impossible) {
            Verdict::Impossible
        } else if checks.iter().any(|c| c.status == Status::Fail) {
            Verdict::Wrong
        } else {
            Verdict::Ok
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::Wrong => 1,
            Verdict::Impossible => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_beats_wrong_beats_ok() {
        let pass = Check::pass("a/b", "fine");
        let fail = Check::fail("a/c", "wrong");
        let nogo = Check::impossible("a/d", "no", "fix it");
        let skip = Check::skipped("a/e", "later");
        assert_eq!(Verdict::of(&[pass.clone(), skip.clone()]), Verdict::Ok);
        assert_eq!(Verdict::of(&[pass.clone(), fail.clone()]).exit_code(), 1);
        assert_eq!(Verdict::of(&[fail, nogo.clone(), pass]).exit_code(), 2);
        assert_eq!(nogo.fixes, ["fix it"]);
        assert_eq!(skip.group(), "a");
    }
}
