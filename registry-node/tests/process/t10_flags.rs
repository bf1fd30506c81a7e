//! Go-style flags and configuration errors of the real binary.
//! - Consul's seed command line starts a server;
//! - an unknown flag or a bad value prints one line naming it and exits 1;
//! - bad JSON/HCL and unknown keys name the file (and key) and exit 1.

use super::*;

#[test]
fn seed_command_line_starts_a_server() {
    let dir = tempfile::tempdir().unwrap();
    // consul agent -server -bootstrap-expect 1 -data-dir=/tmp/consul -node=n1 -bind=127.0.0.1 -client=0.0.0.0 -ui
    let p = Proc::start(&[
        "-server",
        "-bootstrap-expect",
        "1",
        &data_dir_arg(dir.path()),
        "-node=n1",
        "-ui",
    ]);
    let nodes = ureq_get(&format!("{}/v1/catalog/nodes", p.base)).unwrap();
    assert!(nodes.contains(r#""Node":"n1""#), "{nodes}");
    let (status, body) = http("GET", &format!("{}/ui/", p.base), b"").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("<title>registry-node</title>"));
    assert!(dir.path().join("node-id").exists());
}

#[test]
fn unknown_flag_and_bad_value() {
    let (code, out, err) = cli(&["agent", "-dev", "-bogus-flag"], None);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("-bogus-flag"), "{err}");
    let (code, _, err) = cli(&["agent", "-dev", "-http-port=abc"], None);
    assert_eq!(code, 1);
    assert!(err.contains("http-port"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn bad_config_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{\"server\": true,").unwrap();
    let (code, _, err) = cli(
        &[
            "agent",
            "-dev",
            &format!("-config-file={}", bad_json.display()),
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("bad.json"), "{err}");

    let unknown = dir.path().join("unknown.hcl");
    std::fs::write(&unknown, "datacenterx = \"dc2\"\n").unwrap();
    let (code, _, err) = cli(
        &[
            "agent",
            "-dev",
            &format!("-config-file={}", unknown.display()),
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown.hcl") && err.contains("datacenterx"),
        "{err}"
    );

    let (code, out, _) = cli(&["validate", &unknown.display().to_string()], None);
    assert_eq!(code, 1, "{out}");
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"{"datacenter": "dc1", "data_dir": "/tmp/x", "service": {"name": "web", "port": 80}}"#,
    )
    .unwrap();
    let (code, out, err) = cli(&["validate", &good.display().to_string()], None);
    assert_eq!((code, out.trim()), (0, "Configuration is valid!"), "{err}");
}
