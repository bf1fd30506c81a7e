//! Linearizability under faults: concurrent clients record what they did and
//! saw while the nemesis partitions and kills servers; the history must be
//! linearizable for every key (a stale read, a lost acknowledged write or a
//! CAS that succeeds twice would not be).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use registry_api::Consistency;
use registry_node::raft::RaftNode;
use registry_node::state::{Command, KvSet, Request, Response};
use tokio::time::Instant;

use crate::lincheck::{self, Op, Record, Value};
use crate::{TestCluster, WAIT};

const CLIENTS: usize = 5;
const KEYS: usize = 5;
/// A client gives up on an op after this long; its outcome is then unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// The servers clients may pick, republished by the nemesis after each kill
/// and restart (a client keeps its server until a call fails).
type Directory = Arc<Mutex<Vec<Option<RaftNode>>>>;

/// What the clients share.
struct Shared {
    dir: Directory,
    start: Instant,
    stop: AtomicBool,
    /// Source of unique written values.
    next_value: AtomicU64,
}

impl Shared {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// What this test does:
/// - 3 servers; 5 clients, each on a random server (another one after a
///   failure), write, read (`Consistent`) and read-then-CAS 5 keys with
///   unique values for ~9 s, each op bounded by a 2 s timeout;
/// - meanwhile the nemesis isolates the leader, kills and restarts a
///   follower, then kills and restarts the leader, with pauses in between;
/// - heals, reads every key once more through a consistent read;
/// - the whole history (failed writes and CASes as "may or may not have
///   happened") must be linearizable per key; it must not be trivial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_under_partitions_and_crashes_are_linearizable() {
    let seed: u64 = std::env::var("LINCHECK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    // Timing is not replayable; the seed only fixes the clients' choices.
    eprintln!("LINCHECK_SEED={seed}");
    let mut c = TestCluster::start(3).await;
    c.wait_for_leader(WAIT).await;
    let shared = Arc::new(Shared {
        dir: Arc::new(Mutex::new(c.nodes.clone())),
        start: Instant::now(),
        stop: AtomicBool::new(false),
        next_value: AtomicU64::new(1),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(id, shared.clone(), seed.wrapping_add(id as u64))))
        .collect();

    let faults = nemesis(&mut c, &shared.dir).await;
    shared.stop.store(true, Ordering::SeqCst);
    let mut history = Vec::new();
    for h in clients {
        history.extend(h.await.expect("client task"));
    }

    eprintln!("--- step: heal, final reads");
    for i in 0..3 {
        c.isolate(i, false);
    }
    let leader = c.wait_for_leader(WAIT).await;
    for k in 0..KEYS {
        let key = key(k);
        let call = shared.now();
        let got = tokio::time::timeout(WAIT, async {
            loop {
                match read(c.node(leader), &key).await {
                    Ok((got, _)) => break got,
                    Err(e) => eprintln!("final read of {key}: {e}; retrying"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("final read");
        history.push(Record {
            client: CLIENTS,
            key,
            op: Op::Read { got },
            call,
            ret: Some(shared.now()),
        });
    }
    c.shutdown().await;

    let ok = history.iter().filter(|r| r.ret.is_some()).count();
    let count = |f: fn(&Record) -> bool| history.iter().filter(|r| f(r)).count();
    let reads_seen = count(|r| matches!(r.op, Op::Read { got: Some(_) }));
    let writes = count(|r| r.ret.is_some() && matches!(r.op, Op::Write { .. }));
    let swaps = count(|r| r.ret.is_some() && matches!(r.op, Op::Cas { swapped: true, .. }));
    let cas_failed = count(|r| r.ret.is_some() && matches!(r.op, Op::Cas { swapped: false, .. }));
    eprintln!(
        "history: {} ops over {:?}, {ok} answered ({reads_seen} reads of a value, {writes} \
         writes, {swaps} CAS swapped, {cas_failed} CAS refused), {} unknown; {faults} faults",
        history.len(),
        shared.start.elapsed(),
        history.len() - ok,
    );

    let checked = Instant::now();
    let result = lincheck::check(&history);
    eprintln!("checked in {:?}", checked.elapsed());
    if let Err(anomalies) = result {
        for a in &anomalies {
            eprintln!("{a}");
        }
        panic!(
            "{} of {KEYS} keys not linearizable (seed {seed}); first:\n{}",
            anomalies.len(),
            anomalies[0]
        );
    }
    assert_eq!(faults, 3, "every fault was injected");
    assert!(ok > 100, "only {ok} answered ops");
    assert!(
        reads_seen > 0 && writes > 0 && swaps > 0,
        "a trivial history"
    );
}

/// Injects the faults, with pauses in between so that clients make
/// progress; returns how many were injected. Leaves all servers up and
/// connected.
async fn nemesis(c: &mut TestCluster, dir: &Directory) -> usize {
    let publish = |c: &TestCluster| *dir.lock().expect("directory") = c.nodes.clone();
    let pause = || tokio::time::sleep(Duration::from_millis(1000));
    let outage = || tokio::time::sleep(Duration::from_millis(1500));
    let mut faults = 0;
    pause().await;

    let leader = c.wait_for_leader(WAIT).await;
    eprintln!("--- nemesis: isolate leader {leader}");
    c.isolate(leader, true);
    faults += 1;
    outage().await;
    c.isolate(leader, false);
    eprintln!("--- nemesis: healed {leader}");
    pause().await;

    let leader = c.wait_for_leader(WAIT).await;
    let follower = (leader + 1) % 3;
    eprintln!("--- nemesis: kill follower {follower}");
    c.kill(follower).await;
    publish(c);
    faults += 1;
    outage().await;
    c.restart(follower).await;
    publish(c);
    eprintln!("--- nemesis: restarted {follower}");
    pause().await;

    let leader = c.wait_for_leader(WAIT).await;
    eprintln!("--- nemesis: kill leader {leader}");
    c.kill(leader).await;
    publish(c);
    faults += 1;
    outage().await;
    c.restart(leader).await;
    publish(c);
    eprintln!("--- nemesis: restarted {leader}");
    pause().await;
    faults
}

fn key(k: usize) -> String {
    format!("lin/{k}")
}

/// A random running server other than `avoid` (if there is another).
fn pick(dir: &Directory, rng: &mut StdRng, avoid: Option<&RaftNode>) -> RaftNode {
    let live: Vec<RaftNode> = dir
        .lock()
        .expect("directory")
        .iter()
        .flatten()
        .cloned()
        .collect();
    let others: Vec<&RaftNode> = live
        .iter()
        .filter(|n| avoid.is_none_or(|a| a.id != n.id))
        .collect();
    let from = if others.is_empty() {
        live.iter().collect()
    } else {
        others
    };
    from[rng.random_range(0..from.len())].clone()
}

/// One client: random ops until told to stop; returns its history.
async fn client(id: usize, shared: Arc<Shared>, seed: u64) -> Vec<Record> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut history = Vec::new();
    let mut node = pick(&shared.dir, &mut rng, None);
    while !shared.stop.load(Ordering::SeqCst) {
        let key = key(rng.random_range(0..KEYS));
        let record = |op, call, ret| Record {
            client: id,
            key: key.clone(),
            op,
            call,
            ret,
        };
        let roll = rng.random_range(0..10);
        let ok = if roll < 3 {
            let value = shared.next_value.fetch_add(1, Ordering::SeqCst);
            let call = shared.now();
            let ok = write(&node, set(&key, value, None)).await;
            assert_ne!(ok, Some(false), "a blind write is never refused");
            history.push(record(
                Op::Write { value },
                call,
                ok.is_some().then(|| shared.now()),
            ));
            ok.is_some()
        } else {
            let call = shared.now();
            match read(&node, &key).await {
                Err(_) => false,
                Ok((got, index)) => {
                    history.push(record(Op::Read { got }, call, Some(shared.now())));
                    if roll < 6 {
                        true
                    } else {
                        // CAS on the index just read; value equality ⇔ index
                        // equality, as every write stores a unique value.
                        let new = shared.next_value.fetch_add(1, Ordering::SeqCst);
                        let call = shared.now();
                        let swapped = write(&node, set(&key, new, Some(index))).await;
                        history.push(record(
                            Op::Cas {
                                expect: got,
                                new,
                                swapped: swapped.unwrap_or(false),
                            },
                            call,
                            swapped.is_some().then(|| shared.now()),
                        ));
                        swapped.is_some()
                    }
                }
            }
        };
        if !ok {
            // Another server, after a pause that keeps unknown ops few.
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..150))).await;
            node = pick(&shared.dir, &mut rng, Some(&node));
        } else {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
        }
    }
    history
}

/// A write of `value` (CAS against ModifyIndex `cas`, 0 = absent).
fn set(key: &str, value: u64, cas: Option<u64>) -> Request {
    Request {
        now_ms: 0,
        cmd: Command::KvSet(KvSet {
            key: key.to_string(),
            value: Some(value.to_string().into_bytes()),
            flags: 0,
            cas,
            acquire: None,
            release: None,
        }),
    }
}

/// The answer of a write, `None` when its outcome is unknown.
async fn write(node: &RaftNode, req: Request) -> Option<bool> {
    match tokio::time::timeout(OP_TIMEOUT, node.write(req)).await {
        Ok(Ok(Response::Bool(b))) => Some(b),
        Ok(Ok(other)) => panic!("unexpected answer to a KV set: {other:?}"),
        Ok(Err(_)) | Err(_) => None,
    }
}

/// A linearizable read of `key`: its value and ModifyIndex (0 if absent).
async fn read(node: &RaftNode, key: &str) -> Result<(Value, u64), String> {
    tokio::time::timeout(OP_TIMEOUT, node.read_barrier(Consistency::Consistent))
        .await
        .map_err(|_| "read barrier timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let (value, index) = node.shared.read(|s| {
        s.kv()
            .get(key)
            .map(|p| (p.value.clone(), p.modify_index))
            .unwrap_or_default()
    });
    let value = value.map(|v| {
        String::from_utf8(v)
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("values are numbers")
    });
    Ok((value, index))
}
