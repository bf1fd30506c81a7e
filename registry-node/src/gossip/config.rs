//! Gossip pool parameters: Consul's `gossip_lan` / `gossip_wan` defaults and a fast
//! set for tests, and their translation into foca's [`foca::Config`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};

use tokio::time::Duration;

use super::crypto::{ENCRYPTION_OVERHEAD, Keyring};

/// Parameters of one gossip pool (LAN or WAN) and of the local member.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// Local node name (WAN pool: `node.dc`).
    pub node_name: String,
    /// Local node UUID (`data_dir/node-id`); also the `id` tag by convention.
    pub node_id: String,
    /// Address others reach us at; `None` = the transport's local address.
    pub advertise: Option<SocketAddr>,
    /// Initial Serf tags (role, dc, id, port, build, vsn, …).
    pub tags: BTreeMap<String, String>,
    /// Gossip encryption keyring; `None` = plaintext (Consul without `-encrypt`).
    pub keyring: Option<Keyring>,
    /// Addresses to re-announce to whenever we find ourselves with no live member
    /// (foca does not recover from an empty membership by itself). Successful
    /// `join()` targets are added at run time.
    pub retry_join: Vec<SocketAddr>,
    /// Members each gossip round is sent to (`gossip_nodes`).
    pub gossip_nodes: usize,
    /// Gossip round period (`gossip_interval`).
    pub gossip_interval: Duration,
    /// Probe period (`probe_interval`).
    pub probe_interval: Duration,
    /// Direct probe timeout before indirect probes (`probe_timeout`).
    pub probe_timeout: Duration,
    /// Members asked to probe indirectly.
    pub indirect_checks: usize,
    /// Retransmit limit = `retransmit_mult × ⌈log10(n+1)⌉` (`retransmit_mult`).
    pub retransmit_mult: u32,
    /// Suspicion timeout = `suspicion_mult × max(1, log10 n) × probe_interval`.
    pub suspicion_mult: u32,
    /// Period of the full-state exchange with one random member (Serf push/pull, also
    /// done on join). Repairs what gossip missed: foca's own periodic announce answers
    /// with one datagram of ~20 random members, too little for a large pool.
    pub push_pull_interval: Duration,
    /// How often to try reconnecting to failed members (Serf `reconnect_interval`).
    pub reconnect_interval: Duration,
    /// How long a failed member is kept (and retried) before being reaped
    /// (`reconnect_timeout`, 72h).
    pub reconnect_timeout: Duration,
    /// How long a left member is remembered so stale gossip cannot resurrect it.
    pub tombstone_timeout: Duration,
    /// How often the reaper runs (Serf: 15s).
    pub reap_interval: Duration,
    /// Period of re-announcing to `retry_join` while we have no live member.
    pub rejoin_interval: Duration,
    /// How long `join()` waits for the contacted nodes to answer.
    pub join_timeout: Duration,
    /// How long `leave()` lets the leave intent spread before declaring itself down.
    pub leave_propagate_delay: Duration,
    /// Largest datagram we send (UDP: stay under the path MTU).
    pub max_packet_size: usize,
    /// User events kept for `recent_user_events()` (`/v1/event/list` shows 256).
    pub event_buffer: usize,
    /// Seed of the protocol RNG (member selection); `None` = random. Tests seed it.
    pub rng_seed: Option<u64>,
    /// First identity bump; `None` = derived from the wall clock so a restarted node
    /// supersedes its previous incarnation on the same address.
    pub initial_bump: Option<u16>,
}

impl GossipConfig {
    /// Consul's `gossip_lan` defaults.
    pub fn lan(node_name: impl Into<String>, node_id: impl Into<String>) -> Self {
        GossipConfig {
            node_name: node_name.into(),
            node_id: node_id.into(),
            advertise: None,
            tags: BTreeMap::new(),
            keyring: None,
            retry_join: Vec::new(),
            gossip_nodes: 3,
            gossip_interval: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            push_pull_interval: Duration::from_secs(30),
            reconnect_interval: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(72 * 3600),
            tombstone_timeout: Duration::from_secs(24 * 3600),
            reap_interval: Duration::from_secs(15),
            rejoin_interval: Duration::from_secs(30),
            join_timeout: Duration::from_secs(10),
            leave_propagate_delay: Duration::from_secs(1),
            max_packet_size: 1400,
            event_buffer: 256,
            rng_seed: None,
            initial_bump: None,
        }
    }

    /// Consul's `gossip_wan` defaults (servers only; names are `node.dc`).
    pub fn wan(node_name: impl Into<String>, node_id: impl Into<String>) -> Self {
        GossipConfig {
            gossip_nodes: 4,
            gossip_interval: Duration::from_millis(500),
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            suspicion_mult: 6,
            push_pull_interval: Duration::from_secs(60),
            leave_propagate_delay: Duration::from_secs(2),
            ..Self::lan(node_name, node_id)
        }
    }

