//! Times written for people: three significant digits or so, in the unit
//! that keeps the number short, so columns of very different imports (a
//! 300 ns built-in, a 2 s scientific stack) stay readable side by side.

/// `412 ns`, `52.3 µs`, `529 µs`, `13.61 ms`, `1.24 s`.
pub fn human(ns: u64) -> String {
    let n = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 100_000 {
        format!("{:.1} µs", n / 1e3)
    } else if ns < 1_000_000 {
        format!("{:.0} µs", n / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", n / 1e6)
    } else {
        format!("{:.2} s", n / 1e9)
    }
}

/// A change: `+1.20 ms`, `-529 µs`, `0 ns`.
pub fn signed(delta_ns: i64) -> String {
    let sign = match delta_ns {
        d if d > 0 => "+",
        d if d < 0 => "-",
        _ => "",
    };
    format!("{sign}{}", human(delta_ns.unsigned_abs()))
}

/// Milliseconds, for JSON and for limits given in ms.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// A relative change in percent, `None` from zero.
pub fn percent(base_ns: u64, new_ns: u64) -> Option<f64> {
    (base_ns > 0).then(|| (new_ns as f64 - base_ns as f64) / base_ns as f64 * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_a_short_unit() {
        assert_eq!(human(412), "412 ns");
        assert_eq!(human(52_340), "52.3 µs");
        assert_eq!(human(529_400), "529 µs");
        assert_eq!(human(13_612_000), "13.61 ms");
        assert_eq!(human(1_240_000_000), "1.24 s");
        assert_eq!(signed(-529_400), "-529 µs");
        assert_eq!(signed(1_200_000), "+1.20 ms");
        assert_eq!(signed(0), "0 ns");
        assert_eq!(percent(200, 250), Some(25.0));
        assert_eq!(percent(0, 250), None);
    }
}
