//! The replicated state machine, pure: no tokio, no I/O, no clock. Raft hands it
//! committed [`Request`]s in log order through [`Store::apply`]; every replica
//! therefore computes the same KV, catalog and sessions with the same indexes.
//!
//! Each write also reports which [`WatchKey`]s it touched, so blocking queries
//! wake only when data they return may have changed, and every view has an
//! index that moves only when that view changes (no spurious wake-ups).

mod catalog;
mod command;
mod kv;
pub mod query;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use registry_api::{
    CRITICAL, CatalogDeregistration, CheckServiceNode, HealthCheck, KVPair, KvTxnOp, MAX_TXN_OPS,
    PreparedQuery, SessionEntry, TxnError, TxnResponse, TxnResult,
};
use serde::{Deserialize, Serialize};

pub use catalog::Catalog;
pub use command::{Command, KvSet, Request, Response};
pub use kv::KvTable;

/// A unit of change that blocking queries subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WatchKey {
    /// One KV key (prefix watchers are matched against it by the notifier).
    Kv(String),
    /// A KV prefix; only used by subscribers, never reported by writes.
    KvPrefix(String),
    /// The node list.
    Nodes,
    /// The service-name list and tags.
    Services,
    /// Instances (and their health) of one service name.
    Service(String),
    /// One node's services and checks.
    Node(String),
    /// Any check (for `/v1/health/state`).
    Checks,
    /// Any session.
    Sessions,
    /// Any prepared query.
    PreparedQueries,
}

/// The whole replicated state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Store {
    /// Index of the last applied log entry.
    index: u64,
    kv: KvTable,
    catalog: Catalog,
    sessions: BTreeMap<String, SessionEntry>,
    /// Prepared queries by ID; `default` keeps snapshots from before they existed loadable.
    #[serde(default)]
    queries: BTreeMap<String, PreparedQuery>,
    /// Index of the last change of each non-KV watch key (KV indexes come from the data).
    #[serde(with = "pairs")]
    view_indexes: HashMap<WatchKey, u64>,
    /// Keys touched since the last [`Store::take_changes`].
    #[serde(skip)]
    changes: Vec<WatchKey>,
}

