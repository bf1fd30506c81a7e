//! In-process gossip pools over [`ChannelNetwork`] with fast timers and virtual time
//! (`start_paused`), plus one pool over real UDP on 127.0.0.1. Every wait is on a
//! condition bounded by a timeout; sleeps are only used to let traffic settle before
//! checking that something did *not* happen (no duplicate deliveries).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use registry_api::agent::{Member, MemberStatus};
use registry_api::event::UserEvent;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::time::{Duration, Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::member::NodeIdentity;
use super::*;

/// Virtual-time bound for any single condition.
const WAIT: Duration = Duration::from_secs(60);

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn status_of(members: &[Member], name: &str) -> Option<MemberStatus> {
    members
        .iter()
        .find(|m| m.name == name)
        .map(|m| MemberStatus::from_code(m.status))
}

fn all_alive(members: &[Member], n: usize) -> bool {
    members.len() == n
        && members
            .iter()
            .all(|m| m.status == MemberStatus::Alive as u8)
}

async fn wait_until(h: &GossipHandle, what: &str, pred: impl Fn(&[Member]) -> bool) {
    match timeout(WAIT, h.wait_members(pred)).await {
        Ok(Ok(())) => {}
        _ => panic!(
            "{}: timed out waiting for {what}; members: {:#?}",
            h.local_name(),
            h.members()
        ),
    }
}

struct Pool {
    net: ChannelNetwork,
    token: CancellationToken,
}

impl Pool {
    fn new() -> Self {
        Pool {
            net: ChannelNetwork::new(),
            token: CancellationToken::new(),
        }
    }

    fn start(&self, mut cfg: GossipConfig) -> GossipHandle {
        // Different member-selection sequences per node, still reproducible.
        cfg.rng_seed = Some(cfg.node_name.bytes().map(u64::from).sum());
        spawn_gossip(cfg, self.net.add_node(), self.token.child_token())
    }

    fn node(&self, name: &str, role: &str) -> GossipHandle {
        let mut cfg = GossipConfig::for_test(name);
        cfg.tags = tags(&[("role", role), ("dc", "dc1")]);
        self.start(cfg)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Starts `names` and joins them all through the first one.
async fn three(pool: &Pool) -> Vec<GossipHandle> {
    let nodes = vec![
        pool.node("a", "consul"),
        pool.node("b", "node"),
        pool.node("c", "node"),
    ];
    let seed = nodes[0].local_addr();
    for n in &nodes[1..] {
        assert_eq!(n.join(vec![seed]).await.unwrap(), 1);
    }
    for n in &nodes {
        wait_until(n, "3 alive", |m| all_alive(m, 3)).await;
    }
    nodes
}

/// - three nodes join through one seed
/// - every node lists 3 alive members with everyone's tags, address and port
#[tokio::test(start_paused = true)]
async fn t10_three_nodes_join_through_one_seed_and_see_tags() {
    let pool = Pool::new();
    let nodes = three(&pool).await;
    info!("--- step: check tags everywhere");
    for n in &nodes {
        wait_until(n, "tags of all", |m| {
            m.len() == 3
                && m.iter()
                    .all(|x| x.tags.get("dc").map(String::as_str) == Some("dc1"))
                && m.iter().find(|x| x.name == "a").unwrap().tags["role"] == "consul"
        })
        .await;
        let m = n.members();
        let a = m.iter().find(|x| x.name == "a").unwrap();
        assert_eq!(
            (a.addr.as_str(), a.port),
            ("127.0.0.1", nodes[0].local_addr().port())
        );
        assert_eq!(a.protocol_cur, 2);
    }
}

/// - isolate c: a and b see c go suspect → failed, c sees the others fail
/// - heal: c re-announces (its membership dropped to zero) and is alive again everywhere
#[tokio::test(start_paused = true)]
async fn t30_isolated_node_fails_then_rejoins_after_heal() {
    let pool = Pool::new();
    let nodes = three(&pool).await;
    let mut a_events = nodes[0].events();
    info!("--- step: isolate c");
    pool.net.isolate(nodes[2].local_addr());
    for n in &nodes[..2] {
        wait_until(n, "c failed", |m| {
            status_of(m, "c") == Some(MemberStatus::Failed)
        })
        .await;
    }
    wait_until(&nodes[2], "a, b failed", |m| {
        status_of(m, "a") == Some(MemberStatus::Failed)
            && status_of(m, "b") == Some(MemberStatus::Failed)
    })
    .await;
    let mut saw_fail = false;
    while let Ok(ev) = a_events.try_recv() {
        saw_fail |= matches!(ev, MemberEvent::Fail(m) if m.name == "c");
    }
    assert!(saw_fail, "a published a Fail event for c");
    info!("--- step: heal");
    pool.net.heal();
    for n in &nodes {
        wait_until(n, "all alive again", |m| all_alive(m, 3)).await;
    }
}

/// - b leaves gracefully: a and c record `left` (not `failed`), b itself `left`
#[tokio::test(start_paused = true)]
async fn t10_graceful_leave_is_seen_as_left() {
    let pool = Pool::new();
    let nodes = three(&pool).await;
    nodes[1].leave().await.unwrap();
    assert_eq!(
        status_of(&nodes[1].members(), "b"),
        Some(MemberStatus::Left)
    );
    for n in [&nodes[0], &nodes[2]] {
        wait_until(n, "b left", |m| {
            status_of(m, "b") == Some(MemberStatus::Left)
        })
        .await;
    }
    // Leaving twice is fine; joining after leaving is not.
    nodes[1].leave().await.unwrap();
    assert_eq!(
        nodes[1].join(vec![nodes[0].local_addr()]).await,
        Err(GossipError::Left)
    );
}

/// - b starts with `retry_join = [a]` and joins without an explicit `join()`
/// - b is isolated until both sides declare each other failed (b is alone: foca's
///   zero-membership gap); neither side retries failed members on its own (huge
///   reconnect interval), so after the heal only b's re-announce brings it back
#[tokio::test(start_paused = true)]
async fn t30_alone_node_reannounces_to_join_addresses() {
    let pool = Pool::new();
    let mut a_cfg = GossipConfig::for_test("a");
    a_cfg.reconnect_interval = Duration::from_secs(3600);
    let a = pool.start(a_cfg);
    let mut b_cfg = GossipConfig::for_test("b");
    b_cfg.reconnect_interval = Duration::from_secs(3600);
    b_cfg.retry_join = vec![a.local_addr()];
    let b = pool.start(b_cfg);
    for n in [&a, &b] {
        wait_until(n, "a+b", |m| all_alive(m, 2)).await;
    }
    info!("--- step: isolate b");
    pool.net.isolate(b.local_addr());
    wait_until(&a, "b failed", |m| {
        status_of(m, "b") == Some(MemberStatus::Failed)
    })
    .await;
    wait_until(&b, "a failed", |m| {
        status_of(m, "a") == Some(MemberStatus::Failed)
    })
    .await;
    info!("--- step: heal");
    pool.net.heal();
    for n in [&a, &b] {
        wait_until(n, "a+b alive again", |m| all_alive(m, 2)).await;
    }
}

/// - c fails and stays away: after `reconnect_timeout` it is reaped from the list
#[tokio::test(start_paused = true)]
async fn t30_failed_member_is_reaped_after_reconnect_timeout() {
    let pool = Pool::new();
    let nodes = three(&pool).await;
    let mut a_events = nodes[0].events();
    pool.net.isolate(nodes[2].local_addr());
    wait_until(&nodes[0], "c failed", |m| {
        status_of(m, "c") == Some(MemberStatus::Failed)
    })
    .await;
    wait_until(&nodes[0], "c reaped", |m| status_of(m, "c").is_none()).await;
    let mut reaped = false;
    while let Ok(ev) = a_events.try_recv() {
        reaped |= matches!(ev, MemberEvent::Reap(m) if m.name == "c");
    }
    assert!(reaped);
    assert_eq!(nodes[0].members().len(), 2);
}

/// - c fails (isolated), a force-leaves it: everyone records `left`
#[tokio::test(start_paused = true)]
async fn t30_force_leave_turns_failed_into_left() {
    let pool = Pool::new();
    let nodes = three(&pool).await;
    pool.net.isolate(nodes[2].local_addr());
    wait_until(&nodes[1], "c failed", |m| {
        status_of(m, "c") == Some(MemberStatus::Failed)
    })
    .await;
    nodes[0].force_leave("c").await.unwrap();
    for n in &nodes[..2] {
        wait_until(n, "c left", |m| {
            status_of(m, "c") == Some(MemberStatus::Left)
        })
        .await;
    }
    assert_eq!(
        nodes[0].force_leave("zz").await,
        Err(GossipError::UnknownMember("zz".into()))
    );
}

/// - b changes its tags: a and c see the new tags and get an Update event
#[tokio::test(start_paused = true)]
async fn t10_tags_update_propagates() {
    let pool = Pool::new();
    let nodes = three(&pool).await;
    let mut c_events = nodes[2].events();
    nodes[1]
        .set_tags(tags(&[
            ("role", "node"),
            ("dc", "dc1"),
            ("build", "9.9:abc"),
        ]))
        .await
        .unwrap();
    for n in &nodes {
        wait_until(n, "b build tag", |m| {
            m.iter().any(|x| {
                x.name == "b" && x.tags.get("build").map(String::as_str) == Some("9.9:abc")
            })
        })
        .await;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let ev = timeout(deadline - Instant::now(), c_events.recv())
            .await
            .unwrap()
            .unwrap();
        if matches!(&ev, MemberEvent::Update(m) if m.name == "b") {
            break;
        }
    }
}

/// - b fires a user event; every node (b included) delivers it exactly once, with
///   the Lamport time and ID b assigned; oversized events are refused
#[tokio::test(start_paused = true)]
async fn t10_user_event_reaches_all_exactly_once() {
    let pool = Pool::new();
    let nodes = three(&pool).await;
    let mut rxs: Vec<_> = nodes.iter().map(GossipHandle::user_events).collect();
    let fired = nodes[1]
        .fire_event(UserEvent {
            name: "deploy".into(),
            payload: Some(b"v2".to_vec()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(fired.id.len(), 36);
    assert!(fired.ltime >= 1);
    for rx in &mut rxs {
        let got = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(got, fired);
    }
    // Let every retransmission play out, then check nothing was delivered twice.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for rx in &mut rxs {
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    }
    assert_eq!(
        nodes[0].recent_user_events().await.unwrap(),
        vec![fired.clone()]
    );
    // The event clock is shared: a later event from another node is later.
    let second = nodes[2]
        .fire_event(UserEvent {
            name: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(second.ltime > fired.ltime);
    let big = UserEvent {
        name: "big".into(),
        payload: Some(vec![0; 600]),
        ..Default::default()
    };
    assert!(matches!(
        nodes[0].fire_event(big).await,
        Err(GossipError::EventTooLarge { .. })
    ));
}

/// - a and b share a key and join; c with another key cannot join a
/// - d has the pool's key only as an installed secondary (its primary is new): the pool
///   installed d's primary too, so both directions decrypt and d joins
#[tokio::test(start_paused = true)]
async fn t30_encryption_same_key_joins_other_key_cannot() {
    let pool = Pool::new();
    let (k1, k2) = (keygen(), keygen());
    let with = |name: &str, ring: Keyring| {
        let mut cfg = GossipConfig::for_test(name);
        cfg.keyring = Some(ring);
        pool.start(cfg)
    };
    let mut ring_a = Keyring::new(&k1).unwrap();
    ring_a.install(&k2).unwrap();
    let a = with("a", ring_a);
    let b = with("b", Keyring::new(&k1).unwrap());
    assert_eq!(b.join(vec![a.local_addr()]).await.unwrap(), 1);
    wait_until(&a, "a+b", |m| all_alive(m, 2)).await;
    info!("--- step: wrong key");
    let c = with("c", Keyring::new(&keygen()).unwrap());
    assert!(matches!(
        c.join(vec![a.local_addr()]).await,
        Err(GossipError::NoneContacted(_))
    ));
    assert_eq!(c.members().len(), 1);
    info!("--- step: rotated key");
    let mut ring_d = Keyring::new(&k2).unwrap();
    ring_d.install(&k1).unwrap();
    let d = with("d", ring_d);
    assert_eq!(d.join(vec![a.local_addr()]).await.unwrap(), 1);
    wait_until(&d, "a, b, d", |m| all_alive(m, 3)).await;
    wait_until(&a, "a, b, d", |m| all_alive(m, 3)).await;
    // A plaintext node cannot talk to the encrypted pool either.
    let e = pool.start(GossipConfig::for_test("e"));
    assert!(e.join(vec![a.local_addr()]).await.is_err());
}

/// - rotate the pool key at run time (install → use → remove) without losing members;
///   stats report the pool
#[tokio::test(start_paused = true)]
async fn t30_keyring_rotation_at_runtime() {
    let pool = Pool::new();
    let k1 = keygen();
    let start = |name: &str| {
        let mut cfg = GossipConfig::for_test(name);
        cfg.keyring = Some(Keyring::new(&k1).unwrap());
        pool.start(cfg)
    };
    let (a, b) = (start("a"), start("b"));
    b.join(vec![a.local_addr()]).await.unwrap();
    wait_until(&a, "a+b", |m| all_alive(m, 2)).await;
    let k2 = keygen();
    for n in [&a, &b] {
        assert_eq!(
            n.keyring(KeyringOp::Install(k2.clone()))
                .await
                .unwrap()
                .len(),
            2
        );
    }
    for n in [&a, &b] {
        n.keyring(KeyringOp::Use(k2.clone())).await.unwrap();
    }
    for n in [&a, &b] {
        assert_eq!(
            n.keyring(KeyringOp::Remove(k1.clone())).await.unwrap(),
            vec![k2.clone()]
        );
    }
    // Still talking under the new key: a tag change gets through.
    b.set_tags(tags(&[("rotated", "yes")])).await.unwrap();
    wait_until(&a, "rotated tag", |m| {
        m.iter().any(|x| x.tags.contains_key("rotated"))
    })
    .await;
    let stats = a.stats().await.unwrap();
    assert_eq!(
        (stats["members"].as_str(), stats["encrypted"].as_str()),
        ("2", "true")
    );
    let plain = pool.start(GossipConfig::for_test("p"));
    assert_eq!(
        plain.keyring(KeyringOp::List).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        plain.keyring(KeyringOp::Install(k1)).await,
        Err(GossipError::NotEncrypted)
    );
}

/// - c joins with b's node ID: refused with Consul's message, reported as a Conflict
///   event on a, and never listed
#[tokio::test(start_paused = true)]
async fn t30_node_id_conflict_is_refused() {
    const ID: &str = "11111111-2222-3333-4444-555555555555";
    let pool = Pool::new();
    let a = pool.node("a", "consul");
    let mut b_cfg = GossipConfig::for_test("b");
    b_cfg.node_id = ID.into();
    let b = pool.start(b_cfg);
    b.join(vec![a.local_addr()]).await.unwrap();
    wait_until(&a, "a+b", |m| all_alive(m, 2)).await;
    let mut a_events = a.events();
    info!("--- step: c joins with b's node ID");
    let mut c_cfg = GossipConfig::for_test("c");
    c_cfg.node_id = ID.into();
    let c = pool.start(c_cfg);
    let err = c.join(vec![a.local_addr()]).await.unwrap_err();
    let expected = format!("Member 'c' has conflicting node ID '{ID}' with member 'b'");
    assert_eq!(err, GossipError::Refused(expected.clone()));
    let deadline = Instant::now() + WAIT;
    loop {
        let ev = timeout(deadline - Instant::now(), a_events.recv())
            .await
            .unwrap()
            .unwrap();
        if let MemberEvent::Conflict {
            name,
            existing,
            message,
            ..
        } = ev
        {
            assert_eq!((name.as_str(), existing.as_str()), ("c", "b"));
            assert_eq!(message, expected);
            break;
        }
    }
    // Let gossip settle: c must never be listed, b must stay alive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in [&a, &b] {
        assert!(status_of(&n.members(), "c").is_none());
        assert_eq!(status_of(&n.members(), "b"), Some(MemberStatus::Alive));
    }
}

/// - 100 nodes join through one seed; measures (does not assert) the virtual and wall
///   time until every node lists 100 alive members
#[tokio::test(start_paused = true)]
async fn t50_hundred_members_converge() {
    const N: usize = 100;
    let pool = Pool::new();
    let nodes: Vec<GossipHandle> = (0..N)
        .map(|i| {
            let mut cfg = GossipConfig::for_test(format!("node-{i:03}"));
            cfg.tags = tags(&[("role", "node"), ("dc", "dc1")]);
            pool.start(cfg)
        })
        .collect();
    let seed = nodes[0].local_addr();
    let (virt, wall) = (Instant::now(), std::time::Instant::now());
    let joins = nodes[1..].iter().map(|n| n.join(vec![seed]));
    for r in futures::future::join_all(joins).await {
        assert_eq!(r.unwrap(), 1);
    }
    for n in &nodes {
        wait_until(n, "100 alive", |m| all_alive(m, N)).await;
    }
    eprintln!(
        "gossip: {N} members converged in {:?} virtual ({:?} wall)",
        virt.elapsed(),
        wall.elapsed()
    );
}

/// - two nodes over real UDP sockets bound to 127.0.0.1:0 (real time), encrypted
#[tokio::test]
async fn t50_two_nodes_over_udp() {
    let token = CancellationToken::new();
    let key = keygen();
    let start = |name: &str, sock: tokio::net::UdpSocket| {
        let mut cfg = GossipConfig::for_test(name);
        cfg.keyring = Some(Keyring::new(&key).unwrap());
        // Real time on a shared 2-core machine: slower probes than the paused tests.
        cfg.probe_interval = Duration::from_millis(500);
        cfg.probe_timeout = Duration::from_millis(250);
        spawn_gossip(cfg, UdpTransport::new(sock).unwrap(), token.child_token())
    };
    let a = start(
        "a",
        tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );
    let b = start(
        "b",
        tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );
    let a_addr: SocketAddr = a.local_addr();
    assert_eq!(b.join(vec![a_addr]).await.unwrap(), 1);
    for n in [&a, &b] {
        timeout(Duration::from_secs(20), n.wait_members(|m| all_alive(m, 2)))
            .await
            .unwrap()
            .unwrap();
    }
    b.leave().await.unwrap();
    timeout(
        Duration::from_secs(20),
        a.wait_members(|m| status_of(m, "b") == Some(MemberStatus::Left)),
    )
    .await
    .unwrap()
    .unwrap();
    token.cancel();
    timeout(Duration::from_secs(5), a.stopped()).await.unwrap();
}

/// Starts a node at `addr` (or a fresh address) with LAN-like slow periodic announces
/// (30 s), so nothing but the mechanism under test can bring a restarted node back.
fn start_at(
    net: &ChannelNetwork,
    name: &str,
    addr: Option<SocketAddr>,
    bump: u16,
    token: CancellationToken,
) -> GossipHandle {
    let mut cfg = GossipConfig::for_test(name);
    cfg.node_id = format!("id-{name}");
    cfg.rng_seed = Some(cfg.node_name.bytes().map(u64::from).sum::<u64>() + u64::from(bump));
    cfg.initial_bump = Some(bump);
    cfg.push_pull_interval = Duration::from_secs(30);
    cfg.reconnect_interval = Duration::from_secs(30);
    let transport = match addr {
        Some(a) => net.attach(a),
        None => net.add_node(),
    };
    spawn_gossip(cfg, transport, token)
}

/// - a, b, c converge; b is killed (no leave) and a new process starts right away on
///   b's address with b's name and node ID and a newer bump, while a and c still hold
///   the old b alive or suspect
/// - with a join of the survivors, and without one (killed before it wrote its
///   snapshot): everyone lists everyone alive within 2 s. Before the fix the second
///   case took until a survivor's next periodic announce (~30 s): foca drops the
///   survivors' probes addressed to the old incarnation, so nobody answered them
#[tokio::test(start_paused = true)]
async fn t30_restarted_node_is_back_quickly_with_or_without_join() {
    for (with_join, delay_ms) in [(true, 0), (false, 0), (false, 150), (false, 300)] {
        let net = ChannelNetwork::new();
        let root = CancellationToken::new();
        let _stop = root.clone().drop_guard();
        let a = start_at(&net, "a", None, 0, root.child_token());
        let b_token = root.child_token();
        let b = start_at(&net, "b", None, 0, b_token.clone());
        let c = start_at(&net, "c", None, 0, root.child_token());
        for n in [&b, &c] {
            n.join(vec![a.local_addr()]).await.unwrap();
        }
        for n in [&a, &b, &c] {
            wait_until(n, "3 alive", |m| all_alive(m, 3)).await;
        }
        info!(with_join, delay_ms, "--- step: kill b and restart it");
        b_token.cancel();
        b.stopped().await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let t0 = Instant::now();
        let b2 = start_at(&net, "b", Some(b.local_addr()), 1, root.child_token());
        if with_join {
            let joined = b2.join(vec![a.local_addr(), c.local_addr()]).await;
            assert_eq!(joined, Ok(2));
        }
        for n in [&a, &c, &b2] {
            let back = timeout(Duration::from_secs(2), n.wait_members(|m| all_alive(m, 3))).await;
            assert!(
                matches!(back, Ok(Ok(()))),
                "join={with_join}, restart after {delay_ms} ms: {} after {:?}: {:#?}",
                n.local_name(),
                t0.elapsed(),
                n.members()
            );
        }
    }
}

/// - 100 nodes with Consul's LAN timings join through one seed at once: every node
///   lists all 100 alive within 3 s (virtual). Before push/pull the last pairs waited
///   for a foca feed (a random ~20 members) or a probe, 20–40 s here
#[tokio::test(start_paused = true)]
async fn t50_hundred_lan_members_converge_within_seconds() {
    const N: usize = 100;
    let pool = Pool::new();
    let nodes: Vec<GossipHandle> = (0..N)
        .map(|i| {
            let mut cfg = GossipConfig::lan(format!("node-{i:03}"), format!("id-{i}"));
            cfg.rng_seed = Some(i as u64);
            cfg.initial_bump = Some(0);
            spawn_gossip(cfg, pool.net.add_node(), pool.token.child_token())
        })
        .collect();
    let seed = nodes[0].local_addr();
    let t0 = Instant::now();
    let joins = nodes[1..].iter().map(|n| n.join(vec![seed]));
    for r in futures::future::join_all(joins).await {
        assert_eq!(r.unwrap(), 1);
    }
    for n in &nodes {
        let done = timeout(Duration::from_secs(3), n.wait_members(|m| all_alive(m, N))).await;
        assert!(
            matches!(done, Ok(Ok(()))),
            "{} sees {} alive after {:?}",
            n.local_name(),
            n.members()
                .iter()
                .filter(|m| m.status == MemberStatus::Alive as u8)
                .count(),
            t0.elapsed()
        );
    }
}

/// Decodes the push/pull datagrams `t` received (plaintext pool).
async fn received_state(t: &mut ChannelTransport) -> Vec<foca::Member<NodeIdentity>> {
    let mut members = Vec::new();
    // Replies go out in the same turn; a's probes of p keep coming, so stop at a deadline.
    let deadline = Instant::now() + Duration::from_millis(20);
    while let Ok(Ok((_, packet))) = tokio::time::timeout_at(deadline, t.recv()).await {
        let body = crypto::open(None, &packet).unwrap();
        if body[0] != message::KIND_DIRECT {
            continue;
        }
        if let Ok(message::Direct::PushPull {
            reply: true,
            members: part,
            ..
        }) = postcard::from_bytes(&body[1..])
        {
            members.extend(part);
        }
    }
    members
}

/// - a knows b alive and c failed; a raw peer p sends a a push/pull request claiming c
///   alive (same identity, high incarnation), an entry at a's own address, a member
///   reusing b's node ID and an unknown member d
/// - a keeps c failed, adds d, adds nothing at its own address nor the conflicting
///   member, learns p itself, and answers with its full state (b, c down, d, p)
#[tokio::test(start_paused = true)]
async fn t30_push_pull_merges_state_without_resurrecting_or_conflicts() {
    use foca::{Member as SwimMember, State};
    let net = ChannelNetwork::new();
    let root = CancellationToken::new();
    let _stop = root.clone().drop_guard();
    let a = start_at(&net, "a", None, 0, root.child_token());
    let b = start_at(&net, "b", None, 0, root.child_token());
    let c = start_at(&net, "c", None, 0, root.child_token());
    for n in [&b, &c] {
        n.join(vec![a.local_addr()]).await.unwrap();
    }
    wait_until(&a, "3 alive", |m| all_alive(m, 3)).await;
    net.isolate(c.local_addr());
    wait_until(&a, "c failed", |m| {
        status_of(m, "c") == Some(MemberStatus::Failed)
    })
    .await;
    let ident = |name: &str, node_id: &str, addr: SocketAddr| NodeIdentity {
        name: name.into(),
        node_id: node_id.into(),
        addr,
        bump: 0,
    };
    let mut p = net.add_node();
    let d_addr: SocketAddr = "127.0.0.1:29999".parse().unwrap();
    let state = vec![
        SwimMember::new(ident("c", "id-c", c.local_addr()), 40, State::Alive),
        SwimMember::alive(ident("ghost", "id-ghost", a.local_addr())),
        SwimMember::alive(ident("b-twin", "id-b", "127.0.0.1:29998".parse().unwrap())),
        SwimMember::alive(ident("d", "id-d", d_addr)),
    ];
    let from = ident("p", "id-p", p.local_addr());
    for body in message::encode_push_pull(&from, false, state, 1300) {
        p.send_to(a.local_addr(), &crypto::seal(None, &body))
            .unwrap();
    }
    let reply = received_state(&mut p).await;
    let names: BTreeMap<&str, State> = reply
        .iter()
        .map(|m| (m.id().name.as_str(), m.state()))
        .collect();
    assert_eq!(names.get("b"), Some(&State::Alive), "{names:?}");
    assert_eq!(names.get("c"), Some(&State::Down), "{names:?}");
    assert_eq!(names.get("d"), Some(&State::Alive), "{names:?}");
    assert!(!names.contains_key("ghost") && !names.contains_key("b-twin"));
    assert!(reply.iter().all(|m| m.id().addr != a.local_addr()));
    let m = a.members();
    assert_eq!(status_of(&m, "c"), Some(MemberStatus::Failed));
    assert_eq!(status_of(&m, "d"), Some(MemberStatus::Alive));
    assert_eq!(status_of(&m, "p"), Some(MemberStatus::Alive));
    assert_eq!(status_of(&m, "b"), Some(MemberStatus::Alive));
    assert!(status_of(&m, "ghost").is_none() && status_of(&m, "b-twin").is_none());
}
