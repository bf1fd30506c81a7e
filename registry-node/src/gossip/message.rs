//! What we send besides foca's own SWIM traffic.
//!
//! - [`Broadcast`]s ride on foca's custom broadcasts: piggybacked on probes and gossip,
//!   retransmitted `max_transmissions` times, deduplicated by [`BroadcastInbox`]. They
//!   carry tags updates, leave intents (so a graceful leave reads `left`, not `failed`)
//!   and user events.
//! - [`Direct`] messages go to one address outside foca: a tags pull on every member
//!   (re)appearance (the anti-entropy that broadcasts alone lack, since a broadcast is
//!   only retransmitted a few times), the push/pull exchange of the full membership
//!   (Serf's push/pull: on join and periodically with one random member) and the
//!   refusal of a node-ID conflict.
//!
//! Inside a sealed datagram the first byte says which: [`KIND_FOCA`] or [`KIND_DIRECT`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::mem;
use std::sync::{Arc, Mutex};

use foca::{BroadcastHandler, Invalidates, Member};
use serde::{Deserialize, Serialize};

use super::member::{NodeIdentity, version_newer};

/// Datagram body is a foca packet.
pub const KIND_FOCA: u8 = 0;
/// Datagram body is a postcard [`Direct`].
pub const KIND_DIRECT: u8 = 1;

/// Most datagrams one push/pull message is split into (about 20 members each): bounds
/// the burst a join or a periodic exchange sends; members beyond it (down ones go last)
/// are left to gossip.
pub const MAX_PUSH_PULL_CHUNKS: usize = 64;

/// How many user-event IDs we remember for deduplication.
const SEEN_EVENTS: usize = 4096;

/// A user event on the wire (Serf's `messageUserEvent` plus Consul's filters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEventMsg {
    /// Event UUID (deduplication key).
    pub id: String,
    /// Event name.
    pub name: String,
    /// Opaque payload.
    pub payload: Option<Vec<u8>>,
    /// Node name regex filter.
    pub node_filter: String,
    /// Service name regex filter.
    pub service_filter: String,
    /// Tag regex filter.
    pub tag_filter: String,
    /// Lamport time on the event clock.
    pub ltime: u64,
}

/// A custom broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Broadcast {
    /// A member's full tag set at `(id.bump, ltime)`.
    Tags {
        /// The member.
        id: NodeIdentity,
        /// Member-clock Lamport time.
        ltime: u64,
        /// All tags (not a delta, so any one message is enough).
        tags: BTreeMap<String, String>,
    },
    /// Member `name` (identity `bump`) is leaving; sent by itself or by `force-leave`.
    Leave {
        /// Member name.
        name: String,
        /// The identity that leaves.
        bump: u16,
        /// Member-clock Lamport time.
        ltime: u64,
    },
    /// A user event.
    User(UserEventMsg),
}

/// foca's dedup key for a [`Broadcast`]: a newer one replaces an older one in the
/// retransmit queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastKey {
    /// Tags of a member.
    Tags(String),
    /// Leave of a member.
    Leave(String),
    /// A user event by ID.
    User(String),
}

impl Invalidates for BroadcastKey {
    fn invalidates(&self, other: &Self) -> bool {
        // The handler only accepts strictly newer items, so a key for the same member
        // always supersedes what is queued.
        self == other
    }
}

/// A message to one address, outside foca.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direct {
    /// "Send me your tags" (sent when a member appears or is renamed).
    TagsRequest {
        /// Where to reply.
        from: NodeIdentity,
    },
    /// The reply: the sender's current tags.
    TagsReply {
        /// The sender.
        id: NodeIdentity,
        /// Member-clock Lamport time of these tags.
        ltime: u64,
        /// Tags.
        tags: BTreeMap<String, String>,
    },
    /// One datagram of a full membership state (Serf's push/pull). A request (`reply ==
    /// false`) is answered with the receiver's own state, once, on its chunk 0.
    PushPull {
        /// The sender (applied as alive, like the source of a foca packet).
        from: NodeIdentity,
        /// Whether this answers our request (then it is not answered again).
        reply: bool,
        /// Index of this datagram in the exchange.
        chunk: u16,
        /// Members as foca knows them (identity, incarnation, state).
        members: Vec<Member<NodeIdentity>>,
    },
    /// "You were refused": node-ID conflict, with Consul's message.
    Refused {
        /// Why.
        message: String,
    },
}

