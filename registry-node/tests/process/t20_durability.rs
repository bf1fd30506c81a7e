//! Acknowledged writes survive `kill -9`: 8 writers put keys concurrently
//! against a durable server, the process is SIGKILLed, restarted on the same
//! `-data-dir`, and every acknowledged key is back with the same indexes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;

#[test]
fn kill9_restart_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "-server",
        "-bootstrap",
        &data_dir_arg(dir.path()),
        "-node=durable",
    ]
    .map(String::from);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let p = Proc::start(&argv);

    // --- step: concurrent acknowledged writes
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (base, acked) = (p.base.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0..40 {
                    let key = format!("k/{t}/{i}");
                    if let Ok((200, body)) = http(
                        "PUT",
                        &format!("{base}/v1/kv/{key}"),
                        format!("v{i}").as_bytes(),
                    ) && body == "true"
                    {
                        acked.lock().unwrap().push(key);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let before = ureq_get(&format!("{}/v1/kv/k/?recurse", p.base)).unwrap();
    let before: Vec<serde_json::Value> = serde_json::from_str(&before).unwrap();
    let indexes: BTreeMap<String, (u64, u64)> = before
        .iter()
        .map(|e| {
            (
                e["Key"].as_str().unwrap().to_string(),
                (
                    e["CreateIndex"].as_u64().unwrap(),
                    e["ModifyIndex"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(acked.lock().unwrap().len(), 320);

    // --- step: SIGKILL and restart on the same data dir
    p.kill9();
    let p = Proc::start(&argv);
    let after = ureq_get(&format!("{}/v1/kv/k/?recurse", p.base)).unwrap();
    let after: Vec<serde_json::Value> = serde_json::from_str(&after).unwrap();
    for key in acked.lock().unwrap().iter() {
        let e = after
            .iter()
            .find(|e| e["Key"] == key.as_str())
            .unwrap_or_else(|| panic!("lost acknowledged key {key}"));
        let idx = (
            e["CreateIndex"].as_u64().unwrap(),
            e["ModifyIndex"].as_u64().unwrap(),
        );
        assert_eq!(indexes[key], idx, "indexes of {key}");
    }
}
