//! Reload of file-defined services: SIGHUP, `registry-node reload` and
//! `PUT /v1/agent/reload` add, change and remove services defined in files;
//! API-registered services are untouched; a broken file changes nothing and
//! the CLI exits non-zero.

use std::time::Duration;

use super::*;

fn services(p: &Proc) -> serde_json::Value {
    serde_json::from_str(&ureq_get(&format!("{}/v1/agent/services", p.base)).unwrap()).unwrap()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn reload_adds_changes_removes_file_services() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    // The seed's web3 definition.
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/services/web3.json"
        ),
        conf.join("web3.json"),
    )
    .unwrap();
    let conf_arg = format!("-config-dir={}", conf.display());
    let p = Proc::start(&["-dev", &conf_arg]);
    assert_eq!(
        services(&p)["web3"]["Port"],
        10000,
        "seed web3.json loaded from -config-dir"
    );
    let (status, _) = http(
        "PUT",
        &format!("{}/v1/agent/service/register", p.base),
        br#"{"Name": "api-only", "Port": 1}"#,
    )
    .unwrap();
    assert_eq!(status, 200);

    // --- step: add a file and reload with SIGHUP
    std::fs::write(
        conf.join("db.hcl"),
        "service {\n  name = \"db\"\n  port = 5432\n}\n",
    )
    .unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &p.child.id().to_string()])
        .status()
        .unwrap();
    wait_until("db added by SIGHUP", || services(&p).get("db").is_some());

    // --- step: change and remove through the CLI
    std::fs::write(
        conf.join("db.hcl"),
        "service {\n  name = \"db\"\n  port = 6432\n}\n",
    )
    .unwrap();
    std::fs::remove_file(conf.join("web3.json")).unwrap();
    let addr = format!("-http-addr={}", p.addr);
    let (code, out, err) = cli(&["reload", &addr], None);
    assert_eq!(
        (code, out.trim()),
        (0, "Configuration reload triggered"),
        "{err}"
    );
    let svcs = services(&p);
    assert_eq!(svcs["db"]["Port"], 6432);
    assert!(
        svcs.get("web3").is_none(),
        "removed file, removed service: {svcs}"
    );
    assert!(
        svcs.get("api-only").is_some(),
        "API registrations are untouched"
    );
    let catalog = ureq_get(&format!("{}/v1/catalog/service/web3", p.base)).unwrap();
    assert_eq!(catalog, "[]", "gone from the catalog too");

    // --- step: a broken file keeps the running configuration
    std::fs::write(conf.join("broken.json"), "{\"service\": {\"name\": ").unwrap();
    let (code, _, err) = cli(&["reload", &addr], None);
    assert_ne!(code, 0);
    assert!(err.contains("broken.json"), "{err}");
    let (status, body) = http("PUT", &format!("{}/v1/agent/reload", p.base), b"").unwrap();
    assert_eq!(status, 500, "{body}");
    let svcs = services(&p);
    assert_eq!(svcs["db"]["Port"], 6432, "running config kept: {svcs}");
    assert!(svcs.get("api-only").is_some());
}
