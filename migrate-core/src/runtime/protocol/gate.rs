//! The budget gate: the one place a run waits. Every retry, re-read, poll and reconnect asks it
//! for permission; it sleeps with jittered backoff and refuses once the wait budget is spent. The
//! protocol's loops end every round that did not finish the run with [`Gate::pass`], so no path
//! can retry without it.

use std::time::{Duration, Instant};

use super::super::driver::Driver;

/// The longest wait between two retries after an error.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait between two polls of a busy migration lock, or two re-reads of a history
/// that keeps changing.
pub(super) const LOCK_POLL_CAP: Duration = Duration::from_millis(250);

/// Why the protocol goes round again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Round {
    /// This run applied a migration (or found one applied by another run): go on at once, with
    /// the backoff reset.
    Progress,
    /// Another process holds the migration lock: poll often, so replicas finish soon after it.
    Busy,
    /// The history changed after it was read: read it again, at once the first time after
    /// progress, with backoff after that (a history that never reads back the same must not spin).
    Stale,
    /// A group of migrations failed and is applied one per transaction from now on: at once.
    Ungroup,
    /// A lock timeout, deadlock or serialization failure rolled the migration back.
    Retry,
    /// The connection was lost: reconnect.
    Reconnect,
}

/// The wait budget ran out; `waited` is the time since the run began.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spent {
    pub waited: Duration,
}

/// The run's budget and backoff.
pub(super) struct Gate {
    started: Instant,
    /// `None` when the budget is too long to be represented (no limit).
    deadline: Option<Instant>,
    backoff: Backoff,
    /// Whether the next stale history may be read again without a pause.
    free_reread: bool,
}

impl Gate {
    pub fn new(budget: Duration) -> Gate {
        let started = Instant::now();
        Gate {
            started,
            deadline: started.checked_add(budget),
            backoff: Backoff::new(),
            free_reread: true,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The pause before the next round, or [`Spent`] once the budget is used. The last pause is
    /// cut to what remains, and one more round is allowed at the deadline itself.
    pub fn pause(&mut self, round: Round) -> Result<Duration, Spent> {
        let pause = match round {
            Round::Progress => {
                self.backoff.reset();
                self.free_reread = true;
                Duration::ZERO
            }
            Round::Ungroup => Duration::ZERO,
            Round::Stale if std::mem::take(&mut self.free_reread) => Duration::ZERO,
            Round::Stale | Round::Busy => self.backoff.next_delay().min(LOCK_POLL_CAP),
            Round::Retry | Round::Reconnect => self.backoff.next_delay().min(MAX_BACKOFF),
        };
        let now = Instant::now();
        match self.deadline {
            Some(deadline) if now >= deadline && round != Round::Progress => Err(Spent {
                waited: self.elapsed(),
            }),
            Some(deadline) => Ok(pause.min(deadline.saturating_duration_since(now))),
            None => Ok(pause),
        }
    }

    /// [`Gate::pause`], then the sleep on `driver`.
    pub async fn pass<D: Driver>(&mut self, driver: &D, round: Round) -> Result<(), Spent> {
        let pause = self.pause(round)?;
        if !pause.is_zero() {
            driver.sleep(pause).await;
        }
        Ok(())
    }
}

/// Jittered exponential backoff: 100 ms doubling to 5 s, each delay between 50 % and 100 %.
struct Backoff {
    attempt: u32,
    seed: u64,
}

impl Backoff {
    fn new() -> Backoff {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Backoff {
            attempt: 0,
            seed: u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1,
        }
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next_delay(&mut self) -> Duration {
        let cap = 100u64.saturating_mul(1 << self.attempt.min(6)).min(5_000);
        self.attempt += 1;
        // xorshift64: jitter only, no need for a cryptographic generator.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        Duration::from_millis(cap / 2 + self.seed % (cap / 2 + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_that_keeps_changing_is_reread_at_once_only_after_progress() {
        let mut gate = Gate::new(Duration::from_secs(60));
        assert_eq!(gate.pause(Round::Stale).unwrap(), Duration::ZERO);
        for _ in 0..20 {
            let pause = gate.pause(Round::Stale).unwrap();
            assert!(
                pause >= Duration::from_millis(50) && pause <= LOCK_POLL_CAP,
                "{pause:?}"
            );
        }
        assert_eq!(gate.pause(Round::Progress).unwrap(), Duration::ZERO);
        assert_eq!(gate.pause(Round::Stale).unwrap(), Duration::ZERO);
    }

    #[test]
    fn every_round_but_progress_is_refused_once_the_budget_is_spent() {
        let mut gate = Gate::new(Duration::ZERO);
        for round in [
            Round::Busy,
            Round::Stale,
            Round::Ungroup,
            Round::Retry,
            Round::Reconnect,
        ] {
            assert!(gate.pause(round).is_err(), "{round:?}");
        }
        assert_eq!(gate.pause(Round::Progress).unwrap(), Duration::ZERO);
    }

    #[test]
    fn pauses_are_cut_to_the_budget_left_and_an_endless_budget_has_no_deadline() {
        let mut gate = Gate::new(Duration::from_millis(30));
        for _ in 0..5 {
            match gate.pause(Round::Retry) {
                Ok(pause) => assert!(pause <= Duration::from_millis(30), "{pause:?}"),
                Err(spent) => assert!(spent.waited >= Duration::from_millis(30)),
            }
        }
        let mut endless = Gate::new(Duration::MAX);
        for _ in 0..10 {
            assert!(endless.pause(Round::Retry).unwrap() <= MAX_BACKOFF);
        }
    }

    #[test]
    fn the_backoff_doubles_to_its_cap_with_jitter() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..10).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays[9] >= Duration::from_millis(2500) && delays[9] <= MAX_BACKOFF);
    }
}
