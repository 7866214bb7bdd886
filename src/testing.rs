//! The rule every test that traces follows, unit and integration tests
//! alike: when the host cannot trace, say why on stderr (`SKIP: reason`)
//! and do nothing; but when `IMPORTPROBE_REQUIRE_TRACING=1` (CI sets it),
//! a skip is a failure. "Cannot trace" is decided by the same preflight
//! checks `importprobe trace` runs.

/// The environment variable that turns a skip into a failure.
pub const REQUIRE_TRACING: &str = "IMPORTPROBE_REQUIRE_TRACING";

/// Why tracing is impossible here (`importprobe trace`'s preflight), if it is.
pub fn tracing_blocker() -> Option<String> {
    let problems = crate::tracer::preflight::check_environment();
    (!problems.is_empty()).then(|| problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))
}

/// True if the test may trace; otherwise [`skip`]s.
pub fn can_trace() -> bool {
    match tracing_blocker() {
        None => true,
        Some(reason) => skip(&reason),
    }
}

/// Prints `SKIP: reason` and returns false, or panics when tracing is
/// required. Written to stderr directly, not with `eprintln!`, so the test
/// harness does not capture it: a skip must be visible.
pub fn skip(reason: &str) -> bool {
    if std::env::var(REQUIRE_TRACING).as_deref() == Ok("1") {
        panic!("tracing required ({REQUIRE_TRACING}=1) but impossible: {reason}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
    false
}
