//! Manual outage recovery with `<data-dir>/raft/peers.json`, as in Consul.
//! When quorum is lost for good, the operator stops the surviving servers,
//! puts the same file listing them on each and starts them again; before
//! openraft starts, [`apply_peers_json`] makes the file's servers the Raft
//! configuration and deletes the file.
//!
//! # File format
//!
//! - Raft protocol 3: `[{"id": "<node-id UUID>", "address": "ip:port",
//!   "non_voter": false}, ...]`. `id` is the server's node ID (its
//!   `<data-dir>/node-id`); its Raft ID is [`node_id_from_uuid`] of it, so a
//!   UUID whose first 16 hex digits are `0…0N` names Raft ID `N`. `non_voter`
//!   is optional (default `false`) and makes the server a learner. Other
//!   keys are refused: a misspelt `non_voter` must not silently add a voter.
//! - Raft protocol 2: `["ip:port", ...]`, all voters; each address must
//!   belong to a server of the current configuration, which gives its ID.
//!
//! The list must be non-empty, have a voter, no repeated ID or address, and
//! name this server. A refused file fails the start and stays in place.
//!
//! # How the configuration is replaced
//!
//! openraft takes the effective membership from the last membership entry in
//! the log, in force as soon as it is appended. Recovery appends one such
//! entry right after the last log entry (or after the snapshot, when that is
//! newer), with log id `(last term + 1, node 0, last index + 1)`:
//!
//! - Node 0 is never a real server (Raft IDs are ≥ 1), so no entry written by
//!   a leader can have this log id. Survivors with the same last log id append
//!   the identical entry; survivors whose logs differ get different log ids,
//!   and plain Raft (election restriction, truncation of conflicts) settles
//!   them: the server with the newer `(term, index)` wins, as in Consul.
//! - Nothing is applied here: the first leader of the new configuration
//!   commits the whole log, entries past the old commit point included.
//! - The vote moves to this server, uncommitted, in the entry's term (or the
//!   vote's, if higher): a former leader must not resume leading in a term
//!   older than its log, and the next election runs above the entry's term.
//!
//! The file is deleted only after that write is durable; a crash in between
//! applies it again on the next start, which appends the same configuration
//! once more and is harmless.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use openraft::storage::RaftLogStorage;
use openraft::{
    CommittedLeaderId, EntryPayload, LogId, Membership, RaftLogReader, StoredMembership, Vote,
};
use serde::Deserialize;

use super::log_store::LogStore;
use super::{Entry, Node, NodeId, Shared, node_id_from_uuid};

/// The file's name inside the Raft directory.
pub const PEERS_FILE: &str = "peers.json";

/// Leader node of the recovery entry's log id: no server has Raft ID 0.
const RECOVERY_LEADER: NodeId = 0;

/// Why recovery refused `peers.json` or could not apply it.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The file is wrong; it is left in place.
    #[error("{}: {reason}; fix it, or remove it to keep the current raft configuration", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: Invalid,
    },
    /// Reading the file or the Raft state, or writing either, failed.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
}

/// What is wrong with a `peers.json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Not JSON, or not one of the two formats.
    #[error("bad JSON: {0}")]
    Json(String),
    /// `[]`.
    #[error("lists no servers")]
    Empty,
    /// Every server is a non-voter.
    #[error("lists no voter")]
    NoVoter,
    /// An `id` that is not a UUID.
    #[error("entry {0}: id {1:?} is not a node-ID UUID")]
    BadId(usize, String),
    /// An address that is not `ip:port`.
    #[error("entry {0}: address {1:?} is not ip:port")]
    BadAddress(usize, String),
    /// Two entries with one Raft ID (the same UUID, or UUIDs alike in their first 8 bytes).
    #[error("entry {0}: id {1:?} is listed twice (raft ID {2})")]
    DuplicateId(usize, String, NodeId),
    /// Two entries with one address.
    #[error("entry {0}: address {1} is listed twice")]
    DuplicateAddress(usize, String),
    /// A protocol-2 address no server of the current configuration has.
    #[error(
        "address {0} is not in the current raft configuration (known: {1}); \
         list servers by node ID (raft protocol 3 format)"
    )]
    UnknownAddress(String, String),
    /// This server is not listed.
    #[error("does not list this server (raft ID {0})")]
    MissingSelf(NodeId),
}

/// One server of the recovered configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Raft ID.
    pub id: NodeId,
    /// `ip:port` peers reach its server RPC at.
    pub addr: String,
    /// Voter, or learner (`non_voter`).
    pub voter: bool,
}

