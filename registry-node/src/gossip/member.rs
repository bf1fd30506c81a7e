//! Who a gossip member is ([`NodeIdentity`], foca's `Identity`) and what we know
//! about every member ([`MemberTable`]: status, tags, Lamport times).
//!
//! The table is pure: the runtime feeds it foca notifications and decoded broadcasts
//! with an explicit `now`, and it answers with the [`MemberEvent`]s to publish. That
//! keeps the Serf semantics foca lacks (leaving/left vs failed, tags, node-ID
//! conflicts, reaping) unit-testable without sockets or timers.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use foca::Identity;
use registry_api::agent::{Member, MemberStatus};
use registry_api::event::UserEvent;
use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

/// Serf tag keys Consul sets on every member.
pub mod tags {
    /// `consul` for servers, `node` for clients.
    pub const ROLE: &str = "role";
    /// Datacenter.
    pub const DC: &str = "dc";
    /// Node UUID.
    pub const ID: &str = "id";
    /// Server RPC port.
    pub const PORT: &str = "port";
    /// `version:revision`.
    pub const BUILD: &str = "build";
    /// Consul protocol version and range.
    pub const VSN: &str = "vsn";
    /// .
    pub const VSN_MIN: &str = "vsn_min";
    /// .
    pub const VSN_MAX: &str = "vsn_max";
    /// Raft protocol version.
    pub const RAFT_VSN: &str = "raft_vsn";
    /// WAN gossip port, for WAN join flooding.
    pub const WAN_JOIN_PORT: &str = "wan_join_port";
    /// `bootstrap_expect`.
    pub const EXPECT: &str = "expect";
    /// Network segment.
    pub const SEGMENT: &str = "segment";
}

/// Serf protocol numbers reported in `/v1/agent/members` (what Consul 1.x reports).
const PROTOCOL: (u8, u8, u8) = (1, 5, 2);
const DELEGATE: (u8, u8, u8) = (2, 5, 4);

/// foca's `Identity`: everything a member must carry in every packet header.
///
/// Deliberately small (no tags): foca puts the sender and destination identity in
/// every header and every membership update, and packets are capped near 1400 bytes.
/// Tags ride on custom broadcasts instead (see the `message` module).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Node name (unique in the pool).
    pub name: String,
    /// Node UUID (Consul's `node-id`); a different name with the same ID is refused.
    pub node_id: String,
    /// Gossip address, also foca's `Identity::Addr`.
    pub addr: SocketAddr,
    /// Renewal counter: bumped when the cluster declared us down (auto-rejoin) and
    /// seeded from the wall clock at start so a restarted node beats its stale self.
    pub bump: u16,
}

impl NodeIdentity {
    /// A placeholder used to announce to an address whose identity we do not know yet
    /// (foca accepts an `Announce` whose destination only matches by address).
    pub fn placeholder(addr: SocketAddr) -> Self {
        NodeIdentity {
            name: String::new(),
            node_id: String::new(),
            addr,
            bump: 0,
        }
    }
}

impl NodeIdentity {
    /// Whether `stale` is a previous incarnation of this node (same name, node ID and
    /// address, an older bump). Traffic addressed to it comes from a member that has not
    /// heard of our restart or renewal yet.
    pub fn supersedes(&self, stale: &NodeIdentity) -> bool {
        self.name == stale.name
            && self.node_id == stale.node_id
            && self.addr == stale.addr
            && bump_newer(self.bump, stale.bump)
    }
}

/// `a` is newer than `b` in wrapping (serial number) order.
fn bump_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < u16::MAX / 2
}

/// Whether `(bump, ltime)` supersedes `known`: a newer identity always does, the same
/// identity only with a later Lamport time.
pub fn version_newer(v: (u16, u64), known: Option<(u16, u64)>) -> bool {
    match known {
        None => true,
        Some((bump, ltime)) if bump == v.0 => v.1 > ltime,
        Some((bump, _)) => bump_newer(v.0, bump),
    }
}

