//! Quiescence (`wait = "min:max"`), per template, as upstream (B.4.4): the
//! first change arms a `min` timer and a deadline `now + max`; each later
//! change pushes the timer back to `now + min` but never past the deadline.
//! When it fires the template renders and the timer is disarmed.
//!
//! Pure: the caller passes the clock, so tests need no sleeping.

use tokio::time::Instant;

use crate::config::Wait;

/// One template's quiescence timer.
#[derive(Debug, Clone)]
pub struct Quiescence {
    wait: Wait,
    deadline: Option<Instant>,
    fire_at: Option<Instant>,
}

impl Quiescence {
    /// A disarmed timer.
    pub fn new(wait: Wait) -> Quiescence {
        Quiescence {
            wait,
            deadline: None,
            fire_at: None,
        }
    }

    /// Records a data change at `now`; returns when to render.
    pub fn change(&mut self, now: Instant) -> Instant {
        let deadline = *self.deadline.get_or_insert(now + self.wait.max);
        let at = (now + self.wait.min).min(deadline);
        self.fire_at = Some(at);
        at
    }

    /// When the timer fires, if armed.
    pub fn next(&self) -> Option<Instant> {
        self.fire_at
    }

    /// Whether the timer is armed and due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.fire_at.is_some_and(|t| t <= now)
    }

    /// Disarms after the render.
    pub fn fired(&mut self) {
        self.fire_at = None;
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn min_resets_until_max() {
        let t0 = Instant::now();
        let mut q = Quiescence::new(Wait {
            min: ms(100),
            max: ms(250),
        });
        assert_eq!(q.next(), None);
        assert_eq!(q.change(t0), t0 + ms(100));
        assert!(!q.due(t0 + ms(99)));
        // A change 80 ms later pushes the render back to +180.
        assert_eq!(q.change(t0 + ms(80)), t0 + ms(180));
        // Another at +170 would give +270: capped at the deadline +250.
        assert_eq!(q.change(t0 + ms(170)), t0 + ms(250));
        assert!(q.due(t0 + ms(250)));
        q.fired();
        assert_eq!(q.next(), None);
        // The next change starts a new window.
        assert_eq!(q.change(t0 + ms(400)), t0 + ms(500));
    }

    #[test]
    fn zero_wait_fires_at_once() {
        let t0 = Instant::now();
        let mut q = Quiescence::new(Wait {
            min: Duration::ZERO,
            max: Duration::ZERO,
        });
        assert_eq!(q.change(t0), t0);
        assert!(q.due(t0));
    }
}
