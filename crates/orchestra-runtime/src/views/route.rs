//! Routing decisions as people read them, in progress lines, `show` and reports.

/// A routing decision as people read it: `critic -> revise -> security-reviewer,
/// architecture-reviewer (loop 1/2)`; when the loop bound was reached, `(max_loops 2 reached)`.
pub fn route_line(
    from: &str,
    decision: Option<&str>,
    targets: &[String],
    loop_round: Option<u32>,
    loop_max: Option<u32>,
) -> String {
    let mut s = format!("{from} -> ");
    if let Some(d) = decision {
        s.push_str(&format!("{d} -> "));
    }
    if targets.is_empty() {
        s.push_str("(nothing)");
    } else {
        s.push_str(&targets.join(", "));
    }
    match (loop_round, loop_max) {
        (Some(r), Some(m)) => s.push_str(&format!(" (loop {r}/{m})")),
        (None, Some(m)) => s.push_str(&format!(" (max_loops {m} reached)")),
        _ => {}
    }
    s
}

#[cfg(test)]
mod tests {
    use super::route_line;

    #[test]
    fn routing_reads_as_a_decision_with_its_loop() {
        let to = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            route_line(
                "critic",
                Some("revise"),
                &to(&["security-reviewer", "architecture-reviewer"]),
                Some(1),
                Some(2)
            ),
            "critic -> revise -> security-reviewer, architecture-reviewer (loop 1/2)"
        );
        assert_eq!(
            route_line(
                "critic",
                Some("revise"),
                &to(&["synthesizer"]),
                None,
                Some(2)
            ),
            "critic -> revise -> synthesizer (max_loops 2 reached)"
        );
        assert_eq!(route_line("a", None, &to(&["END"]), None, None), "a -> END");
        assert_eq!(
            route_line("a", Some("x"), &[], None, None),
            "a -> x -> (nothing)"
        );
    }
}