/// A parsed file: protocol 3 names servers, protocol 2 only addresses.
#[derive(Debug, PartialEq, Eq)]
pub enum Listed {
    /// `[{"id", "address", "non_voter"}]`.
    ById(Vec<Peer>),
    /// `["ip:port"]`, resolved against the current configuration.
    ByAddress(Vec<String>),
}

/// A protocol 3 entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerJson {
    id: String,
    address: String,
    #[serde(default)]
    non_voter: bool,
}

fn check_addr(i: usize, addr: &str) -> Result<SocketAddr, Invalid> {
    addr.parse()
        .map_err(|_| Invalid::BadAddress(i, addr.to_string()))
}

/// Parses and checks a file (everything but what needs the Raft state).
pub fn parse(bytes: &[u8]) -> Result<Listed, Invalid> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Invalid::Json(e.to_string()))?;
    let Some(items) = value.as_array() else {
        return Err(Invalid::Json("expected a JSON array".into()));
    };
    if items.is_empty() {
        return Err(Invalid::Empty);
    }
    let mut addrs = BTreeSet::new();
    if items.iter().all(|v| v.is_string()) {
        let mut out = Vec::new();
        for (i, v) in items.iter().enumerate() {
            let addr = v.as_str().unwrap_or_default().to_string();
            if !addrs.insert(check_addr(i, &addr)?) {
                return Err(Invalid::DuplicateAddress(i, addr));
            }
            out.push(addr);
        }
        return Ok(Listed::ByAddress(out));
    }
    let mut ids = BTreeSet::new();
    let mut peers = Vec::new();
    for (i, v) in items.iter().enumerate() {
        let p = PeerJson::deserialize(v).map_err(|e| Invalid::Json(format!("entry {i}: {e}")))?;
        // Normalized first: `node_id_from_uuid` reads the first 16 hex digits
        // of the text, which other UUID spellings (urn:, braces) would skew.
        let uuid = uuid::Uuid::try_parse(&p.id).map_err(|_| Invalid::BadId(i, p.id.clone()))?;
        let id = node_id_from_uuid(&uuid.hyphenated().to_string());
        if !ids.insert(id) {
            return Err(Invalid::DuplicateId(i, p.id, id));
        }
        if !addrs.insert(check_addr(i, &p.address)?) {
            return Err(Invalid::DuplicateAddress(i, p.address));
        }
        peers.push(Peer {
            id,
            addr: p.address,
            voter: !p.non_voter,
        });
    }
    if !peers.iter().any(|p| p.voter) {
        return Err(Invalid::NoVoter);
    }
    Ok(Listed::ById(peers))
}

/// The servers of `listed`, protocol 2 addresses mapped to IDs through the
/// `current` configuration; checks that `self_id` is among them.
pub fn resolve(
    listed: Listed,
    current: &Membership<NodeId, Node>,
    self_id: NodeId,
) -> Result<Vec<Peer>, Invalid> {
    let peers = match listed {
        Listed::ById(peers) => peers,
        Listed::ByAddress(addrs) => {
            let known: Vec<(NodeId, SocketAddr)> = current
                .nodes()
                .filter_map(|(id, n)| Some((*id, n.addr.parse().ok()?)))
                .collect();
            addrs
                .into_iter()
                .map(|addr| {
                    // `parse` checked every address.
                    let sock: Option<SocketAddr> = addr.parse().ok();
                    match known.iter().find(|(_, a)| Some(*a) == sock) {
                        Some((id, _)) => Ok(Peer {
                            id: *id,
                            addr,
                            voter: true,
                        }),
                        None => Err(Invalid::UnknownAddress(
                            addr,
                            known
                                .iter()
                                .map(|(_, a)| a.to_string())
                                .collect::<Vec<_>>()
                                .join(", "),
                        )),
                    }
                })
                .collect::<Result<_, _>>()?
        }
    };
    if !peers.iter().any(|p| p.id == self_id) {
        return Err(Invalid::MissingSelf(self_id));
    }
    Ok(peers)
}

/// What recovery writes to the log store.
#[derive(Debug)]
pub struct Plan {
    /// Purge up to here first: the snapshot is newer than the log.
    pub purge: Option<LogId<NodeId>>,
    /// The membership entry that makes `peers` the configuration.
    pub entry: Entry,
    /// The vote to save.
    pub vote: Vote<NodeId>,
}