impl Store {
    /// Index of the last applied entry.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The KV table.
    pub fn kv(&self) -> &KvTable {
        &self.kv
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Index of a view made of the given keys (KV keys are computed from the data).
    pub fn view_index(&self, keys: &[WatchKey]) -> u64 {
        keys.iter()
            .map(|k| match k {
                WatchKey::Kv(key) => self.kv.key_index(key),
                WatchKey::KvPrefix(prefix) => self.kv.prefix_index(prefix),
                other => self.view_indexes.get(other).copied().unwrap_or(0),
            })
            .max()
            .unwrap_or(0)
    }

    /// Watch keys touched since the last call (deduplicated).
    pub fn take_changes(&mut self) -> Vec<WatchKey> {
        let mut changes = std::mem::take(&mut self.changes);
        changes.sort();
        changes.dedup();
        changes
    }

    /// A session by ID.
    pub fn session(&self, id: &str) -> Option<&SessionEntry> {
        self.sessions.get(id)
    }

    /// All sessions.
    pub fn sessions(&self) -> impl Iterator<Item = &SessionEntry> {
        self.sessions.values()
    }

    /// A prepared query by ID.
    pub fn prepared_query(&self, id: &str) -> Option<&PreparedQuery> {
        self.queries.get(id)
    }

    /// All prepared queries, by ID.
    pub fn prepared_queries(&self) -> impl Iterator<Item = &PreparedQuery> {
        self.queries.values()
    }

    /// `/v1/health/service/:name` rows.
    pub fn health_service(&self, name: &str) -> Vec<CheckServiceNode> {
        self.catalog.health_service(name)
    }

    /// `/v1/health/state/:state` rows (`any` for all).
    pub fn checks_in_state(&self, state: &str) -> Vec<HealthCheck> {
        self.catalog
            .all_checks()
            .filter(|c| state == "any" || c.status == state)
            .cloned()
            .collect()
    }

    /// Applies one committed entry. Must be deterministic: everything it needs is
    /// in the request or the store.
    pub fn apply(&mut self, index: u64, req: &Request) -> Response {
        self.index = index;
        let mut changes = Vec::new();
        let response = match &req.cmd {
            Command::Noop => Response::Ok,
            Command::KvSet(set) => match self.kv_set(index, req.now_ms, set, &mut changes) {
                Ok(ok) => Response::Bool(ok),
                Err(e) => Response::Error(e),
            },
            Command::KvDelete { key, recurse, cas } => {
                Response::Bool(self.kv_delete(index, key, *recurse, *cas, &mut changes))
            }
            Command::Txn(ops) => Response::Txn(self.txn(index, req.now_ms, ops, &mut changes)),
            Command::Register(reg) => match self.catalog.register(index, reg, &mut changes) {
                Ok(critical) => {
                    for (node, check) in critical {
                        self.invalidate_sessions_for_check(
                            index,
                            req.now_ms,
                            &node,
                            &check,
                            &mut changes,
                        );
                    }
                    Response::Ok
                }
                Err(e) => Response::Error(e),
            },
            Command::Deregister(dereg) => self.deregister(index, req.now_ms, dereg, &mut changes),
            Command::SessionCreate(session) => {
                match self.session_create(index, session, &mut changes) {
                    Ok(()) => Response::Ok,
                    Err(e) => Response::Error(e),
                }
            }
            Command::SessionDestroy { id } => {
                self.session_destroy(index, req.now_ms, id, &mut changes);
                Response::Bool(true)
            }
            Command::ReapTombstones { index: upto } => {
                self.kv.reap(*upto, req.now_ms);
                Response::Ok
            }
            Command::QueryCreate(q) => self.query_set(index, q, true, &mut changes),
            Command::QueryUpdate(q) => self.query_set(index, q, false, &mut changes),
            Command::QueryDelete { id } => {
                if self.queries.remove(id).is_some() {
                    changes.push(WatchKey::PreparedQueries);
                }
                Response::Ok
            }
        };
        for key in &changes {
            if !matches!(key, WatchKey::Kv(_)) {
                self.view_indexes.insert(key.clone(), index);
            }
        }
        self.changes.extend(changes);
        response
    }

    /// Creates or replaces a prepared query after re-validating it against the
    /// replicated state (the HTTP layer's check may have raced another write).
    fn query_set(
        &mut self,
        index: u64,
        q: &PreparedQuery,
        create: bool,
        changes: &mut Vec<WatchKey>,
    ) -> Response {
        let existing = self.queries.get(&q.id);
        match (create, existing) {
            (true, Some(_)) => {
                return Response::Error(format!("prepared query ID '{}' already exists", q.id));
            }
            (false, None) => {
                return Response::Error(format!(
                    "Cannot modify non-existent prepared query: '{}'",
                    q.id
                ));
            }
            _ => {}
        }
        if let Err(e) = query::validate(self, q) {
            return Response::Error(e);
        }
        let mut entry = q.clone();
        entry.create_index = existing.map_or(index, |e| e.create_index);
        entry.modify_index = index;
        self.queries.insert(entry.id.clone(), entry);
        changes.push(WatchKey::PreparedQueries);
        Response::Ok
    }

    fn kv_set(
        &mut self,
        index: u64,
        now_ms: u64,
        set: &KvSet,
        changes: &mut Vec<WatchKey>,
    ) -> Result<bool, String> {
        if set.key.is_empty() {
            return Err("Missing key name".into());
        }
        let existing = self.kv.get(&set.key);
        if let Some(cas) = set.cas {
            let current = existing.map(|e| e.modify_index).unwrap_or(0);
            if current != cas {
                return Ok(false);
            }
        }
        let mut entry = existing.cloned().unwrap_or_else(|| KVPair {
            key: set.key.clone(),
            ..Default::default()
        });
        entry.value = set.value.clone();
        entry.flags = set.flags;
        if let Some(session) = &set.acquire {
            if !self.sessions.contains_key(session) {
                return Err(format!("invalid session \"{session}\""));
            }
            match entry.session.as_deref() {
                Some(holder) if holder == session => {}
                Some(_) => return Ok(false),
                None => {
                    if self
                        .kv
                        .lock_delay_until(&set.key)
                        .is_some_and(|until| now_ms < until)
                    {
                        return Ok(false);
                    }
                    entry.lock_index += 1;
                    entry.session = Some(session.clone());
                }
            }
        } else if let Some(session) = &set.release {
            if entry.session.as_deref() != Some(session.as_str()) {
                return Ok(false);
            }
            entry.session = None;
        }
        self.kv.put(index, entry, changes);
        Ok(true)
    }

    fn kv_delete(
        &mut self,
        index: u64,
        key: &str,
        recurse: bool,
        cas: Option<u64>,
        changes: &mut Vec<WatchKey>,
    ) -> bool {
        if recurse {
            self.kv.remove_tree(index, key, changes);
            return true;
        }
        if let Some(cas) = cas {
            match self.kv.get(key) {
                Some(e) if cas != 0 && e.modify_index == cas => {}
                _ => return false,
            }
        }
        self.kv.remove(index, key, changes);
        true
    }

    fn txn(
        &mut self,
        index: u64,
        now_ms: u64,
        ops: &[KvTxnOp],
        changes: &mut Vec<WatchKey>,
    ) -> TxnResponse {
        if ops.len() > MAX_TXN_OPS {
            return TxnResponse {
                results: None,
                errors: Some(vec![TxnError {
                    op_index: 0,
                    what: format!(
                        "Transaction contains too many operations ({} > {MAX_TXN_OPS})",
                        ops.len()
                    ),
                }]),
            };
        }
        self.kv.begin();
        let mut local_changes = Vec::new();
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match self.txn_op(index, now_ms, op, &mut local_changes) {
                Ok(mut out) => results.append(&mut out),
                Err(what) => errors.push(TxnError { op_index: i, what }),
            }
        }
        if errors.is_empty() {
            self.kv.commit();
            changes.extend(local_changes);
            TxnResponse {
                results: Some(results),
                errors: None,
            }
        } else {
            self.kv.rollback();
            TxnResponse {
                results: None,
                errors: Some(errors),
            }
        }
    }

