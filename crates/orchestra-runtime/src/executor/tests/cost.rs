//! The executor's cost budget: `max_cost` against the known costs of the recorded runs.

use std::sync::Arc;

use orchestra_store::MemoryStore;

use super::{FnRunner, Harness, NoRouter, diamond, limits, says};
use crate::outcome::{Finish, LimitSource, StopLimit};
use crate::runner::NodeResult;

#[tokio::test]
async fn max_cost_stops_after_the_step_that_crossed_it_and_a_higher_limit_goes_on() {
    let h = Harness::new(Box::new(MemoryStore::new()), diamond());
    let mut pos = h.start("cost", &NoRouter).await;
    // Step 1 runs a and b ($0.02 each), step 2 c, whose model has no price: its cost is
    // unknown and counts as no dollars.
    let runner = FnRunner::new(|c| {
        Ok(NodeResult {
            cost_usd: (&*c.agent != "c").then_some(0.02),
            ..says(&c.agent)
        })
    });
    let mut lim = limits(3);
    lim.max_cost = Some(0.01);
    let exec = h.executor("cost", runner.clone(), Arc::new(NoRouter), lim);
    let finish = exec.run(&mut pos).await.unwrap();
    assert_eq!(
        finish,
        Finish::Stopped {
            limit: StopLimit::MaxCost {
                limit: 0.01,
                used: 0.04,
                source: LimitSource::Pipeline,
            }
        }
    );
    assert_eq!(
        pos.sched.step, 1,
        "stopped after step 1 (a and b), which crossed it"
    );
    assert_eq!(runner.calls("c"), 0);
    // What a resume restores: the cost recorded with the runs.
    let mut pos = h.restore("cost", 1).await;
    assert_eq!((pos.cost.known_usd, pos.cost.priced_runs), (0.04, 2));
    let mut lim = limits(3);
    lim.max_cost = Some(1.0);
    let exec = h.executor("cost", runner.clone(), Arc::new(NoRouter), lim);
    let finish = exec.run(&mut pos).await.unwrap();
    assert_eq!(finish, Finish::Completed { warnings: vec![] });
    assert!((pos.cost.known_usd - 0.04).abs() < 1e-12, "{:?}", pos.cost);
    assert_eq!((pos.cost.priced_runs, pos.cost.unpriced_runs), (2, 1));
    assert!(pos.cost.is_partial());
    let runs = h.store.call(|s| s.node_runs("cost")).await.unwrap();
    let costs: Vec<(&str, Option<f64>)> =
        runs.iter().map(|r| (r.node.as_str(), r.cost_usd)).collect();
    assert_eq!(costs, [("a", Some(0.02)), ("b", Some(0.02)), ("c", None)]);
}