impl Identity for NodeIdentity {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(NodeIdentity {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        if self.bump == adversary.bump {
            // Two different processes on one address with the same bump: pick
            // deterministically so every member keeps the same one.
            (&self.name, &self.node_id) > (&adversary.name, &adversary.node_id)
        } else {
            bump_newer(self.bump, adversary.bump)
        }
    }
}

/// What the gossip layer reports to subscribers of [`crate::gossip::GossipHandle::events`].
#[derive(Debug, Clone, PartialEq)]
pub enum MemberEvent {
    /// A member became alive (new, or back after failing).
    Join(Member),
    /// A member's tags changed (or it refuted a leave).
    Update(Member),
    /// A member left gracefully (or was force-left).
    Leave(Member),
    /// A member stopped answering probes and was declared dead.
    Fail(Member),
    /// A failed/left member was forgotten (`reconnect_timeout`/tombstone expired).
    Reap(Member),
    /// A user event (also on `user_events()`).
    User(UserEvent),
    /// A member was refused because it reuses another member's node ID.
    Conflict {
        /// The refused member's name.
        name: String,
        /// The contested node ID.
        node_id: String,
        /// The member that already holds the ID.
        existing: String,
        /// Consul's message, also logged.
        message: String,
    },
    /// We were refused by the node at `by` (our node ID conflicts there).
    Refused {
        /// The refusing node's gossip address.
        by: SocketAddr,
        /// Consul's conflict message.
        message: String,
    },
}

/// Consul's node-ID conflict message.
pub fn conflict_message(name: &str, node_id: &str, existing: &str) -> String {
    format!("Member '{name}' has conflicting node ID '{node_id}' with member '{existing}'")
}

/// What we know about one member.
#[derive(Debug, Clone)]
pub struct MemberEntry {
    /// Its latest identity (foca may rename it on renewal).
    pub id: NodeIdentity,
    /// Serf status; `None` until foca reports it alive (tags can arrive first).
    pub status: MemberStatus,
    /// Serf tags.
    pub tags: BTreeMap<String, String>,
    /// `(identity bump, Lamport time)` of the newest tags; stale tags are dropped. The
    /// bump is part of the version because a restarted node restarts its clock.
    pub tags_version: Option<(u16, u64)>,
    /// `(identity bump, Lamport time)` of the newest leave intent; newer tags from the
    /// same identity refute it.
    pub leave_version: Option<(u16, u64)>,
    /// When the status last changed (drives reaping).
    pub since: Instant,
}

impl MemberEntry {
    /// The wire form.
    pub fn to_member(&self) -> Member {
        to_member(&self.id, self.status, &self.tags)
    }
}

/// Builds the `/v1/agent/members` form of a member.
pub fn to_member(
    id: &NodeIdentity,
    status: MemberStatus,
    tags: &BTreeMap<String, String>,
) -> Member {
    Member {
        name: id.name.clone(),
        addr: id.addr.ip().to_string(),
        port: id.addr.port(),
        tags: tags.clone(),
        status: status as u8,
        protocol_min: PROTOCOL.0,
        protocol_max: PROTOCOL.1,
        protocol_cur: PROTOCOL.2,
        delegate_min: DELEGATE.0,
        delegate_max: DELEGATE.1,
        delegate_cur: DELEGATE.2,
    }
}

/// Every remote member we know, by name. The local node is not in here.
#[derive(Debug, Default)]
pub struct MemberTable {
    members: HashMap<String, MemberEntry>,
}

impl MemberTable {
    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&MemberEntry> {
        self.members.get(name)
    }

    /// All visible members (status other than `None`).
    pub fn visible(&self) -> impl Iterator<Item = &MemberEntry> {
        self.members
            .values()
            .filter(|m| m.status != MemberStatus::None)
    }

    fn entry(&mut self, id: &NodeIdentity, now: Instant) -> &mut MemberEntry {
        self.members
            .entry(id.name.clone())
            .or_insert_with(|| MemberEntry {
                id: id.clone(),
                status: MemberStatus::None,
                tags: BTreeMap::new(),
                tags_version: None,
                leave_version: None,
                since: now,
            })
    }

    /// The node-ID conflict message if `id` reuses the ID of a different, live member
    /// (or of the local node).
    pub fn conflict(&self, id: &NodeIdentity, local: &NodeIdentity) -> Option<(String, String)> {
        if id.node_id.is_empty() || id.name == local.name {
            return None;
        }
        if id.node_id == local.node_id {
            return Some((
                local.name.clone(),
                format!(
                    "Member '{}' has conflicting node ID '{}' with this agent's ID",
                    id.name, id.node_id
                ),
            ));
        }
        self.members
            .values()
            .find(|m| {
                m.id.node_id == id.node_id
                    && m.id.name != id.name
                    && matches!(m.status, MemberStatus::Alive | MemberStatus::Leaving)
            })
            .map(|m| {
                (
                    m.id.name.clone(),
                    conflict_message(&id.name, &id.node_id, &m.id.name),
                )
            })
    }

