//! CLI subcommands against a running agent: output text and exit codes as
//! Consul's (seed 003's `kv put` / `kv get -detailed`, `members`, `info`, catalog).

use super::*;

#[test]
fn kv_members_info_catalog() {
    let p = Proc::start(&["-dev", "-node=cli1"]);
    let addr = format!("-http-addr={}", p.addr);
    let a = addr.as_str();

    // --- step: kv put / get -detailed as in seed 003
    let (code, out, err) = cli(&["kv", "put", a, "user/config/connections", "5"], None);
    assert_eq!(
        (code, out.trim()),
        (0, "Success! Data written to: user/config/connections"),
        "{err}"
    );
    let (code, out, _) = cli(
        &["kv", "get", a, "-detailed", "user/config/connections"],
        None,
    );
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert!(lines[0].starts_with("CreateIndex      "), "{out}");
    assert_eq!(lines[1], "Flags            0");
    assert_eq!(lines[2], "Key              user/config/connections");
    assert_eq!(lines[3], "LockIndex        0");
    assert_eq!(lines[5], "Session          -");
    assert_eq!(lines[6], "Value            5");
    let (code, out, _) = cli(&["kv", "get", a, "user/config/connections"], None);
    assert_eq!((code, out.as_str()), (0, "5\n"));
    let (code, _, err) = cli(&["kv", "get", a, "missing/key"], None);
    assert_eq!(code, 1);
    assert!(
        err.contains("Error! No key exists at: missing/key"),
        "{err}"
    );

    // --- step: stdin data, recurse, keys, cas, delete
    let (code, _, _) = cli(
        &["kv", "put", a, "user/config/from-stdin", "-"],
        Some("hello"),
    );
    assert_eq!(code, 0);
    let (_, out, _) = cli(&["kv", "get", a, "-recurse", "user/"], None);
    assert_eq!(
        out,
        "user/config/connections:5\nuser/config/from-stdin:hello\n"
    );
    let (_, out, _) = cli(&["kv", "get", a, "-keys", "user/"], None);
    assert_eq!(out, "user/config/\n");
    let (code, _, err) = cli(
        &[
            "kv",
            "put",
            a,
            "-cas",
            "-modify-index=1",
            "user/config/connections",
            "6",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("Error! Did not write to user/config/connections: CAS failed"),
        "{err}"
    );
    let (code, out, _) = cli(&["kv", "delete", a, "-recurse", "user/"], None);
    assert_eq!(
        (code, out.trim()),
        (0, "Success! Deleted keys with prefix: user/")
    );

    // --- step: export / import round trip
    cli(&["kv", "put", a, "cfg/a", "1"], None);
    let (code, exported, _) = cli(&["kv", "export", a, "cfg/"], None);
    assert_eq!(code, 0);
    assert!(exported.contains("\"key\": \"cfg/a\""), "{exported}");
    cli(&["kv", "delete", a, "-recurse", "cfg/"], None);
    let (code, out, _) = cli(&["kv", "import", a, "-"], Some(&exported));
    assert_eq!((code, out.trim()), (0, "Imported: cfg/a"));

    // --- step: members and info
    let (code, out, _) = cli(&["members", a], None);
    assert_eq!(code, 0);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
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
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], "cli1");
    assert_eq!(&row[2..4], ["alive", "server"]);
    let (code, _, _) = cli(&["members", a, "-status=failed"], None);
    assert_eq!(code, 2, "no member matches");
    let (code, out, _) = cli(&["info", a], None);
    assert_eq!(code, 0);
    assert!(
        out.contains("consul:\n") && out.contains("\tleader = true\n") && out.contains("raft:\n"),
        "{out}"
    );

    // --- step: catalog and services register
    let dir = tempfile::tempdir().unwrap();
    let svc = dir.path().join("web.json");
    std::fs::write(
        &svc,
        r#"{"service": {"name": "web", "id": "web1", "port": 80, "tags": ["v1"]}}"#,
    )
    .unwrap();
    let (code, out, err) = cli(
        &["services", "register", a, &svc.display().to_string()],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Registered service: web"), "{out}");
    let (_, out, _) = cli(&["catalog", "services", a, "-tags"], None);
    assert!(
        out.lines()
            .any(|l| l.starts_with("web") && l.ends_with("v1")),
        "{out}"
    );
    let (_, out, _) = cli(&["catalog", "nodes", a], None);
    assert!(out.starts_with("Node"), "{out}");
    assert!(out.contains("cli1"), "{out}");
    let (_, out, _) = cli(&["catalog", "datacenters", a], None);
    assert_eq!(out.trim(), "dc1");
    let (code, out, _) = cli(&["services", "deregister", a, "-id=web1"], None);
    assert_eq!(code, 0, "{out}");

    // --- step: an unreachable agent gives an actionable error
    let (code, _, err) = cli(&["members", "-http-addr=127.0.0.1:1"], None);
    assert_eq!(code, 1);
    assert!(err.contains("Is the agent running?"), "{err}");

    // --- step: leave stops the agent
    let (code, out, _) = cli(&["leave", a], None);
    assert_eq!((code, out.trim()), (0, "Graceful leave complete"));
}
