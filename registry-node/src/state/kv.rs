//! The KV table: ordered entries, tombstones of deleted keys (so that a view's
//! index never goes backwards when its newest key is deleted), lock delays, and an
//! undo journal that makes transactions all-or-nothing.

use std::collections::BTreeMap;

use registry_api::KVPair;
use serde::{Deserialize, Serialize};

use super::WatchKey;

/// A key's state before a transaction touched it: entry and tombstone.
type JournalEntry = (String, Option<KVPair>, Option<u64>);

/// The KV table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvTable {
    entries: BTreeMap<String, KVPair>,
    /// Deleted key → index of the delete; reaped by the leader after a while.
    tombstones: BTreeMap<String, u64>,
    /// Key → wall-clock ms until which `acquire` is refused (after its holder was invalidated).
    lock_delays: BTreeMap<String, u64>,
    /// Previous states of keys touched by the running transaction.
    #[serde(skip)]
    journal: Option<Vec<JournalEntry>>,
}

/// Iterates `(key, value)` of a `BTreeMap<String, V>` whose keys start with `prefix`.
fn prefixed<'a, V>(
    map: &'a BTreeMap<String, V>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a V)> {
    map.range::<str, _>((
        std::ops::Bound::Included(prefix),
        std::ops::Bound::Unbounded,
    ))
    .take_while(move |(k, _)| k.starts_with(prefix))
}

impl KvTable {
    /// The entry at `key`.
    pub fn get(&self, key: &str) -> Option<&KVPair> {
        self.entries.get(key)
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no live keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Index of a single-key view: its ModifyIndex, or the index that deleted it.
    pub fn key_index(&self, key: &str) -> u64 {
        match self.entries.get(key) {
            Some(e) => e.modify_index,
            None => self.tombstones.get(key).copied().unwrap_or(0),
        }
    }

    /// Entries under `prefix` and the view's index (newest write or delete under it).
    pub fn list<'a>(&'a self, prefix: &'a str) -> (Vec<&'a KVPair>, u64) {
        let entries: Vec<&KVPair> = prefixed(&self.entries, prefix).map(|(_, e)| e).collect();
        (entries, self.prefix_index(prefix))
    }

    /// Index of a prefix view.
    pub fn prefix_index(&self, prefix: &str) -> u64 {
        let live = prefixed(&self.entries, prefix)
            .map(|(_, e)| e.modify_index)
            .max()
            .unwrap_or(0);
        let dead = prefixed(&self.tombstones, prefix)
            .map(|(_, i)| *i)
            .max()
            .unwrap_or(0);
        live.max(dead)
    }

    /// Keys under `prefix`; with a separator, keys are cut after the first
    /// separator following the prefix and deduplicated (`?keys&separator=/`).
    pub fn keys(&self, prefix: &str, separator: Option<&str>) -> (Vec<String>, u64) {
        let mut out: Vec<String> = Vec::new();
        for (key, _) in prefixed(&self.entries, prefix) {
            let cut = match separator {
                Some(sep) if !sep.is_empty() => match key[prefix.len()..].find(sep) {
                    Some(pos) => key[..prefix.len() + pos + sep.len()].to_string(),
                    None => key.clone(),
                },
                _ => key.clone(),
            };
            if out.last() != Some(&cut) {
                out.push(cut);
            }
        }
        (out, self.prefix_index(prefix))
    }

    /// Wall-clock ms until which the key refuses `acquire`, if any.
    pub fn lock_delay_until(&self, key: &str) -> Option<u64> {
        self.lock_delays.get(key).copied()
    }

    /// Begins a transaction: later writes are journaled until commit or rollback.
    pub fn begin(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Keeps the transaction's writes.
    pub fn commit(&mut self) {
        self.journal = None;
    }

    /// Undoes every write since [`KvTable::begin`].
    pub fn rollback(&mut self) {
        if let Some(journal) = self.journal.take() {
            for (key, entry, tomb) in journal.into_iter().rev() {
                match entry {
                    Some(e) => self.entries.insert(key.clone(), e),
                    None => self.entries.remove(&key),
                };
                match tomb {
                    Some(t) => self.tombstones.insert(key, t),
                    None => self.tombstones.remove(&key),
                };
            }
        }
    }

    fn record(&mut self, key: &str) {
        if let Some(journal) = self.journal.as_mut()
            && !journal.iter().any(|(k, _, _)| k == key)
        {
            journal.push((
                key.to_string(),
                self.entries.get(key).cloned(),
                self.tombstones.get(key).copied(),
            ));
        }
    }

    /// Writes an entry as it is given (CreateIndex is kept from an existing entry).
    pub fn put(&mut self, index: u64, mut entry: KVPair, changes: &mut Vec<WatchKey>) {
        self.record(&entry.key);
        entry.create_index = self
            .entries
            .get(&entry.key)
            .map(|e| e.create_index)
            .unwrap_or(index);
        entry.modify_index = index;
        self.tombstones.remove(&entry.key);
        changes.push(WatchKey::Kv(entry.key.clone()));
        self.entries.insert(entry.key.clone(), entry);
    }

    /// Deletes one key; returns whether it existed.
    pub fn remove(&mut self, index: u64, key: &str, changes: &mut Vec<WatchKey>) -> bool {
        if !self.entries.contains_key(key) {
            return false;
        }
        self.record(key);
        self.entries.remove(key);
        self.tombstones.insert(key.to_string(), index);
        changes.push(WatchKey::Kv(key.to_string()));
        true
    }

    /// Deletes every key under `prefix`; returns how many.
    pub fn remove_tree(&mut self, index: u64, prefix: &str, changes: &mut Vec<WatchKey>) -> usize {
        let keys: Vec<String> = prefixed(&self.entries, prefix)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &keys {
            self.remove(index, key, changes);
        }
        keys.len()
    }

    /// Releases every lock a session holds (behavior `release`) or deletes the keys
    /// (behavior `delete`), and starts the lock delay on each.
    pub fn invalidate_session(
        &mut self,
        index: u64,
        session: &str,
        delete: bool,
        delay_until_ms: u64,
        changes: &mut Vec<WatchKey>,
    ) {
        let held: Vec<String> = self
            .entries
            .values()
            .filter(|e| e.session.as_deref() == Some(session))
            .map(|e| e.key.clone())
            .collect();
        for key in held {
            if delete {
                self.remove(index, &key, changes);
            } else if let Some(mut e) = self.entries.get(&key).cloned() {
                e.session = None;
                self.put(index, e, changes);
            }
            if delay_until_ms > 0 {
                self.lock_delays.insert(key, delay_until_ms);
            }
        }
    }

    /// Forgets tombstones at or below `index` and lock delays that ended before `now_ms`.
    pub fn reap(&mut self, index: u64, now_ms: u64) {
        self.tombstones.retain(|_, i| *i > index);
        self.lock_delays.retain(|_, until| *until > now_ms);
    }
}
