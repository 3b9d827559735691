//! Figures in the Prometheus text format, as a master's `GET /metrics` serves them.
//!
//! Owns the format only (HELP, TYPE and value lines; a name ending in `_total` is a
//! counter, any other a gauge). It must not gather figures: each owner passes its own.

/// One figure: its name after the prefix, what it means, and its value.
pub type Figure<'a> = (&'a str, &'a str, u64);

/// `figures` as Prometheus text, each named `<prefix>_<name>`.
pub fn prometheus_text(prefix: &str, figures: &[Figure<'_>]) -> String {
    let mut text = String::new();
    for (name, help, value) in figures {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        text.push_str(&format!(
            "# HELP {prefix}_{name} {help}\n# TYPE {prefix}_{name} {kind}\n{prefix}_{name} {value}\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_are_typed_by_their_names() {
        let text = prometheus_text(
            "rafter_x",
            &[("held_bytes", "bytes held", 7), ("reads_total", "reads", 3)],
        );
        assert_eq!(
            text,
            "# HELP rafter_x_held_bytes bytes held\n# TYPE rafter_x_held_bytes gauge\n\
             rafter_x_held_bytes 7\n# HELP rafter_x_reads_total reads\n\
             # TYPE rafter_x_reads_total counter\nrafter_x_reads_total 3\n"
        );
    }
}
