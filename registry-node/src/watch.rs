//! Fine-grained notification for blocking queries.
//!
//! A blocking query subscribes to the [`WatchKey`]s its view is made of *before*
//! it reads the store, then waits until one of them is touched by an applied
//! write. One `tokio::sync::watch` channel exists per key that has subscribers,
//! so 10,000 watchers of one key share one channel and one wake-up, and a write
//! to key `a` never wakes a watcher of key `b`.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::select_all;
use tokio::sync::watch;

use crate::state::WatchKey;

/// Sweep channels without subscribers after this many new subscriptions.
const SWEEP_EVERY: usize = 4096;

/// Channels per watch key. Prefix subscriptions live in their own map so a KV
/// write can find them by walking the prefixes of its key.
#[derive(Default)]
pub struct Notifier {
    inner: Mutex<Channels>,
}

#[derive(Default)]
struct Channels {
    keys: HashMap<WatchKey, watch::Sender<()>>,
    prefixes: HashMap<String, watch::Sender<()>>,
    since_sweep: usize,
}

/// Receivers of one blocking query.
pub struct Subscription {
    receivers: Vec<watch::Receiver<()>>,
}

impl Subscription {
    /// Resolves when any subscribed key is touched after the subscription was made.
    pub async fn changed(&mut self) {
        match self.receivers.len() {
            0 => std::future::pending().await,
            1 => {
                // The sender may be swept only when it has no receivers, so an error cannot happen
                // while we hold one; treat it as a change anyway.
                let _ = self.receivers[0].changed().await;
            }
            _ => {
                let futures = self.receivers.iter_mut().map(|r| Box::pin(r.changed()));
                let _ = select_all(futures).await;
            }
        }
    }
}

impl Notifier {
    /// Subscribes to a set of keys; `KvPrefix` keys match every key under the prefix.
    pub fn subscribe(&self, keys: &[WatchKey]) -> Subscription {
        let mut ch = self.inner.lock().expect("notifier lock");
        ch.since_sweep += 1;
        if ch.since_sweep >= SWEEP_EVERY {
            ch.since_sweep = 0;
            ch.keys.retain(|_, tx| tx.receiver_count() > 0);
            ch.prefixes.retain(|_, tx| tx.receiver_count() > 0);
        }
        let receivers = keys
            .iter()
            .map(|key| match key {
                WatchKey::KvPrefix(prefix) => ch
                    .prefixes
                    .entry(prefix.clone())
                    .or_insert_with(|| watch::channel(()).0)
                    .subscribe(),
                other => ch
                    .keys
                    .entry(other.clone())
                    .or_insert_with(|| watch::channel(()).0)
                    .subscribe(),
            })
            .collect();
        Subscription { receivers }
    }

    /// Wakes the subscribers of every touched key (and of every prefix of touched KV keys).
    pub fn notify(&self, changes: &[WatchKey]) {
        if changes.is_empty() {
            return;
        }
        let ch = self.inner.lock().expect("notifier lock");
        for key in changes {
            if let Some(tx) = ch.keys.get(key) {
                tx.send_replace(());
            }
            if let WatchKey::Kv(k) = key {
                if ch.prefixes.is_empty() {
                    continue;
                }
                for (i, _) in k.char_indices().chain(std::iter::once((k.len(), ' '))) {
                    if let Some(tx) = ch.prefixes.get(&k[..i]) {
                        tx.send_replace(());
                    }
                }
            }
        }
    }

    /// Wakes every subscriber (after a snapshot replaced the whole state).
    pub fn notify_all(&self) {
        let ch = self.inner.lock().expect("notifier lock");
        for tx in ch.keys.values().chain(ch.prefixes.values()) {
            tx.send_replace(());
        }
    }

    /// Number of keys with live channels (for tests and `info`).
    pub fn channel_count(&self) -> usize {
        let ch = self.inner.lock().expect("notifier lock");
        ch.keys.len() + ch.prefixes.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn fires(sub: &mut Subscription) -> bool {
        tokio::time::timeout(Duration::from_millis(50), sub.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn only_touched_keys_wake() {
        let n = Notifier::default();
        let mut a = n.subscribe(&[WatchKey::Kv("a".into())]);
        let mut b = n.subscribe(&[WatchKey::Kv("b".into())]);
        n.notify(&[WatchKey::Kv("a".into())]);
        assert!(fires(&mut a).await);
        assert!(!fires(&mut b).await);
    }

    #[tokio::test]
    async fn prefixes_match_keys_below_them() {
        let n = Notifier::default();
        let mut web = n.subscribe(&[WatchKey::KvPrefix("web/".into())]);
        let mut root = n.subscribe(&[WatchKey::KvPrefix(String::new())]);
        let mut db = n.subscribe(&[WatchKey::KvPrefix("db/".into())]);
        n.notify(&[WatchKey::Kv("web/x".into())]);
        assert!(fires(&mut web).await);
        assert!(fires(&mut root).await);
        assert!(!fires(&mut db).await);
    }

    #[tokio::test]
    async fn notification_before_wait_is_not_lost() {
        let n = Notifier::default();
        let mut s = n.subscribe(&[WatchKey::Service("web".into()), WatchKey::Nodes]);
        n.notify(&[WatchKey::Nodes]);
        assert!(fires(&mut s).await);
    }
}
