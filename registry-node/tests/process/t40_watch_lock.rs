//! `watch`, `lock`, `event` and `maint` as real processes against a real agent.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// Longest wait for anything in this file.
const WAIT: Duration = Duration::from_secs(30);

/// Polls `cond` every 50 ms until it holds; panics with `what` after `timeout`.
fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a long-running CLI command (stdout discarded, stderr kept).
fn spawn_cli(args: &[&str]) -> Child {
    Command::new(bin())
        .args(args)
        .env_remove("CONSUL_HTTP_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cli")
}

/// Waits (bounded) for a spawned command to exit; returns its code and stderr.
fn wait_exit(mut child: Child, what: &str) -> (i32, String) {
    let mut status = None;
    wait_until(WAIT, what, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    (status.unwrap().code().unwrap_or(-1), err)
}

/// Sends SIGTERM with the `kill` utility (std only sends SIGKILL).
fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -TERM {}", child.id());
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn put_kv(p: &Proc, key: &str, value: &str) {
    let (status, body) = http("PUT", &format!("{}/v1/kv/{key}", p.base), value.as_bytes()).unwrap();
    assert_eq!((status, body.trim()), (200, "true"));
}

/// Number of sessions the agent knows.
fn session_count(p: &Proc) -> usize {
    let body = ureq_get(&format!("{}/v1/session/list", p.base)).unwrap();
    serde_json::from_str::<Vec<serde_json::Value>>(&body)
        .map(|l| l.len())
        .unwrap_or(0)
}

/// A shell loop that waits (at most 30s) for `file` to appear.
fn wait_for_file(file: &Path) -> String {
    format!(
        "i=0; while [ ! -f '{}' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
        file.display()
    )
}

/// What this test does:
/// - runs `watch -type=key -key=k <handler>` whose handler appends its stdin and
///   `CONSUL_INDEX` to a file (one line per run);
/// - checks the initial run (`null`), that writes to other keys do not run it,
///   that each change of `k` runs it once, and that an identical rewrite (the
///   index moves, the data does not) does not run it;
/// - stops the watch with SIGTERM (exit 0) and checks the flag errors.
#[test]
fn watch_runs_the_handler_once_per_change() {
    let p = Proc::start(&["-dev", "-node=watch1"]);
    let addr = format!("-http-addr={}", p.addr);
    let a = addr.as_str();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");

    // --- step: flag errors are Consul's
    let (code, _, err) = cli(&["watch", a], None);
    assert_eq!((code, err.trim()), (1, "Watch type must be specified"));
    let (code, _, err) = cli(&["watch", a, "-type=key"], None);
    assert_eq!(
        (code, err.trim()),
        (1, "Must specify a single key to watch")
    );
    let (code, _, err) = cli(&["watch", a, "-type=nope"], None);
    assert_eq!((code, err.trim()), (1, "Unsupported watch type: nope"));

    // --- step: start the watch; the first view (no key: null) runs the handler
    let handler = format!("echo \"$(cat) $CONSUL_INDEX\" >> '{}'", out.display());
    let watch = spawn_cli(&["watch", a, "-type=key", "-key=k", &handler]);
    wait_until(WAIT, "the initial run", || read_lines(&out).len() == 1);
    assert!(
        read_lines(&out)[0].starts_with("null "),
        "{:?}",
        read_lines(&out)
    );

    // --- step: another key changes, then k: only k's change runs the handler
    put_kv(&p, "other", "x");
    put_kv(&p, "k", "v1");
    wait_until(WAIT, "the run for v1", || read_lines(&out).len() >= 2);
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("\"Key\":\"k\""), "{lines:?}");
    assert!(lines[1].contains("\"Value\":\"djE=\""), "{lines:?}");
    let index: u64 = lines[1].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(index > 0, "CONSUL_INDEX {index}");

    // --- step: an identical rewrite does not run it, the next change does (once)
    put_kv(&p, "k", "v1");
    put_kv(&p, "other", "y");
    put_kv(&p, "k", "v2");
    wait_until(WAIT, "the run for v2", || read_lines(&out).len() >= 3);
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[2].contains("\"Value\":\"djI=\""), "{lines:?}");

    // --- step: SIGTERM ends the watch with 0
    sigterm(&watch);
    let (code, err) = wait_exit(watch, "watch to exit");
    assert_eq!(code, 0, "{err}");
    assert_eq!(read_lines(&out).len(), 3);
}