    fn txn_op(
        &mut self,
        index: u64,
        now_ms: u64,
        op: &KvTxnOp,
        changes: &mut Vec<WatchKey>,
    ) -> Result<Vec<TxnResult>, String> {
        let key = op.key.as_str();
        let without_value = |e: &KVPair| TxnResult {
            kv: KVPair {
                value: None,
                ..e.clone()
            },
        };
        let current = || self.kv.get(key).cloned();
        let set = |acquire: Option<String>, release: Option<String>, cas: Option<u64>| KvSet {
            key: op.key.clone(),
            value: op.value.clone(),
            flags: op.flags,
            cas,
            acquire,
            release,
        };
        let written = |store: &Store| {
            store
                .kv
                .get(key)
                .map(without_value)
                .into_iter()
                .collect::<Vec<_>>()
        };
        match op.verb.as_str() {
            "set" => {
                self.kv_set(index, now_ms, &set(None, None, None), changes)?;
                Ok(written(self))
            }
            "cas" => {
                if !self.kv_set(index, now_ms, &set(None, None, Some(op.index)), changes)? {
                    return Err(format!("failed to set key \"{key}\", index is stale"));
                }
                Ok(written(self))
            }
            "lock" => {
                if !self.kv_set(
                    index,
                    now_ms,
                    &set(Some(op.session.clone()), None, None),
                    changes,
                )? {
                    return Err(format!(
                        "failed to lock key \"{key}\", lock is already held"
                    ));
                }
                Ok(written(self))
            }
            "unlock" => {
                if !self.kv_set(
                    index,
                    now_ms,
                    &set(None, Some(op.session.clone()), None),
                    changes,
                )? {
                    return Err(format!(
                        "failed to unlock key \"{key}\", lock isn't held, or is held by another session"
                    ));
                }
                Ok(written(self))
            }
            "get" => match current() {
                Some(e) => Ok(vec![TxnResult { kv: e }]),
                None => Err(format!("key \"{key}\" doesn't exist")),
            },
            "get-tree" => Ok(self
                .kv
                .list(key)
                .0
                .into_iter()
                .map(|e| TxnResult { kv: e.clone() })
                .collect()),
            "check-index" => match current() {
                Some(e) if e.modify_index == op.index => Ok(vec![without_value(&e)]),
                Some(e) => Err(format!(
                    "current modify index {} != {}",
                    e.modify_index, op.index
                )),
                None => Err(format!("key \"{key}\" doesn't exist")),
            },
            "check-session" => match current() {
                Some(e) if e.session.as_deref().unwrap_or("") == op.session => {
                    Ok(vec![without_value(&e)])
                }
                Some(e) => Err(format!(
                    "current session {} != {}",
                    e.session.unwrap_or_default(),
                    op.session
                )),
                None => Err(format!("key \"{key}\" doesn't exist")),
            },
            "check-not-exists" => match current() {
                Some(_) => Err(format!("key \"{key}\" exists")),
                None => Ok(vec![]),
            },
            "delete" => {
                self.kv.remove(index, key, changes);
                Ok(vec![])
            }
            "delete-tree" => {
                self.kv.remove_tree(index, key, changes);
                Ok(vec![])
            }
            "delete-cas" => {
                if !self.kv_delete(index, key, false, Some(op.index), changes) {
                    return Err(format!("failed to delete key \"{key}\", index is stale"));
                }
                Ok(vec![])
            }
            other => Err(format!("unknown KV verb \"{other}\"")),
        }
    }

