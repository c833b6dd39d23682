//! Costs and prompt-cache counts as `run` and `status` show them: a cost that is not known is
//! said to be unknown, never shown as `$0`.

use orchestra_store::CostTally;

/// A cost as people read it: `$0.0123`, or `cost unknown` (never `$0` for a model without a
/// price).
pub(crate) fn cost(usd: Option<f64>) -> String {
    usd.map_or_else(|| "cost unknown".to_owned(), orchestra_runtime::usd)
}

/// What runs cost in all: `$0.0123`, `cost unknown` when no run's cost is known, and the
/// known part marked as such when only some runs' costs are (`$0.0123 (partial: 2 runs
/// without a price)`).
pub(crate) fn total_cost(t: &CostTally) -> String {
    let shown = cost(t.usd());
    if t.is_partial() {
        let runs = if t.unpriced_runs == 1 { "run" } else { "runs" };
        format!(
            "{shown} (partial: {} {runs} without a price)",
            t.unpriced_runs
        )
    } else {
        shown
    }
}

/// A total in a table column: `$0.0123`, `unknown`, or `$0.0123+` when runs without a price
/// are left out.
pub(crate) fn cost_cell(t: &CostTally) -> String {
    match t.usd() {
        None => "unknown".to_owned(),
        Some(usd) if t.is_partial() => format!("{}+", orchestra_runtime::usd(usd)),
        Some(usd) => orchestra_runtime::usd(usd),
    }
}

/// The cache part of a run's tokens, when it used the prompt cache: `  cache 900 read / 200
/// written`.
pub(crate) fn cache_text(read: u64, written: u64) -> String {
    if read == 0 && written == 0 {
        String::new()
    } else {
        format!("  cache {read} read / {written} written")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_costs_are_never_zero_and_partial_ones_say_so() {
        assert_eq!(cost(None), "cost unknown");
        assert_eq!(cost(Some(0.0123)), "$0.0123");
        let mut t = CostTally::default();
        assert_eq!(total_cost(&t), "$0", "no run, nothing spent");
        t.add(None);
        assert_eq!(total_cost(&t), "cost unknown");
        t.add(Some(0.5));
        t.add(None);
        assert_eq!(total_cost(&t), "$0.5000 (partial: 2 runs without a price)");
        assert_eq!(cost_cell(&t), "$0.5000+");
        assert_eq!(cache_text(0, 0), "");
        assert_eq!(cache_text(900, 20), "  cache 900 read / 20 written");
    }
}