/// What this test does:
/// - a first `lock` holds `svc/leader` while its child waits for a release file;
///   a second `lock` on the same prefix waits (its child has not run) and a
///   `-timeout` contender gives up with Consul's message;
/// - releasing the first child lets the second run; both see `CONSUL_LOCK_HELD=true`;
/// - a holder killed with SIGKILL (session no longer renewed, short TTL) is
///   replaced by the waiter once the session expires.
#[test]
fn lock_serialises_holders_and_survives_a_dead_holder() {
    let p = Proc::start(&["-dev", "-node=lock1", "-hcl", "session_ttl_min = \"1s\""]);
    let addr = format!("-http-addr={}", p.addr);
    let a = addr.as_str();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name);

    // --- step: errors before anything is acquired
    let (code, _, err) = cli(&["lock", a, "svc/leader"], None);
    assert_eq!(
        (code, err.trim()),
        (1, "Key prefix and child command must be specified")
    );
    let (code, _, err) = cli(&["lock", a, "-n=0", "svc/leader", "true"], None);
    assert_eq!(
        (code, err.trim()),
        (1, "Lock holder limit must be positive")
    );

    // --- step: A takes the lock
    let child_a = format!(
        "echo \"$CONSUL_LOCK_HELD\" > '{}'; {}",
        file("a.held").display(),
        wait_for_file(&file("a.release"))
    );
    let lock_a = spawn_cli(&["lock", a, "svc/leader", &child_a]);
    wait_until(WAIT, "A's child", || file("a.held").exists());
    assert_eq!(
        std::fs::read_to_string(file("a.held")).unwrap().trim(),
        "true"
    );

    // --- step: a contender with -timeout gives up
    let (code, _, err) = cli(
        &["lock", a, "-timeout=300ms", "svc/leader", "touch never"],
        None,
    );
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Shutdown triggered or timeout during lock acquisition"
    );
    wait_until(WAIT, "the timed-out session to go", || {
        session_count(&p) == 1
    });

    // --- step: B waits while A holds the lock
    let child_b = format!(
        "echo \"$CONSUL_LOCK_HELD\" > '{}'",
        file("b.held").display()
    );
    let mut lock_b = spawn_cli(&["lock", a, "svc/leader", &child_b]);
    wait_until(WAIT, "B's session", || session_count(&p) == 2);
    // B is contending now; over a short window it must neither run nor exit.
    let window = Instant::now() + Duration::from_secs(1);
    while Instant::now() < window {
        assert!(!file("b.held").exists(), "B ran while A held the lock");
        assert!(
            lock_b.try_wait().unwrap().is_none(),
            "B exited while waiting"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // --- step: A's child exits: A releases, B runs
    std::fs::write(file("a.release"), "").unwrap();
    let (code, err) = wait_exit(lock_a, "A to exit");
    assert_eq!(code, 0, "{err}");
    wait_until(WAIT, "B's child", || file("b.held").exists());
    assert_eq!(
        std::fs::read_to_string(file("b.held")).unwrap().trim(),
        "true"
    );
    let (code, err) = wait_exit(lock_b, "B to exit");
    assert_eq!(code, 0, "{err}");
    wait_until(WAIT, "sessions destroyed", || session_count(&p) == 0);

    // --- step: C holds with a 1s session TTL, D waits, C's lock process is SIGKILLed
    let short = ["-session-ttl=1s", "-lock-delay=1s"];
    let child_c = format!(
        "echo held > '{}'; {}",
        file("c.held").display(),
        wait_for_file(&file("c.release"))
    );
    let mut lock_c = spawn_cli(&[&["lock", a][..], &short, &["svc/failover", &child_c]].concat());
    wait_until(WAIT, "C's child", || file("c.held").exists());
    let child_d = format!(
        "echo \"$CONSUL_LOCK_HELD\" > '{}'",
        file("d.held").display()
    );
    let lock_d = spawn_cli(&[&["lock", a][..], &short, &["svc/failover", &child_d]].concat());
    wait_until(WAIT, "D's session", || session_count(&p) == 2);
    assert!(!file("d.held").exists(), "D ran while C held the lock");
    lock_c.kill().unwrap();
    lock_c.wait().unwrap();

    // --- step: C's session expires (not renewed), D takes over
    wait_until(WAIT, "D's child after C died", || file("d.held").exists());
    assert_eq!(
        std::fs::read_to_string(file("d.held")).unwrap().trim(),
        "true"
    );
    let (code, err) = wait_exit(lock_d, "D to exit");
    assert_eq!(code, 0, "{err}");
    // C's orphaned child still waits for its file: let it go.
    std::fs::write(file("c.release"), "").unwrap();
}

/// What this test does:
/// - `event -name=deploy payload` prints `Event ID: <uuid>` and the event is
///   listed by `/v1/event/list` with its payload;
/// - a missing name is refused with Consul's message.
#[test]
fn event_is_fired_and_listed() {
    let p = Proc::start(&["-dev", "-node=event1"]);
    let addr = format!("-http-addr={}", p.addr);
    let a = addr.as_str();

    let (code, out, err) = cli(&["event", a, "-name=deploy", "payload"], None);
    assert_eq!(code, 0, "{err}");
    let id = out
        .trim()
        .strip_prefix("Event ID: ")
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert_eq!(id.len(), 36, "{id}");

    let body = ureq_get(&format!("{}/v1/event/list?name=deploy", p.base)).unwrap();
    let events: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let event = events
        .iter()
        .find(|e| e["ID"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not in {body}"));
    assert_eq!(event["Name"], "deploy");
    assert_eq!(event["Payload"], "cGF5bG9hZA==");

    let (code, _, err) = cli(&["event", a, "payload"], None);
    assert_eq!((code, err.trim()), (1, "Event name must be specified"));
}

/// What this test does:
/// - node maintenance: `maint -enable -reason=x`, the `Node:` listing, `-disable`;
/// - service maintenance of a registered service, listed as a `Service:` block;
/// - the listing is empty once everything is disabled, and conflicting flags fail.
#[test]
fn maint_round_trip() {
    let p = Proc::start(&["-dev", "-node=maint1"]);
    let addr = format!("-http-addr={}", p.addr);
    let a = addr.as_str();

    let (code, out, _) = cli(&["maint", a], None);
    assert_eq!((code, out.as_str()), (0, ""));

    // --- step: node maintenance
    let (code, out, err) = cli(&["maint", a, "-enable", "-reason=x"], None);
    assert_eq!(
        (code, out.trim()),
        (0, "Node entered maintenance mode"),
        "{err}"
    );
    let (code, out, _) = cli(&["maint", a], None);
    assert_eq!(code, 0);
    assert_eq!(out, "Node:\n  Name:   maint1\n  Reason: x\n\n");
    let (code, out, _) = cli(&["maint", a, "-disable"], None);
    assert_eq!((code, out.trim()), (0, "Node left maintenance mode"));

    // --- step: service maintenance
    let reg = br#"{"Name": "web", "ID": "web1", "Port": 80}"#;
    let (status, body) =
        http("PUT", &format!("{}/v1/agent/service/register", p.base), reg).unwrap();
    assert_eq!(status, 200, "{body}");
    let (code, out, err) = cli(
        &["maint", a, "-enable", "-service=web1", "-reason=deploying"],
        None,
    );
    assert_eq!(
        (code, out.trim()),
        (0, "Service entered maintenance mode: web1"),
        "{err}"
    );
    let (_, out, _) = cli(&["maint", a], None);
    assert_eq!(out, "Service:\n  ID:     web1\n  Reason: deploying\n\n");
    let (code, out, _) = cli(&["maint", a, "-disable", "-service=web1"], None);
    assert_eq!(
        (code, out.trim()),
        (0, "Service left maintenance mode: web1")
    );
    let (_, out, _) = cli(&["maint", a], None);
    assert_eq!(out, "");

    // --- step: errors
    let (code, _, err) = cli(&["maint", a, "-enable", "-disable"], None);
    assert_eq!(
        (code, err.trim()),
        (1, "Only one of -enable or -disable may be provided")
    );
    let (code, _, err) = cli(&["maint", a, "-reason=x"], None);
    assert_eq!(
        (code, err.trim()),
        (1, "Reason may only be provided with -enable")
    );
    let (code, _, err) = cli(&["maint", a, "-enable", "-service=nope"], None);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error enabling service maintenance:"),
        "{err}"
    );
}
