//! SWIM gossip membership (Consul's Serf LAN/WAN pools), built on foca.
//!
//! The agent uses a pool to learn which nodes exist and whether they are alive
//! (`/v1/agent/members`, `consul members`), to find servers (tags `role`, `port`,
//! `expect`), to detect failed and left nodes (catalog `serfHealth`, deregistration,
//! Raft membership) and to spread user events (`/v1/event/fire`).
//!
//! # Layout
//! - [`member`]: foca `Identity` ([`NodeIdentity`]) and the pure [`member::MemberTable`]
//!   that turns foca's up/down/rename notifications and our broadcasts into Serf
//!   statuses (alive/leaving/left/failed), tags and [`MemberEvent`]s.
//! - [`message`]: custom broadcasts (tags, leave intents, user events) and direct
//!   messages (tags pull, push/pull of the full membership, node-ID conflict refusal).
//! - [`crypto`]: packet framing (`[version][nonce][AES-GCM]`), [`Keyring`], [`keygen`].
//! - [`transport`]: [`Transport`], [`UdpTransport`], in-memory [`ChannelNetwork`].
//! - [`config`]: [`GossipConfig`] with Consul's LAN/WAN defaults.
//! - [`runtime`]: [`spawn_gossip`], the one task owning the foca value, and
//!   [`GossipHandle`].
//!
//! # Why tags are not in the identity
//! foca copies the sender's and the receiver's identity into every packet header and
//! every membership update; Consul's tag set is a few hundred bytes, which would leave
//! room for about one update per 1400-byte datagram. So the identity stays small
//! (name, node ID, address, bump) and tags travel as versioned custom broadcasts, plus
//! a direct pull whenever a member appears or is renamed (anti-entropy: a broadcast is
//! retransmitted only a few times and a node that joins later would miss it).

pub mod config;
pub mod crypto;
pub mod member;
pub mod message;
pub mod runtime;
pub mod transport;

#[cfg(test)]
mod tests;

pub use config::GossipConfig;
pub use crypto::{CryptoError, Keyring, keygen};
pub use member::{MemberEvent, NodeIdentity};
pub use runtime::{GossipError, GossipHandle, KeyringOp, USER_EVENT_SIZE_LIMIT, spawn_gossip};
pub use transport::{ChannelNetwork, ChannelTransport, Transport, UdpTransport};
