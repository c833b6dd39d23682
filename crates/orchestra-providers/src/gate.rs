//! A provider's concurrency gate: how many of its requests may be in flight at once, shared by
//! every agent of a drive. Fixed with `max_concurrency`, else adaptive: unlimited until the
//! server answers 429, then as many as it was serving, growing back by one per round trip.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// What a [`RateLimitHook`] is told when agents start waiting for a provider's gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimited {
    /// The provider's name.
    pub provider: String,
    /// How many requests the gate lets through at once now.
    pub limit: u32,
    /// How many calls wait for the gate.
    pub waiting: u32,
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at_once = if self.limit == 1 {
            "1 request at a time".to_owned()
        } else {
            format!("{} requests at a time", self.limit)
        };
        write!(
            f,
            "provider `{}` is rate limited: {at_once}, the other calls wait their turn",
            self.provider
        )
    }
}

/// Called (cheaply, without blocking) when a provider's adaptive gate makes agents wait and its
/// limit has held for half a round trip (so not while a first wave of refusals still lowers it):
/// the first time, and again whenever it fell to three quarters of the last one reported.
#[derive(Clone)]
pub struct RateLimitHook(pub Arc<dyn Fn(&RateLimited) + Send + Sync>);

impl fmt::Debug for RateLimitHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RateLimitHook")
    }
}

impl PartialEq for RateLimitHook {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RateLimitHook {}

/// No limit (the adaptive gate before its first 429).
const UNLIMITED: usize = usize::MAX;

/// The gate of one provider client.
pub(crate) struct Gate {
    provider: String,
    fixed: bool,
    hook: Option<RateLimitHook>,
    state: Mutex<State>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("Gate")
            .field("fixed", &self.fixed)
            .field("limit", &s.limit)
            .field("in_flight", &s.in_flight)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    limit: usize,
    in_flight: usize,
    /// Successes counted towards the next growth step.
    successes: usize,
    waiters: VecDeque<oneshot::Sender<()>>,
    /// The limit last reported to the hook.
    reported: Option<usize>,
}

impl Gate {
    /// A gate of `max_concurrency` when given (at least 1), else adaptive.
    pub fn new(provider: &str, max_concurrency: Option<u32>, hook: Option<RateLimitHook>) -> Self {
        let fixed = max_concurrency.map(|n| usize::try_from(n.max(1)).unwrap_or(UNLIMITED));
        Gate {
            provider: provider.to_owned(),
            fixed: fixed.is_some(),
            hook,
            state: Mutex::new(State {
                limit: fixed.unwrap_or(UNLIMITED),
                in_flight: 0,
                successes: 0,
                waiters: VecDeque::new(),
                reported: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (every update is a few integer writes).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for room under the limit (first come, first served). Waiting is not a retry.
    pub async fn acquire(&self) -> Permit<'_> {
        let rx = {
            let mut s = self.lock();
            if s.waiters.is_empty() && s.in_flight < s.limit {
                s.in_flight += 1;
                return self.permit();
            }
            let (tx, rx) = oneshot::channel();
            s.waiters.push_back(tx);
            let waiting = s.waiters.len();
            tracing::debug!(provider = %self.provider, limit = s.limit, waiting, "waiting for the provider's gate");
            rx
        };
        let mut wait = Waiting {
            gate: self,
            rx: Some(rx),
        };
        if let Some(rx) = wait.rx.as_mut() {
            // The sender is only dropped after being used or with the gate itself.
            let _ = rx.await;
        }
        wait.rx = None;
        self.permit()
    }

    fn permit(&self) -> Permit<'_> {
        Permit { gate: Some(self) }
    }

    /// Tells the hook that calls wait under a limit that held for half a round trip, the first
    /// time and when the limit fell a lot since.
    fn report(&self, s: &mut State) {
        if self.fixed || s.limit == UNLIMITED || s.waiters.is_empty() || s.successes * 2 < s.limit {
            return;
        }
        if s.reported.is_some_and(|r| s.limit * 4 > r * 3) {
            return;
        }
        s.reported = Some(s.limit);
        let event = RateLimited {
            provider: self.provider.clone(),
            limit: u32::try_from(s.limit).unwrap_or(u32::MAX),
            waiting: u32::try_from(s.waiters.len()).unwrap_or(u32::MAX),
        };
        tracing::info!(provider = %self.provider, limit = event.limit, "{event}");
        if let Some(hook) = &self.hook {
            (hook.0)(&event);
        }
    }

    /// One request ended; `outcome` says how it went. Hands freed room to the waiters.
    fn release(&self, outcome: Outcome) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if !self.fixed {
            match outcome {
                Outcome::Refused => {
                    // What the server was serving when it refused: the requests still in
                    // flight (a measurement, not a cut: a burst of refusals converges to it
                    // rather than compounding).
                    let lowered = s.limit.min(s.in_flight).max(1);
                    if lowered < s.limit {
                        tracing::debug!(provider = %self.provider, from = s.limit, to = lowered, "rate limited: fewer requests at once");
                        s.limit = lowered;
                        s.successes = 0;
                    }
                }
                Outcome::Succeeded if s.limit != UNLIMITED => {
                    // Grow by one per round trip, and only while the limit is what holds calls
                    // back.
                    if !s.waiters.is_empty() || s.in_flight + 1 >= s.limit {
                        s.successes += 1;
                        self.report(&mut s);
                        if s.successes >= s.limit {
                            s.successes = 0;
                            s.limit += 1;
                        }
                    }
                }
                Outcome::Succeeded | Outcome::Other => {}
            }
        }
        s.wake();
    }
}

impl State {
    /// Lets waiters in while there is room.
    fn wake(&mut self) {
        while self.in_flight < self.limit {
            let Some(tx) = self.waiters.pop_front() else {
                break;
            };
            if tx.send(()).is_ok() {
                self.in_flight += 1;
            }
        }
    }
}

/// How an admitted request ended, for the adaptive limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    /// The server answered 429.
    Refused,
    /// Another error, or the call was cancelled.
    Other,
}

/// Room for one request in flight; released when dropped.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    gate: Option<&'a Gate>,
}