    /// Whether a member reported by someone else's full state (push/pull) may be handed
    /// to foca: never an entry at our own address (foca would record it as a down
    /// stale self and keep gossiping that), never a node-ID conflict (refused at join).
    pub fn admits(&self, id: &NodeIdentity, local: &NodeIdentity) -> bool {
        id.addr != local.addr && self.conflict(id, local).is_none()
    }

    /// foca: `id` is alive.
    pub fn on_up(&mut self, id: &NodeIdentity, now: Instant) -> Option<MemberEvent> {
        let e = self.entry(id, now);
        e.id = id.clone();
        let was = e.status;
        if matches!(was, MemberStatus::Alive | MemberStatus::Leaving) {
            return None;
        }
        e.status = MemberStatus::Alive;
        e.since = now;
        Some(MemberEvent::Join(e.to_member()))
    }

    /// foca: `id` was declared down. `Left` if it announced its leave, else `Failed`.
    pub fn on_down(&mut self, id: &NodeIdentity, now: Instant) -> Option<MemberEvent> {
        let e = self.members.get_mut(&id.name)?;
        // A down notice for an identity that was since renewed is stale.
        if e.id.bump != id.bump || !matches!(e.status, MemberStatus::Alive | MemberStatus::Leaving)
        {
            return None;
        }
        e.since = now;
        if e.status == MemberStatus::Leaving {
            e.status = MemberStatus::Left;
            Some(MemberEvent::Leave(e.to_member()))
        } else {
            e.status = MemberStatus::Failed;
            Some(MemberEvent::Fail(e.to_member()))
        }
    }

    /// foca: `old` was replaced by `new` on the same address (renewal or restart).
    pub fn on_rename(&mut self, old: &NodeIdentity, new: &NodeIdentity, now: Instant) {
        if old.name != new.name
            && let Some(mut e) = self.members.remove(&old.name)
        {
            // A different node took over the address: the old one is gone.
            e.status = MemberStatus::Failed;
            self.members.insert(old.name.clone(), e);
        }
        self.entry(new, now).id = new.clone();
    }

    /// Newer tags for a member (from a broadcast or a direct reply). Returns the update
    /// event when the member is visible.
    pub fn apply_tags(
        &mut self,
        id: &NodeIdentity,
        ltime: u64,
        tags: BTreeMap<String, String>,
        now: Instant,
    ) -> Option<MemberEvent> {
        let e = self.entry(id, now);
        if !version_newer((id.bump, ltime), e.tags_version) {
            return None;
        }
        e.tags_version = Some((id.bump, ltime));
        let changed = e.tags != tags;
        e.tags = tags;
        let refuted = e.status == MemberStatus::Leaving
            && e.leave_version
                .is_some_and(|(b, l)| b != id.bump || l < ltime);
        if refuted {
            e.status = MemberStatus::Alive;
            e.since = now;
        }
        match e.status {
            MemberStatus::None => None,
            _ if changed || refuted => Some(MemberEvent::Update(e.to_member())),
            _ => None,
        }
    }

    /// A (possibly forced) leave intent for identity `bump` of `name`: alive → leaving,
    /// failed → left. Returns whether it was news, and the event to publish.
    pub fn apply_leave_intent(
        &mut self,
        name: &str,
        bump: u16,
        ltime: u64,
        now: Instant,
    ) -> Option<MemberEvent> {
        let e = self.members.get_mut(name)?;
        let stale = e.id.bump != bump
            || !version_newer((bump, ltime), e.leave_version)
            || e.tags_version.is_some_and(|(b, l)| b == bump && l >= ltime);
        if stale {
            return None;
        }
        e.leave_version = Some((bump, ltime));
        match e.status {
            MemberStatus::Alive => {
                e.status = MemberStatus::Leaving;
                e.since = now;
                None
            }
            MemberStatus::Failed => {
                e.status = MemberStatus::Left;
                e.since = now;
                Some(MemberEvent::Leave(e.to_member()))
            }
            _ => None,
        }
    }