    /// Fast timers for in-process tests (a node is declared failed in well under a
    /// second), a seeded RNG and a random node ID.
    pub fn for_test(node_name: impl Into<String>) -> Self {
        GossipConfig {
            gossip_interval: Duration::from_millis(20),
            probe_interval: Duration::from_millis(100),
            probe_timeout: Duration::from_millis(50),
            push_pull_interval: Duration::from_millis(500),
            reconnect_interval: Duration::from_millis(300),
            reconnect_timeout: Duration::from_secs(30),
            tombstone_timeout: Duration::from_secs(30),
            reap_interval: Duration::from_millis(500),
            rejoin_interval: Duration::from_millis(200),
            join_timeout: Duration::from_secs(1),
            leave_propagate_delay: Duration::from_millis(60),
            rng_seed: Some(7),
            initial_bump: Some(0),
            ..Self::lan(node_name, uuid::Uuid::new_v4().to_string())
        }
    }

    /// foca's datagram budget: ours minus the encryption frame and our kind byte.
    pub fn foca_packet_size(&self) -> usize {
        self.max_packet_size
            .saturating_sub(ENCRYPTION_OVERHEAD + 1)
            .max(256)
    }

    /// Push/pull period for a pool of `cluster_size` live members: memberlist's
    /// `pushPullScale`, which stretches the interval past 32 members (×3 at 100) so the
    /// full-state traffic grows like `n log n` rather than `n²`.
    pub fn push_pull_period(&self, cluster_size: usize) -> Duration {
        const THRESHOLD: f64 = 32.0;
        let n = cluster_size as f64;
        if n <= THRESHOLD {
            return self.push_pull_interval;
        }
        let multiplier = (n.log2() - THRESHOLD.log2()).ceil() + 1.0;
        self.push_pull_interval.mul_f64(multiplier)
    }

    /// foca's configuration for a pool of `cluster_size` live members (recomputed as the
    /// pool grows: retransmits and suspicion scale with `log10 n`).
    pub fn foca_config(&self, cluster_size: usize) -> foca::Config {
        let n = cluster_size.max(1) as f64;
        let max_tx = (f64::from(self.retransmit_mult) * (n + 1.0).log10().ceil()).clamp(1.0, 255.0);
        let suspicion = self
            .probe_interval
            .mul_f64(f64::from(self.suspicion_mult) * n.log10().max(1.0));
        let periodic = |frequency, num| {
            Some(foca::PeriodicParams {
                frequency,
                num_members: NonZeroUsize::new(num).unwrap_or(NonZeroUsize::MIN),
            })
        };
        foca::Config {
            probe_period: self.probe_interval,
            probe_rtt: self.probe_timeout,
            num_indirect_probes: NonZeroUsize::new(self.indirect_checks)
                .unwrap_or(NonZeroUsize::MIN),
            max_transmissions: NonZeroU8::new(max_tx as u8).unwrap_or(NonZeroU8::MIN),
            suspect_to_down_after: suspicion,
            // foca forgets a down identity with the reconnect timeout, which also ends
            // its reconnect attempts (periodic announces to down members), like Serf.
            remove_down_after: Some(self.reconnect_timeout),
            max_packet_size: NonZeroUsize::new(self.foca_packet_size())
                .unwrap_or(NonZeroUsize::MIN),
            notify_down_members: true,
            // Replaced by our push/pull (`Tick::PushPull`), which sends the full state.
            periodic_announce: None,
            periodic_announce_to_down_members: periodic(self.reconnect_interval, 2),
            periodic_gossip: periodic(self.gossip_interval, self.gossip_nodes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_and_wan_defaults_match_consul() {
        let lan = GossipConfig::lan("n", "id");
        assert_eq!(lan.probe_interval, Duration::from_secs(1));
        assert_eq!(lan.probe_timeout, Duration::from_millis(500));
        assert_eq!((lan.suspicion_mult, lan.gossip_nodes), (4, 3));
        assert_eq!(lan.gossip_interval, Duration::from_millis(200));
        assert_eq!(lan.reconnect_timeout, Duration::from_secs(259_200));
        let wan = GossipConfig::wan("n.dc1", "id");
        assert_eq!(
            (wan.probe_interval, wan.probe_timeout),
            (Duration::from_secs(5), Duration::from_secs(3))
        );
        assert_eq!((wan.suspicion_mult, wan.gossip_nodes), (6, 4));
        assert_eq!(wan.gossip_interval, Duration::from_millis(500));
    }

    #[test]
    fn foca_config_scales_with_cluster_size() {
        let lan = GossipConfig::lan("n", "id");
        let small = lan.foca_config(3);
        assert_eq!(small.suspect_to_down_after, Duration::from_secs(4));
        assert_eq!(small.max_transmissions.get(), 4);
        let big = lan.foca_config(100);
        assert_eq!(big.suspect_to_down_after, Duration::from_secs(8));
        assert_eq!(big.max_transmissions.get(), 12);
        assert_eq!(big.max_packet_size.get(), 1400 - ENCRYPTION_OVERHEAD - 1);
        assert!(big.periodic_announce.is_none(), "replaced by push/pull");
    }

    #[test]
    fn push_pull_period_scales_like_memberlist() {
        let lan = GossipConfig::lan("n", "id");
        assert_eq!(lan.push_pull_period(3), Duration::from_secs(30));
        assert_eq!(lan.push_pull_period(32), Duration::from_secs(30));
        assert_eq!(lan.push_pull_period(33), Duration::from_secs(60));
        assert_eq!(lan.push_pull_period(100), Duration::from_secs(90));
        assert_eq!(lan.push_pull_period(1000), Duration::from_secs(180));
    }
}
