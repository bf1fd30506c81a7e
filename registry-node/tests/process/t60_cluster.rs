//! Seed 002 with real processes, each agent on its own loopback address and
//! Consul's default ports: two servers with `-bootstrap-expect 2` elect once
//! `join` introduces them, a client joins, a lost server leaves the other
//! without a leader (and it says so), a restart heals, a graceful leave and a
//! `-rejoin` restart. Plus node-ID conflicts with host-derived IDs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{bin, cli, data_dir_arg, http};

/// An agent started with explicit flags (no port 0: these tests use the
/// default ports on their own 127.0.0.x addresses).
struct Agent {
    child: Child,
    ip: &'static str,
}

impl Agent {
    fn start(ip: &'static str, name: &str, dir: &Path, extra: &[&str]) -> Agent {
        let mut child = Command::new(bin())
            .arg("agent")
            .arg(format!("-node={name}"))
            .arg(format!("-bind={ip}"))
            .arg(format!("-client={ip}"))
            .arg("-dns-port=-1")
            .arg("-log-level=debug")
            .arg(data_dir_arg(dir))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{name}.err")))
                    .expect("stderr file"),
            )
            .spawn()
            .expect("spawn agent");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // The agent's output, kept for failure messages.
        let log = dir.join(format!("{name}.log"));
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("log file");
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                if line.contains("Consul agent running!") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("agent banner");
        Agent { child, ip }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}:8500{path}", self.ip)
    }

    fn addr_flag(&self) -> String {
        format!("-http-addr={}:8500", self.ip)
    }

    /// Runs a CLI command against this agent.
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let flag = self.addr_flag();
        let mut all: Vec<&str> = args.to_vec();
        // After the command words (`kv put`), before the command's own arguments.
        let at = if args[0] == "kv" { 2 } else { 1 };
        all.insert(at, &flag);
        cli(&all, None)
    }

    fn leader(&self) -> String {
        http("GET", &self.url("/v1/status/leader"), b"")
            .map(|(_, b)| b.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGINT, and wait for the process to exit.
    fn interrupt(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const WAIT: Duration = Duration::from_secs(30);

/// Rows of `members` as (node, status, type).
fn members(a: &Agent) -> Vec<(String, String, String)> {
    let (code, out, err) = a.cli(&["members"]);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "Node",
            "Address",
            "Status",
            "Type",
            "Build",
            "Protocol",
            "DC",
            "Partition",
            "Segment"
        ]
    );
    lines
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c[0].to_string(), c[2].to_string(), c[3].to_string())
        })
        .collect()
}