/// The recovery write for a log ending at `last_log`, a snapshot covering up
/// to `snapshot_last` and the saved `vote` (see the module doc for why).
pub fn plan(
    last_log: Option<LogId<NodeId>>,
    snapshot_last: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    peers: &[Peer],
    self_id: NodeId,
) -> Plan {
    let purge = (snapshot_last > last_log)
        .then_some(snapshot_last)
        .flatten();
    let last = last_log.max(snapshot_last);
    let term = last.map_or(0, |l| l.leader_id.term) + 1;
    let index = last.map_or(0, |l| l.index + 1);
    let entry = Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, RECOVERY_LEADER), index),
        payload: EntryPayload::Membership(membership_of(peers)),
    };
    let vote_term = vote.map_or(0, |v| v.leader_id().term).max(term);
    Plan {
        purge,
        entry,
        vote: Vote::new(vote_term, self_id),
    }
}

/// The membership of `peers`: voters, and non-voters as learners.
pub fn membership_of(peers: &[Peer]) -> Membership<NodeId, Node> {
    let voters: BTreeSet<NodeId> = peers.iter().filter(|p| p.voter).map(|p| p.id).collect();
    let nodes: BTreeMap<NodeId, Node> = peers
        .iter()
        .map(|p| {
            let node = Node {
                addr: p.addr.clone(),
            };
            (p.id, node)
        })
        .collect();
    Membership::new(vec![voters], nodes)
}

/// The configuration in force: the last membership entry of the log, or
/// the snapshot's when that is newer.
async fn current_membership(
    log: &mut LogStore,
    last_log: Option<LogId<NodeId>>,
    snapshot: StoredMembership<NodeId, Node>,
) -> io::Result<StoredMembership<NodeId, Node>> {
    let Some(mut end) = last_log.map(|l| l.index + 1) else {
        return Ok(snapshot);
    };
    // Backwards in chunks: the log may hold thousands of entries.
    while end > 0 {
        let start = end.saturating_sub(256);
        let chunk = log
            .try_get_log_entries(start..end)
            .await
            .map_err(io::Error::other)?;
        if chunk.is_empty() {
            break;
        }
        if let Some(e) = chunk.iter().rev().find_map(|e| match &e.payload {
            EntryPayload::Membership(m) => Some(StoredMembership::new(Some(e.log_id), m.clone())),
            _ => None,
        }) {
            return Ok(if snapshot.log_id() > e.log_id() {
                snapshot
            } else {
                e
            });
        }
        end = start;
    }
    Ok(snapshot)
}

/// If `<dir>/peers.json` exists, makes its servers the Raft configuration of
/// the stores and deletes it. Runs before openraft starts on `log`; `shared`
/// holds the restored snapshot. `dir` is `None` in memory-only (`-dev`) mode.
/// On error `log` is closed, so that a start with a corrected file can open
/// the directory again right away.
pub async fn apply_peers_json(
    dir: Option<&Path>,
    self_id: NodeId,
    log: &LogStore,
    shared: &Shared,
) -> Result<(), RecoveryError> {
    let Some(dir) = dir else { return Ok(()) };
    let result = apply(dir, self_id, log, shared).await;
    if result.is_err() {
        log.close().await;
    }
    result
}

