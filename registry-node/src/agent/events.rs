//! User events seen by this agent (`/v1/event/*`): fired here or received by
//! gossip; the last 256 are kept, as in Consul.

use std::collections::VecDeque;
use std::sync::Mutex;

use registry_api::UserEvent;
use tokio::sync::watch;

/// How many events an agent remembers.
const KEEP: usize = 256;

/// The event buffer and a channel that ticks on every new event.
pub struct EventLog {
    events: Mutex<VecDeque<UserEvent>>,
    tick: watch::Sender<u64>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            events: Mutex::new(VecDeque::new()),
            tick: watch::channel(0).0,
        }
    }
}

/// Index of an event list as Consul computes it: derived from the newest event's
/// ID, so it changes exactly when a new matching event arrives.
pub fn list_index(events: &[UserEvent]) -> u64 {
    let Some(last) = events.last() else { return 1 };
    let hex: String = last
        .id
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(16)
        .collect();
    u64::from_str_radix(&hex, 16).unwrap_or(1).max(1)
}

impl EventLog {
    /// Records an event fired here or received by gossip (which assigned its
    /// Lamport time); an event already recorded is ignored.
    pub fn record(&self, event: UserEvent) {
        let mut events = self.events.lock().expect("events lock");
        if events.iter().any(|e| e.id == event.id) {
            return;
        }
        let ltime = event.ltime;
        events.push_back(event);
        while events.len() > KEEP {
            events.pop_front();
        }
        drop(events);
        self.tick.send_replace(ltime);
    }

    /// Events, oldest first, optionally only those with `name`.
    pub fn list(&self, name: Option<&str>) -> Vec<UserEvent> {
        let events = self.events.lock().expect("events lock");
        events
            .iter()
            .filter(|e| name.is_none_or(|n| e.name == n))
            .cloned()
            .collect()
    }

    /// A receiver that changes when an event is pushed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tick.subscribe()
    }
}