fn info_value(a: &Agent, key: &str) -> String {
    let (code, out, err) = a.cli(&["info"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(" = ")?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

#[test]
fn seed_two_servers_client_leave_and_rejoin() {
    let (d1, d2, d3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let expect = ["-server", "-bootstrap-expect", "2"];
    let n1 = Agent::start("127.0.0.32", "n1", d1.path(), &expect);
    let n2 = Agent::start("127.0.0.33", "n2", d2.path(), &expect);

    // Alone, each sees itself and no leader.
    let m = members(&n1);
    assert_eq!(m, [("n1".into(), "alive".into(), "server".into())]);
    assert_eq!(info_value(&n1, "leader"), "false");
    assert_eq!(info_value(&n1, "num_peers"), "0");
    assert_eq!(n1.leader(), "");

    let (code, out, err) = n1.cli(&["join", "127.0.0.33"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "Successfully joined cluster by contacting 1 nodes."
    );
    wait("a leader on both", WAIT, || {
        !n1.leader().is_empty() && n1.leader() == n2.leader()
    });
    assert_eq!(members(&n2).len(), 2);

    // A client joins with -join and sees everyone.
    let n3 = Agent::start("127.0.0.34", "n3", d3.path(), &["-join=127.0.0.32"]);
    wait("three members alive on the client", WAIT, || {
        let m = members(&n3);
        m.len() == 3 && m.iter().all(|r| r.1 == "alive")
    });
    let m = members(&n3);
    assert!(
        m.contains(&("n3".into(), "alive".into(), "client".into())),
        "{m:?}"
    );
    assert_eq!(info_value(&n3, "server"), "false");
    assert_eq!(info_value(&n3, "known_servers"), "2");
    let (code, out, err) = n3.cli(&["kv", "put", "redis/config/connections", "5"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "Success! Data written to: redis/config/connections"
    );
    let (_, out, _) = n1.cli(&["kv", "get", "redis/config/connections"]);
    assert_eq!(out.trim(), "5");

    // Losing one of two servers: no leader, and writes say so.
    let leader_is_n1 = n1.leader().starts_with("127.0.0.32:");
    let (survivor, victim, victim_dir, victim_ip, victim_name) = if leader_is_n1 {
        (n2, n1, &d1, "127.0.0.32", "n1")
    } else {
        (n1, n2, &d2, "127.0.0.33", "n2")
    };
    victim.kill9();
    wait("no leader on the survivor", WAIT, || {
        survivor.leader().is_empty()
    });
    let (code, _, err) = survivor.cli(&["kv", "put", "during", "x"]);
    assert_ne!(code, 0);
    assert!(err.contains("No cluster leader"), "{err}");
    assert_eq!(info_value(&survivor, "leader"), "false");

    // The crashed server restarts (no -join: it rejoins the peers it remembers).
    let victim = Agent::start(victim_ip, victim_name, victim_dir.path(), &expect);
    wait("a leader again", WAIT, || !survivor.leader().is_empty());
    wait("writes accepted again", WAIT, || {
        survivor.cli(&["kv", "put", "after", "y"]).0 == 0
    });
    let (_, out, _) = victim.cli(&["kv", "get", "redis/config/connections"]);
    assert_eq!(out.trim(), "5");
    let rejoin = Instant::now();
    wait("the restarted server alive again in gossip", WAIT, || {
        members(&n3)
            .iter()
            .any(|r| r.0 == victim_name && r.1 == "alive")
            && members(&victim).len() == 3
    });
    eprintln!(
        "restarted server back in gossip after {:?}",
        rejoin.elapsed()
    );

    // Graceful leave of the restarted server: the others record it as left.
    let (code, out, err) = victim.cli(&["leave"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "Graceful leave complete");
    victim.interrupt();
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !seen
        .iter()
        .any(|r: &(String, String, String)| r.0 == victim_name && r.1 == "left")
    {
        assert!(
            Instant::now() < deadline,
            "no `left` for {victim_name} on the client: {seen:?}; survivor sees {:?}\n{}",
            members(&survivor),
            std::fs::read_to_string(victim_dir.path().join(format!("{victim_name}.err")))
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.contains("DEBUG") || l.contains("gossip"))
                .filter(|l| !l.contains("probe") && !l.contains("ack"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
        seen = members(&n3);
    }
    // It comes back with -rejoin and the cluster has two servers again.
    let mut args = expect.to_vec();
    args.push("-rejoin");
    let back = Agent::start(victim_ip, victim_name, victim_dir.path(), &args);
    wait("alive again with two raft peers", WAIT, || {
        members(&n3)
            .iter()
            .any(|r| r.0 == victim_name && r.1 == "alive")
            && info_value(&survivor, "num_peers") == "1"
    });
    let (_, out, _) = back.cli(&["kv", "get", "after"]);
    assert_eq!(out.trim(), "y");
    drop(n3);
}

#[test]
fn host_derived_node_ids_conflict_unless_disabled() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let host_ids = ["-disable-host-node-id=false"];
    let a = Agent::start(
        "127.0.0.35",
        "a",
        dirs[0].path(),
        &[&["-server", "-bootstrap"][..], &host_ids].concat(),
    );
    let b = Agent::start("127.0.0.36", "b", dirs[1].path(), &host_ids);
    let (code, _, err) = b.cli(&["join", "127.0.0.35"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("conflicting node ID"),
        "join with the same host-derived ID: {err}"
    );
    drop(b);
    // The default (-disable-host-node-id=true) draws random IDs: the join works.
    let c = Agent::start("127.0.0.37", "c", dirs[2].path(), &[]);
    let (code, out, err) = c.cli(&["join", "127.0.0.35"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Successfully joined"), "{out}");
    drop((a, c));
}