    /// Forgets failed members older than `reconnect_timeout` and left members older
    /// than `tombstone_timeout`.
    pub fn reap(
        &mut self,
        now: Instant,
        reconnect_timeout: Duration,
        tombstone_timeout: Duration,
    ) -> Vec<MemberEvent> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| match m.status {
                MemberStatus::Failed => now.duration_since(m.since) >= reconnect_timeout,
                MemberStatus::Left => now.duration_since(m.since) >= tombstone_timeout,
                _ => false,
            })
            .map(|m| m.id.name.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|name| self.members.remove(&name))
            .map(|m| MemberEvent::Reap(m.to_member()))
            .collect()
    }

    /// Number of members foca considers active.
    pub fn alive_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Leaving))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, node_id: &str, port: u16, bump: u16) -> NodeIdentity {
        NodeIdentity {
            name: name.into(),
            node_id: node_id.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            bump,
        }
    }

    fn status(t: &MemberTable, name: &str) -> MemberStatus {
        t.get(name).unwrap().status
    }

    #[test]
    fn renewal_wins_conflicts_including_wraparound() {
        let a = id("a", "1", 1, 5);
        assert_eq!(a.renew().unwrap().bump, 6);
        assert!(a.renew().unwrap().win_addr_conflict(&a));
        assert!(!a.win_addr_conflict(&a.renew().unwrap()));
        let old = id("a", "1", 1, u16::MAX);
        assert!(
            old.renew().unwrap().win_addr_conflict(&old),
            "wraps to 0 and still wins"
        );
        // Same bump: deterministic, antisymmetric.
        let (x, y) = (id("x", "1", 1, 3), id("y", "2", 1, 3));
        assert!(y.win_addr_conflict(&x) && !x.win_addr_conflict(&y));
    }

    #[test]
    fn down_after_leave_intent_is_left_otherwise_failed() {
        let now = Instant::now();
        let mut t = MemberTable::default();
        let (a, b) = (id("a", "1", 1, 0), id("b", "2", 2, 0));
        assert!(matches!(t.on_up(&a, now), Some(MemberEvent::Join(_))));
        assert!(t.on_up(&a, now).is_none(), "no duplicate join");
        t.on_up(&b, now);
        assert!(
            t.apply_leave_intent("a", 1, 3, now).is_none(),
            "other identity"
        );
        assert_eq!(status(&t, "a"), MemberStatus::Alive);
        assert!(t.apply_leave_intent("a", 0, 3, now).is_none());
        assert_eq!(status(&t, "a"), MemberStatus::Leaving);
        assert!(matches!(t.on_down(&a, now), Some(MemberEvent::Leave(_))));
        assert_eq!(status(&t, "a"), MemberStatus::Left);
        assert!(matches!(t.on_down(&b, now), Some(MemberEvent::Fail(_))));
        // force-leave of a failed member
        assert!(matches!(
            t.apply_leave_intent("b", 0, 4, now),
            Some(MemberEvent::Leave(_))
        ));
        assert_eq!(status(&t, "b"), MemberStatus::Left);
    }

    #[test]
    fn newer_tags_refute_a_leave_intent_and_stale_tags_are_ignored() {
        let now = Instant::now();
        let mut t = MemberTable::default();
        let a = id("a", "1", 1, 0);
        // Tags may arrive before foca reports the member: stored, not visible.
        assert!(
            t.apply_tags(&a, 2, [("role".into(), "node".into())].into(), now)
                .is_none()
        );
        assert_eq!(t.visible().count(), 0);
        t.on_up(&a, now);
        assert_eq!(t.get("a").unwrap().tags["role"], "node");
        assert!(t.apply_tags(&a, 1, BTreeMap::new(), now).is_none(), "stale");
        t.apply_leave_intent("a", 0, 5, now);
        // Older than the intent: applied, but no refutation.
        assert!(
            t.apply_tags(&a, 4, [("role".into(), "node".into())].into(), now)
                .is_none()
        );
        assert_eq!(status(&t, "a"), MemberStatus::Leaving);
        let ev = t.apply_tags(&a, 6, [("role".into(), "node".into())].into(), now);
        assert!(matches!(ev, Some(MemberEvent::Update(_))));
        assert_eq!(status(&t, "a"), MemberStatus::Alive);
        // A restarted process (new bump) restarts its clock and is still accepted.
        let restarted = NodeIdentity {
            bump: 3,
            ..a.clone()
        };
        assert!(t.apply_tags(&restarted, 1, BTreeMap::new(), now).is_some());
        assert!(!version_newer((0, 9), Some((3, 1))));
    }

    #[test]
    fn stale_down_for_a_renewed_identity_is_ignored() {
        let now = Instant::now();
        let mut t = MemberTable::default();
        let a0 = id("a", "1", 1, 0);
        let a1 = a0.renew().unwrap();
        t.on_up(&a0, now);
        t.on_rename(&a0, &a1, now);
        assert!(t.on_down(&a0, now).is_none());
        assert_eq!(status(&t, "a"), MemberStatus::Alive);
        assert_eq!(t.get("a").unwrap().id.bump, 1);
    }

    #[test]
    fn node_id_conflicts_are_detected() {
        let now = Instant::now();
        let mut t = MemberTable::default();
        let local = id("local", "L", 9, 0);
        t.on_up(&id("b", "B", 2, 0), now);
        let (existing, msg) = t.conflict(&id("c", "B", 3, 0), &local).unwrap();
        assert_eq!(existing, "b");
        assert_eq!(
            msg,
            "Member 'c' has conflicting node ID 'B' with member 'b'"
        );
        assert!(
            t.conflict(&id("b", "B", 2, 7), &local).is_none(),
            "renewal is fine"
        );
        let (_, msg) = t.conflict(&id("d", "L", 4, 0), &local).unwrap();
        assert!(msg.ends_with("with this agent's ID"));
        // A failed holder no longer blocks the ID.
        t.on_down(&id("b", "B", 2, 0), now);
        assert!(t.conflict(&id("c", "B", 3, 0), &local).is_none());
    }

    #[test]
    fn a_restarted_identity_supersedes_only_its_own_past() {
        let old = id("a", "1", 1, 7);
        let restarted = id("a", "1", 1, 9);
        assert!(restarted.supersedes(&old));
        assert!(!old.supersedes(&restarted), "we are the stale one");
        assert!(!restarted.supersedes(&restarted), "same incarnation");
        assert!(!restarted.supersedes(&id("b", "1", 1, 7)), "other name");
        assert!(!restarted.supersedes(&id("a", "2", 1, 7)), "other node ID");
        assert!(!restarted.supersedes(&id("a", "1", 2, 7)), "other address");
        assert!(
            !restarted.supersedes(&NodeIdentity::placeholder(restarted.addr)),
            "join placeholder"
        );
    }

    #[test]
    fn remote_state_never_adds_our_address_or_a_node_id_conflict() {
        let now = Instant::now();
        let mut t = MemberTable::default();
        let local = id("local", "L", 9, 3);
        t.on_up(&id("b", "B", 2, 0), now);
        assert!(t.admits(&id("b", "B", 2, 0), &local));
        assert!(t.admits(&id("c", "C", 3, 0), &local), "unknown member");
        assert!(!t.admits(&id("local", "L", 9, 2), &local), "our stale self");
        assert!(
            !t.admits(&id("x", "X", 9, 0), &local),
            "someone at our address"
        );
        assert!(!t.admits(&id("d", "B", 4, 0), &local), "b's node ID");
        assert!(!t.admits(&id("e", "L", 5, 0), &local), "our node ID");
    }

    #[test]
    fn reaping_failed_after_reconnect_timeout_and_left_after_tombstone() {
        let t0 = Instant::now();
        let mut t = MemberTable::default();
        let (a, b) = (id("a", "1", 1, 0), id("b", "2", 2, 0));
        t.on_up(&a, t0);
        t.on_up(&b, t0);
        t.on_down(&a, t0);
        t.apply_leave_intent("b", 0, 1, t0);
        t.on_down(&b, t0);
        let (reconnect, tombstone) = (Duration::from_secs(10), Duration::from_secs(20));
        assert!(
            t.reap(t0 + Duration::from_secs(5), reconnect, tombstone)
                .is_empty()
        );
        let reaped = t.reap(t0 + Duration::from_secs(10), reconnect, tombstone);
        assert!(matches!(&reaped[..], [MemberEvent::Reap(m)] if m.name == "a"));
        let reaped = t.reap(t0 + Duration::from_secs(20), reconnect, tombstone);
        assert!(matches!(&reaped[..], [MemberEvent::Reap(m)] if m.name == "b"));
        assert!(t.get("a").is_none() && t.get("b").is_none());
    }

    #[test]
    fn wire_member_has_consul_status_codes() {
        let m = to_member(
            &id("a", "1", 8301, 0),
            MemberStatus::Failed,
            &BTreeMap::new(),
        );
        assert_eq!((m.status, m.port, m.addr.as_str()), (4, 8301, "127.0.0.1"));
        assert_eq!((m.protocol_cur, m.delegate_cur), (2, 4));
    }
}