async fn apply(
    dir: &Path,
    self_id: NodeId,
    log: &LogStore,
    shared: &Shared,
) -> Result<(), RecoveryError> {
    let path = dir.join(PEERS_FILE);
    let io_err = |what, source| RecoveryError::Io {
        path: path.clone(),
        what,
        source,
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("reading", e)),
    };
    let invalid = |reason| RecoveryError::Invalid {
        path: path.clone(),
        reason,
    };
    let listed = parse(&bytes).map_err(invalid)?;

    let mut log = log.clone();
    let state = log
        .get_log_state()
        .await
        .map_err(|e| io_err("reading the raft log", io::Error::other(e)))?;
    let vote = log
        .read_vote()
        .await
        .map_err(|e| io_err("reading the raft vote", io::Error::other(e)))?;
    let (snapshot_last, snapshot_membership) = {
        let applied = shared.applied.read().expect("state lock");
        (applied.last_applied, applied.membership.clone())
    };
    let current = current_membership(&mut log, state.last_log_id, snapshot_membership)
        .await
        .map_err(|e| io_err("reading the raft configuration", e))?;
    let peers = resolve(listed, current.membership(), self_id).map_err(invalid)?;

    let plan = plan(state.last_log_id, snapshot_last, vote, &peers, self_id);
    let log_id = plan.entry.log_id;
    log.force_recovery(plan.purge, plan.entry, plan.vote)
        .await
        .map_err(|e| io_err("writing the recovered configuration", e))?;
    std::fs::remove_file(&path).map_err(|e| {
        io_err(
            "recovered the configuration but could not delete the file; delete it before the next start",
            e,
        )
    })?;
    let list = |voter: bool| {
        peers
            .iter()
            .filter(|p| p.voter == voter)
            .map(|p| format!("{}@{}", p.id, p.addr))
            .collect::<Vec<_>>()
            .join(", ")
    };
    tracing::info!(
        path = %path.display(),
        voters = %list(true),
        non_voters = %list(false),
        previous = ?current.voter_ids().collect::<Vec<_>>(),
        %log_id,
        "recovered raft configuration from peers.json; deleted the file"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A UUID whose Raft ID is `n`.
    fn uuid(n: u64) -> String {
        format!("00000000-0000-{n:04x}-0000-000000000000")
    }

    fn peer(id: NodeId, port: u16, voter: bool) -> Peer {
        Peer {
            id,
            addr: format!("10.0.0.{id}:{port}"),
            voter,
        }
    }

    fn log_id(term: u64, node: NodeId, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, node), index)
    }

    fn membership(peers: &[Peer]) -> Membership<NodeId, Node> {
        membership_of(peers)
    }

    #[test]
    fn protocol_3_maps_uuids_to_raft_ids() {
        let text = format!(
            r#"[{{"id": "{}", "address": "10.0.0.1:8300", "non_voter": false}},
                {{"id": "{}", "address": "10.0.0.2:8300"}},
                {{"id": "{}", "address": "10.0.0.3:8300", "non_voter": true}}]"#,
            uuid(1),
            uuid(2).to_uppercase(),
            uuid(3)
        );
        let Listed::ById(peers) = parse(text.as_bytes()).unwrap() else {
            panic!("protocol 3")
        };
        assert_eq!(
            peers,
            vec![
                peer(1, 8300, true),
                peer(2, 8300, true),
                peer(3, 8300, false)
            ]
        );
        let real = "adf4238a-882b-9ddc-4a9d-5b6758e4159e";
        let text = format!(r#"[{{"id": "{real}", "address": "10.1.0.1:8300"}}]"#);
        let Listed::ById(peers) = parse(text.as_bytes()).unwrap() else {
            panic!("protocol 3")
        };
        assert_eq!(peers[0].id, node_id_from_uuid(real));
    }

    #[test]
    fn protocol_2_maps_addresses_through_the_current_configuration() {
        let current = membership(&[
            peer(1, 8300, true),
            peer(2, 8300, true),
            peer(3, 8300, true),
        ]);
        let listed = parse(br#"["10.0.0.1:8300", "10.0.0.3:8300"]"#).unwrap();
        assert_eq!(
            resolve(listed, &current, 3).unwrap(),
            vec![peer(1, 8300, true), peer(3, 8300, true)]
        );
        let listed = parse(br#"["10.0.0.9:8300"]"#).unwrap();
        let err = resolve(listed, &current, 1).unwrap_err();
        assert!(matches!(err, Invalid::UnknownAddress(ref a, _) if a == "10.0.0.9:8300"));
        assert!(err.to_string().contains("10.0.0.2:8300"), "{err}");
    }

    #[test]
    fn refuses_bad_files() {
        let cases: &[(&str, Invalid)] = &[
            ("[]", Invalid::Empty),
            (r#"["10.0.0.1"]"#, Invalid::BadAddress(0, "10.0.0.1".into())),
            (
                r#"["10.0.0.1:8300", "10.0.0.1:8300"]"#,
                Invalid::DuplicateAddress(1, "10.0.0.1:8300".into()),
            ),
            (
                r#"[{"id": "node1", "address": "10.0.0.1:8300"}]"#,
                Invalid::BadId(0, "node1".into()),
            ),
            (
                r#"[{"id": "00000000-0000-0001-0000-000000000000", "address": "10.0.0.1:8300", "non_voter": true}]"#,
                Invalid::NoVoter,
            ),
            (
                r#"[{"id": "00000000-0000-0001-0000-000000000000", "address": "10.0.0.1:8300"},
                    {"id": "00000000-0000-0001-0000-000000000000", "address": "10.0.0.2:8300"}]"#,
                Invalid::DuplicateId(1, "00000000-0000-0001-0000-000000000000".into(), 1),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text.as_bytes()).as_ref(), Err(want), "{text}");
        }
        for text in [
            "",
            "{",
            r#"{"id": "x"}"#,
            r#"[{"id": "00000000-0000-0001-0000-000000000000"}]"#,
            r#"[{"id": "00000000-0000-0001-0000-000000000000", "address": "10.0.0.1:8300", "nonvoter": true}]"#,
            r#"["10.0.0.1:8300", {"id": "x"}]"#,
        ] {
            assert!(
                matches!(parse(text.as_bytes()), Err(Invalid::Json(_))),
                "{text}"
            );
        }
        let listed =
            parse(format!(r#"[{{"id": "{}", "address": "10.0.0.2:1"}}]"#, uuid(2)).as_bytes())
                .unwrap();
        assert_eq!(
            resolve(listed, &membership(&[]), 1),
            Err(Invalid::MissingSelf(1))
        );
    }

    #[test]
    fn plan_appends_after_the_log_with_a_leader_id_no_server_has() {
        let peers = [peer(1, 1, true), peer(4, 1, false)];
        let vote = Vote::new_committed(5, 2);
        let p = plan(
            Some(log_id(5, 2, 40)),
            Some(log_id(4, 1, 30)),
            Some(vote),
            &peers,
            1,
        );
        assert_eq!(p.purge, None);
        assert_eq!(p.entry.log_id, log_id(6, RECOVERY_LEADER, 41));
        assert_eq!(p.vote, Vote::new(6, 1));
        assert!(!p.vote.is_committed(), "must not resume leading");
        let EntryPayload::Membership(m) = &p.entry.payload else {
            panic!("a membership entry")
        };
        assert_eq!(m.voter_ids().collect::<Vec<_>>(), vec![1]);
        assert_eq!(m.learner_ids().collect::<Vec<_>>(), vec![4]);
        assert_eq!(m.get_node(&4).map(|n| n.addr.as_str()), Some("10.0.0.4:1"));

        // A vote ahead of the log is kept; a snapshot ahead of the log is purged to.
        let p = plan(
            Some(log_id(2, 1, 7)),
            Some(log_id(3, 1, 9)),
            Some(Vote::new(8, 3)),
            &peers,
            1,
        );
        assert_eq!(p.purge, Some(log_id(3, 1, 9)));
        assert_eq!(p.entry.log_id, log_id(4, RECOVERY_LEADER, 10));
        assert_eq!(p.vote, Vote::new(8, 1));

        // Identical logs give identical entries on every survivor.
        let a = plan(
            Some(log_id(5, 2, 40)),
            None,
            Some(Vote::new(5, 2)),
            &peers,
            1,
        );
        let b = plan(
            Some(log_id(5, 2, 40)),
            None,
            Some(Vote::new(9, 3)),
            &peers,
            4,
        );
        assert_eq!(a.entry, b.entry);
    }

    fn blank(id: LogId<NodeId>) -> Entry {
        Entry {
            log_id: id,
            payload: EntryPayload::Blank,
        }
    }

    #[tokio::test]
    async fn applies_the_file_durably_and_deletes_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("raft.wal");
        let peers_path = dir.path().join(PEERS_FILE);
        let shared = Arc::new(Shared::default());
        let old = [
            peer(1, 8300, true),
            peer(2, 8300, true),
            peer(3, 8300, true),
        ];
        let log = LogStore::open(&wal).unwrap();
        let first = Entry {
            log_id: log_id(1, 1, 0),
            payload: EntryPayload::Membership(membership(&old)),
        };
        let vote = Vote::new_committed(3, 2);
        log.force_recovery(None, first, vote).await.unwrap();
        log.force_recovery(None, blank(log_id(3, 2, 1)), vote)
            .await
            .unwrap();
        // No file: nothing happens.
        apply_peers_json(Some(dir.path()), 1, &log, &shared)
            .await
            .unwrap();

        // A refused file fails, names itself, stays, and releases the store.
        std::fs::write(&peers_path, r#"["10.0.0.7:8300"]"#).unwrap();
        let err = apply_peers_json(Some(dir.path()), 1, &log, &shared)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&peers_path.display().to_string()), "{msg}");
        assert!(msg.contains("10.0.0.7:8300"), "{msg}");
        assert!(peers_path.exists());

        let log = LogStore::open(&wal).unwrap();
        std::fs::write(&peers_path, r#"["10.0.0.1:8300", "10.0.0.3:8300"]"#).unwrap();
        apply_peers_json(Some(dir.path()), 1, &log, &shared)
            .await
            .unwrap();
        assert!(!peers_path.exists(), "deleted after ingesting");
        log.close().await;

        let mut log = LogStore::open(&wal).unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(4, RECOVERY_LEADER, 2)));
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(4, 1)));
        let current = current_membership(&mut log, state.last_log_id, StoredMembership::default())
            .await
            .unwrap();
        assert_eq!(current.voter_ids().collect::<Vec<_>>(), vec![1, 3]);
        log.close().await;
    }
}