impl Permit<'_> {
    /// The request succeeded.
    pub fn succeeded(mut self) {
        if let Some(g) = self.gate.take() {
            g.release(Outcome::Succeeded);
        }
    }

    /// The server refused the request (429).
    pub fn refused(mut self) {
        if let Some(g) = self.gate.take() {
            g.release(Outcome::Refused);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.gate.take() {
            g.release(Outcome::Other);
        }
    }
}

/// A call waiting for the gate. If it is cancelled after being let in, the room goes on to the
/// next waiter.
struct Waiting<'a> {
    gate: &'a Gate,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.gate.release(Outcome::Other);
            } else {
                let mut s = self.gate.lock();
                s.waiters.retain(|tx| !tx.is_closed());
                s.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(g: &Gate) -> usize {
        g.lock().limit
    }

    #[tokio::test]
    async fn a_burst_of_refusals_converges_to_what_was_served() {
        let g = Gate::new("p", None, None);
        let mut permits: Vec<_> = Vec::new();
        for _ in 0..100 {
            permits.push(g.acquire().await);
        }
        assert_eq!(limit(&g), UNLIMITED, "unlimited until a 429");
        // The server serves the first 10 and refuses the other 90.
        let refused = permits.split_off(10);
        for p in refused {
            p.refused();
        }
        assert_eq!(limit(&g), 10);
        // Each refusal measures again: one of the 10 is refused, 9 are still served.
        permits.pop().unwrap().refused();
        assert_eq!(limit(&g), 9);
        drop(permits);
        // A server refusing everything brings it down to one at a time, never to zero.
        let lone = g.acquire().await;
        lone.refused();
        assert_eq!(limit(&g), 1);
    }

    #[tokio::test]
    async fn successes_grow_the_limit_by_one_per_round_trip_when_it_binds() {
        let g = Gate::new("p", None, None);
        let a = g.acquire().await;
        let b = g.acquire().await;
        let c = g.acquire().await;
        c.refused();
        assert_eq!(limit(&g), 2);
        b.succeeded();
        assert_eq!(limit(&g), 2);
        a.succeeded();
        assert_eq!(limit(&g), 2, "the gate was not full: no growth");
        let a = g.acquire().await;
        let b = g.acquire().await;
        a.succeeded();
        assert_eq!(
            limit(&g),
            3,
            "two successes with the gate full, at the limit of two"
        );
        b.succeeded();
        let a = g.acquire().await;
        a.succeeded();
        assert_eq!(limit(&g), 3, "successes below the limit do not grow it");
    }

    #[tokio::test]
    async fn waiters_get_in_first_come_first_served_and_cancelled_ones_pass_their_turn() {
        let g = Arc::new(Gate::new("p", Some(1), None));
        let first = g.acquire().await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..3 {
            let (gate, tx) = (g.clone(), tx.clone());
            tasks.spawn(async move {
                let p = gate.acquire().await;
                tx.send(i).unwrap();
                tokio::task::yield_now().await;
                p.succeeded();
            });
            // Let it queue before the next one.
            while g.lock().waiters.len() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        // A waiter that gives up does not take room from anyone.
        let cancelled =
            tokio::time::timeout(std::time::Duration::from_millis(1), g.acquire()).await;
        assert!(cancelled.is_err());
        drop(first);
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(rx.recv().await.unwrap());
        }
        assert_eq!(order, vec![0, 1, 2]);
        while tasks.join_next().await.is_some() {}
        let s = g.lock();
        assert_eq!((s.in_flight, s.limit), (0, 1));
    }

    #[tokio::test]
    async fn the_hook_hears_when_calls_wait_and_when_the_limit_falls_a_lot() {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        let hook = RateLimitHook(Arc::new(move |e: &RateLimited| {
            h.lock().unwrap().push(e.limit);
        }));
        let g = Arc::new(Gate::new("bench", None, Some(hook)));
        let mut permits = Vec::new();
        for _ in 0..8 {
            permits.push(g.acquire().await);
        }
        for p in permits.split_off(4) {
            p.refused();
        }
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..2 {
            let gate = g.clone();
            tasks.spawn(async move { drop(gate.acquire().await) });
        }
        while g.lock().waiters.len() < 2 {
            tokio::task::yield_now().await;
        }
        assert!(
            heard.lock().unwrap().is_empty(),
            "calls wait, but nothing was answered yet"
        );
        permits.pop().unwrap().succeeded();
        assert!(
            heard.lock().unwrap().is_empty(),
            "the limit of 4 held for one answer"
        );
        permits.pop().unwrap().succeeded();
        assert_eq!(
            *heard.lock().unwrap(),
            vec![4],
            "held for half a round trip"
        );
        drop(permits);
        while tasks.join_next().await.is_some() {}
        assert_eq!(
            RateLimited {
                provider: "bench".into(),
                limit: 4,
                waiting: 1
            }
            .to_string(),
            "provider `bench` is rate limited: 4 requests at a time, the other calls wait their turn"
        );
    }
}