    fn deregister(
        &mut self,
        index: u64,
        now_ms: u64,
        dereg: &CatalogDeregistration,
        changes: &mut Vec<WatchKey>,
    ) -> Response {
        let node_removed = dereg.service_id.is_empty() && dereg.check_id.is_empty();
        match self.catalog.deregister(dereg, changes) {
            Ok(removed) => {
                for (node, check) in removed {
                    self.invalidate_sessions_for_check(index, now_ms, &node, &check, changes);
                }
                if node_removed {
                    let ids: Vec<String> = self
                        .sessions
                        .values()
                        .filter(|s| s.node == dereg.node)
                        .map(|s| s.id.clone())
                        .collect();
                    for id in ids {
                        self.session_destroy(index, now_ms, &id, changes);
                    }
                }
                Response::Ok
            }
            Err(e) => Response::Error(e),
        }
    }

    fn session_create(
        &mut self,
        index: u64,
        session: &SessionEntry,
        changes: &mut Vec<WatchKey>,
    ) -> Result<(), String> {
        if self.catalog.node(&session.node).is_none() {
            return Err(format!(
                "Missing node registration for \"{}\"",
                session.node
            ));
        }
        let bound = session
            .node_checks
            .iter()
            .chain(session.service_checks.iter().map(|c| &c.id));
        for check_id in bound {
            match self.catalog.check(&session.node, check_id) {
                None => return Err(format!("Missing check '{check_id}' registration")),
                Some(c) if c.status == CRITICAL => {
                    return Err(format!("Check '{check_id}' is in critical state"));
                }
                Some(_) => {}
            }
        }
        let mut entry = session.clone();
        entry.create_index = index;
        entry.modify_index = index;
        self.sessions.insert(entry.id.clone(), entry);
        changes.push(WatchKey::Sessions);
        Ok(())
    }

    fn session_destroy(&mut self, index: u64, now_ms: u64, id: &str, changes: &mut Vec<WatchKey>) {
        let Some(session) = self.sessions.remove(id) else {
            return;
        };
        let delay_until = if session.lock_delay.is_zero() {
            0
        } else {
            now_ms + session.lock_delay.as_millis() as u64
        };
        self.kv.invalidate_session(
            index,
            id,
            session.behavior == "delete",
            delay_until,
            changes,
        );
        changes.push(WatchKey::Sessions);
        // Consul deletes the prepared queries tied to an invalidated session.
        let before = self.queries.len();
        self.queries.retain(|_, q| q.session != id);
        if self.queries.len() != before {
            changes.push(WatchKey::PreparedQueries);
        }
    }

    fn invalidate_sessions_for_check(
        &mut self,
        index: u64,
        now_ms: u64,
        node: &str,
        check: &str,
        changes: &mut Vec<WatchKey>,
    ) {
        let ids: Vec<String> = self
            .sessions
            .values()
            .filter(|s| {
                s.node == node
                    && (s.node_checks.iter().any(|c| c == check)
                        || s.service_checks.iter().any(|c| c.id == check))
            })
            .map(|s| s.id.clone())
            .collect();
        for id in ids {
            self.session_destroy(index, now_ms, &id, changes);
        }
    }

    /// Serializes the whole state (Raft snapshot payload).
    pub fn to_snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("state serializes")
    }

    /// Restores a state from [`Store::to_snapshot`] bytes.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Store, serde_json::Error> {
        let mut store: Store = serde_json::from_slice(bytes)?;
        store.catalog.rebuild();
        Ok(store)
    }
}

/// Default session lock delay.
pub const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);

/// Serde for `HashMap<WatchKey, u64>` as a list of pairs (JSON keys must be strings).
mod pairs {
    use std::collections::HashMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::WatchKey;

    pub fn serialize<S: Serializer>(map: &HashMap<WatchKey, u64>, s: S) -> Result<S::Ok, S::Error> {
        let mut pairs: Vec<(&WatchKey, &u64)> = map.iter().collect();
        pairs.sort();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<HashMap<WatchKey, u64>, D::Error> {
        Ok(Vec::<(WatchKey, u64)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}
