//! Operator CLI against a real single server: `operator raft list-peers` /
//! `remove-peer`, `keygen`, `keyring` (list, install, use, remove) and
//! `force-leave`, with Consul's output and exit codes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::*;

/// A fresh key from `registry-node keygen`.
fn keygen() -> String {
    let (code, out, err) = cli(&["keygen"], None);
    assert_eq!(code, 0, "{err}");
    out.trim().to_string()
}

#[test]
fn raft_peers_force_leave_and_unencrypted_keyring() {
    let p = Proc::start(&["-dev", "-node=op1"]);
    let addr = format!("-http-addr={}", p.addr);
    let a = addr.as_str();

    // --- step: list-peers shows this server alone, as the voting leader
    for stale in [false, true] {
        let mut argv = vec!["operator", "raft", "list-peers", a];
        if stale {
            argv.push("-stale");
        }
        let (code, out, err) = cli(&argv, None);
        assert_eq!(code, 0, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            ["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
        );
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(row.len(), 6, "{out}");
        assert_eq!(row[0], "op1");
        assert!(row[2].starts_with("127.0.0.1:"), "{out}");
        assert_eq!(&row[3..], ["leader", "true", "3"], "{out}");
    }

    // --- step: remove-peer needs exactly one of -address / -id, and a known peer
    let (code, out, err) = cli(
        &[
            "operator",
            "raft",
            "remove-peer",
            a,
            "-address=10.9.9.9:8300",
        ],
        None,
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        err.starts_with("Error removing peer: ") && err.contains("10.9.9.9:8300"),
        "{err}"
    );
    let (code, _, err) = cli(&["operator", "raft", "remove-peer", a], None);
    assert_eq!(
        (code, err.trim()),
        (
            1,
            "Error removing peer: an address or id is required for the peer to remove"
        )
    );
    let (code, _, err) = cli(
        &[
            "operator",
            "raft",
            "remove-peer",
            a,
            "-address=x:1",
            "-id=y",
        ],
        None,
    );
    assert_eq!(
        (code, err.trim()),
        (1, "Error removing peer: cannot give both an address and id")
    );

    // --- step: force-leave of an unknown node, and without a node name
    let (code, _, err) = cli(&["force-leave", a, "nosuch"], None);
    assert_eq!(code, 1);
    assert!(err.starts_with("Error force leaving: "), "{err}");
    assert!(err.contains("No node found with name 'nosuch'"), "{err}");
    let (code, _, err) = cli(&["force-leave", a], None);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("A single node name must be specified to force leave."),
        "{err}"
    );

    // --- step: keyring changes on an agent without gossip encryption fail clearly
    // (the server answers 500 `gossip encryption is not enabled`)
    let key = keygen();
    for (flag, banner) in [
        ("-install", "==> Installing new gossip encryption key...\n"),
        ("-use", "==> Changing primary gossip encryption key...\n"),
        ("-remove", "==> Removing gossip encryption key...\n"),
    ] {
        let arg = format!("{flag}={key}");
        let (code, out, err) = cli(&["keyring", a, &arg], None);
        assert_eq!((code, out.as_str()), (1, banner), "{err}");
        assert_eq!(
            err.trim(),
            "error: Unexpected response code: 500 (gossip encryption is not enabled)"
        );
    }

    let (code, out, err) = cli(&["keyring", a, "-list"], None);
    assert_eq!(
        (code, out.as_str()),
        (1, "==> Gathering installed encryption keys...\n"),
        "{err}"
    );
    assert!(
        err.contains("Keyring is empty (encryption not enabled)"),
        "{err}"
    );

    // --- step: the agent is still healthy after all of that
    let (code, out, _) = cli(&["operator", "raft", "list-peers", a], None);
    assert_eq!(code, 0);
    assert!(out.contains("leader"), "{out}");
}

#[test]
fn keygen_and_key_rotation() {
    // --- step: keygen prints 32 random bytes in base64, a new key each time
    let k1 = keygen();
    assert_eq!(STANDARD.decode(&k1).expect("base64").len(), 32, "{k1}");
    let k2 = keygen();
    assert_eq!(STANDARD.decode(&k2).expect("base64").len(), 32, "{k2}");
    assert_ne!(k1, k2);

    let encrypt = format!("-encrypt={k1}");
    let p = Proc::start(&["-dev", "-node=keys1", &encrypt]);
    let addr = format!("-http-addr={}", p.addr);
    let a = addr.as_str();

    // --- step: the -encrypt key is installed on the one node
    let (code, out, err) = cli(&["keyring", a, "-list"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("==> Gathering installed encryption keys...\n\ndc1 (LAN):\n  {k1} [1/1]\n")
    );

    // --- step: exactly one action
    let (code, _, err) = cli(&["keyring", a], None);
    assert_eq!(code, 1);
    assert!(err.starts_with("Usage: registry-node keyring"), "{err}");
    let inst = format!("-install={k2}");
    let (code, _, err) = cli(&["keyring", a, "-list", &inst], None);
    assert_eq!((code, err.trim()), (1, "Only a single action is allowed"));

    // --- step: rotate: install K2, make it primary, remove K1
    let (code, out, err) = cli(&["keyring", a, &inst], None);
    assert_eq!(
        (code, out.as_str()),
        (0, "==> Installing new gossip encryption key...\n"),
        "{err}"
    );
    let (_, out, _) = cli(&["keyring", a, "-list"], None);
    assert!(out.contains(&format!("  {k1} [1/1]")), "{out}");
    assert!(out.contains(&format!("  {k2} [1/1]")), "{out}");

    let (code, out, err) = cli(&["keyring", a, &format!("-use={k2}")], None);
    assert_eq!(
        (code, out.as_str()),
        (0, "==> Changing primary gossip encryption key...\n"),
        "{err}"
    );
    let (code, out, err) = cli(&["keyring", a, "-list-primary"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("==> Gathering installed primary encryption keys...\n\ndc1 (LAN):\n  {k2} [1/1]\n")
    );

    // The primary key cannot be removed.
    let (code, _, err) = cli(&["keyring", a, &format!("-remove={k2}")], None);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: "), "{err}");

    let (code, out, err) = cli(&["keyring", a, &format!("-remove={k1}")], None);
    assert_eq!(
        (code, out.as_str()),
        (0, "==> Removing gossip encryption key...\n"),
        "{err}"
    );
    let (code, out, err) = cli(&["keyring", a, "-list"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("==> Gathering installed encryption keys...\n\ndc1 (LAN):\n  {k2} [1/1]\n")
    );
}