/// Custom-broadcast errors (foca wraps them in `Error::CustomBroadcast`).
#[derive(Debug, thiserror::Error)]
#[error("undecodable gossip broadcast: {0}")]
pub struct BroadcastDecodeError(#[from] postcard::Error);

/// Accepted broadcasts waiting for the runtime. Shared with the handler because foca
/// owns the handler and offers no accessor; both live on the one gossip task, so the
/// mutex is never contended (a std mutex, never held across `.await`).
pub type Inbox = Arc<Mutex<Vec<Broadcast>>>;

/// foca's [`BroadcastHandler`]: decides whether a broadcast is news (then foca keeps
/// disseminating it and we queue it for the runtime) or stale (dropped).
#[derive(Debug, Default)]
pub struct BroadcastInbox {
    inbox: Inbox,
    tags: HashMap<String, (u16, u64)>,
    leaves: HashMap<String, (u16, u64)>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
}

impl BroadcastInbox {
    /// A handler and the inbox the runtime drains.
    pub fn new() -> (Self, Inbox) {
        let h = BroadcastInbox::default();
        let inbox = h.inbox.clone();
        (h, inbox)
    }

    fn remember_event(&mut self, id: &str) -> bool {
        if !self.seen.insert(id.to_owned()) {
            return false;
        }
        self.seen_order.push_back(id.to_owned());
        if self.seen_order.len() > SEEN_EVENTS
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

impl BroadcastHandler<NodeIdentity> for BroadcastInbox {
    type Key = BroadcastKey;
    type Error = BroadcastDecodeError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&NodeIdentity>,
    ) -> Result<Option<BroadcastKey>, BroadcastDecodeError> {
        let msg: Broadcast = postcard::from_bytes(data)?;
        let key = match &msg {
            Broadcast::Tags { id, ltime, .. } => {
                let known = self.tags.get(&id.name).copied();
                if !version_newer((id.bump, *ltime), known) {
                    return Ok(None);
                }
                self.tags.insert(id.name.clone(), (id.bump, *ltime));
                BroadcastKey::Tags(id.name.clone())
            }
            Broadcast::Leave { name, bump, ltime } => {
                let known = self.leaves.get(name).copied();
                if !version_newer((*bump, *ltime), known) {
                    return Ok(None);
                }
                self.leaves.insert(name.clone(), (*bump, *ltime));
                BroadcastKey::Leave(name.clone())
            }
            Broadcast::User(ev) => {
                if !self.remember_event(&ev.id) {
                    return Ok(None);
                }
                BroadcastKey::User(ev.id.clone())
            }
        };
        self.inbox.lock().expect("gossip inbox poisoned").push(msg);
        Ok(Some(key))
    }
}

/// Encodes a broadcast for `Foca::add_broadcast`.
pub fn encode_broadcast(msg: &Broadcast) -> Vec<u8> {
    postcard::to_allocvec(msg).expect("postcard encodes plain data")
}

/// Encodes a direct message with its kind byte.
pub fn encode_direct(msg: &Direct) -> Vec<u8> {
    let mut out = vec![KIND_DIRECT];
    out.extend(postcard::to_allocvec(msg).expect("postcard encodes plain data"));
    out
}

/// Encodes a membership state as [`Direct::PushPull`] datagrams (kind byte included) of
/// at most `budget` bytes each, at most [`MAX_PUSH_PULL_CHUNKS`] of them; members that do
/// not fit are dropped, so callers list the important ones first. Always at least one
/// datagram, so a request with nothing to tell still asks for the peer's state.
pub fn encode_push_pull(
    from: &NodeIdentity,
    reply: bool,
    members: impl IntoIterator<Item = Member<NodeIdentity>>,
    budget: usize,
) -> Vec<Vec<u8>> {
    let encode = |chunk: usize, members: Vec<Member<NodeIdentity>>| {
        encode_direct(&Direct::PushPull {
            from: from.clone(),
            reply,
            chunk: chunk as u16,
            members,
        })
    };
    // An empty chunk plus the worst case growth of the length varint (2 more bytes up to
    // 16383 members, far more than fit).
    let overhead = encode(MAX_PUSH_PULL_CHUNKS, Vec::new()).len() + 2;
    let mut out = Vec::new();
    let (mut current, mut size) = (Vec::new(), overhead);
    for m in members {
        let len = postcard::experimental::serialized_size(&m).unwrap_or(usize::MAX);
        if overhead.saturating_add(len) > budget {
            continue;
        }
        if size + len > budget {
            out.push(encode(out.len(), mem::take(&mut current)));
            size = overhead;
            if out.len() == MAX_PUSH_PULL_CHUNKS {
                return out;
            }
        }
        size += len;
        current.push(m);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(encode(out.len(), current));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(name: &str, bump: u16) -> NodeIdentity {
        NodeIdentity {
            name: name.into(),
            node_id: "x".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            bump,
        }
    }

    #[test]
    fn handler_accepts_news_once_and_queues_it() {
        let (mut h, inbox) = BroadcastInbox::new();
        let tags = |ltime| {
            encode_broadcast(&Broadcast::Tags {
                id: ident("a", 0),
                ltime,
                tags: BTreeMap::new(),
            })
        };
        assert_eq!(
            h.receive_item(&tags(2), None).unwrap(),
            Some(BroadcastKey::Tags("a".into()))
        );
        assert_eq!(h.receive_item(&tags(2), None).unwrap(), None, "duplicate");
        assert_eq!(h.receive_item(&tags(1), None).unwrap(), None, "stale");
        let ev = encode_broadcast(&Broadcast::User(UserEventMsg {
            id: "e1".into(),
            name: "deploy".into(),
            payload: Some(b"v2".to_vec()),
            node_filter: String::new(),
            service_filter: String::new(),
            tag_filter: String::new(),
            ltime: 1,
        }));
        assert!(h.receive_item(&ev, None).unwrap().is_some());
        assert!(h.receive_item(&ev, None).unwrap().is_none());
        let leave = encode_broadcast(&Broadcast::Leave {
            name: "a".into(),
            bump: 0,
            ltime: 3,
        });
        assert!(h.receive_item(&leave, None).unwrap().is_some());
        assert!(h.receive_item(&leave, None).unwrap().is_none());
        assert_eq!(inbox.lock().unwrap().len(), 3);
        assert!(h.receive_item(b"\xff\xff\xff", None).is_err());
    }

    fn decode_push_pull(packet: &[u8]) -> (bool, u16, Vec<Member<NodeIdentity>>) {
        assert_eq!(packet[0], KIND_DIRECT);
        match postcard::from_bytes(&packet[1..]).unwrap() {
            Direct::PushPull {
                reply,
                chunk,
                members,
                ..
            } => (reply, chunk, members),
            other => panic!("not a push/pull: {other:?}"),
        }
    }

    #[test]
    fn push_pull_state_is_chunked_under_the_budget_in_order() {
        let me = ident("me", 1);
        let members: Vec<_> = (0..200u16)
            .map(|i| {
                let id = NodeIdentity {
                    name: format!("node-{i:03}"),
                    node_id: "4f0e2a52-6b1c-4f55-9c1a-0d6a4f7c2b11".into(),
                    addr: ([10, 0, (i >> 8) as u8, i as u8], 8301).into(),
                    bump: i,
                };
                Member::new(id, i, foca::State::Alive)
            })
            .collect();
        let budget = 1400 - 29 - 1;
        let packets = encode_push_pull(&me, true, members.clone(), budget);
        assert!(packets.len() > 5, "{} datagrams", packets.len());
        let mut seen = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            assert!(p.len() <= budget, "datagram {i}: {} bytes", p.len());
            let (reply, chunk, part) = decode_push_pull(p);
            assert!(reply && usize::from(chunk) == i && !part.is_empty());
            seen.extend(part);
        }
        assert_eq!(seen, members, "every member once, in order");
        // Nothing to tell still asks for the peer's state.
        let empty = encode_push_pull(&me, false, Vec::new(), budget);
        assert_eq!(empty.len(), 1);
        assert_eq!(decode_push_pull(&empty[0]), (false, 0, Vec::new()));
    }

    #[test]
    fn push_pull_state_is_bounded() {
        let me = ident("me", 1);
        let many = (0..u16::MAX).map(|i| Member::alive(ident(&format!("n{i}"), i)));
        let packets = encode_push_pull(&me, false, many, 300);
        assert_eq!(packets.len(), MAX_PUSH_PULL_CHUNKS);
        assert!(packets.iter().all(|p| p.len() <= 300));
        // A member larger than a datagram is skipped, not sent oversized.
        let huge = Member::alive(ident(&"x".repeat(400), 0));
        let packets = encode_push_pull(&me, false, [huge, Member::alive(ident("ok", 0))], 300);
        assert_eq!(packets.len(), 1);
        assert_eq!(decode_push_pull(&packets[0]).2.len(), 1);
    }

    #[test]
    fn keys_invalidate_same_subject_only() {
        let a = BroadcastKey::Tags("a".into());
        assert!(a.invalidates(&BroadcastKey::Tags("a".into())));
        assert!(!a.invalidates(&BroadcastKey::Tags("b".into())));
        assert!(!a.invalidates(&BroadcastKey::Leave("a".into())));
    }
}
