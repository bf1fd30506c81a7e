//! Unit tests of watch definitions: every type, the handler rules and the error
//! messages (which must name the offending field).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::*;

fn err(value: serde_json::Value) -> String {
    parse_watch(&value).unwrap_err()
}

#[test]
fn every_type_parses() {
    let spec = parse_watch(&json!({"type": "key", "key": "a/b", "args": ["h"]})).unwrap();
    assert_eq!(spec.kind, WatchKind::Key { key: "a/b".into() });
    assert_eq!(spec.handler, Some(HandlerSpec::Args(vec!["h".into()])));
    assert_eq!(spec.type_name(), "key");

    let spec =
        parse_watch(&json!({"type": "keyprefix", "prefix": "a/", "handler": "cat", "stale": true}))
            .unwrap();
    assert_eq!(
        spec.kind,
        WatchKind::KeyPrefix {
            prefix: "a/".into()
        }
    );
    assert_eq!(spec.handler, Some(HandlerSpec::Shell("cat".into())));
    assert!(spec.stale);

    for (t, kind) in [
        ("services", WatchKind::Services),
        ("nodes", WatchKind::Nodes),
    ] {
        let spec = parse_watch(&json!({"type": t, "args": ["h"]})).unwrap();
        assert_eq!(spec.kind, kind);
    }

    let spec = parse_watch(&json!({
        "type": "service", "service": "web", "tag": "v1", "passingonly": true,
        "datacenter": "dc2", "token": "t", "args": ["h"]
    }))
    .unwrap();
    assert_eq!(
        spec.kind,
        WatchKind::Service {
            service: "web".into(),
            tags: vec!["v1".into()],
            passing_only: true
        }
    );
    assert_eq!(spec.datacenter.as_deref(), Some("dc2"));
    assert_eq!(spec.token.as_deref(), Some("t"));

    let spec = parse_watch(
        &json!({"type": "service", "service": "web", "tag": ["a", "b"], "args": ["h"]}),
    )
    .unwrap();
    assert!(
        matches!(spec.kind, WatchKind::Service { ref tags, passing_only: false, .. } if tags.len() == 2)
    );

    let spec = parse_watch(&json!({"type": "checks", "args": ["h"]})).unwrap();
    assert_eq!(
        spec.kind,
        WatchKind::Checks {
            target: ChecksTarget::State("any".into()),
            tags: vec![]
        }
    );
    let spec = parse_watch(&json!({"type": "checks", "state": "critical", "args": ["h"]})).unwrap();
    assert!(
        matches!(spec.kind, WatchKind::Checks { target: ChecksTarget::State(ref s), .. } if s == "critical")
    );
    let spec = parse_watch(&json!({"type": "checks", "service": "web", "args": ["h"]})).unwrap();
    assert!(
        matches!(spec.kind, WatchKind::Checks { target: ChecksTarget::Service(ref s), .. } if s == "web")
    );

    let spec = parse_watch(&json!({"type": "event", "name": "deploy", "args": ["h"]})).unwrap();
    assert_eq!(
        spec.kind,
        WatchKind::Event {
            name: "deploy".into()
        }
    );
    let spec = parse_watch(&json!({"type": "event", "args": ["h"]})).unwrap();
    assert_eq!(
        spec.kind,
        WatchKind::Event {
            name: String::new()
        }
    );
}

#[test]
fn http_handler_defaults_and_fields() {
    let spec = parse_watch(&json!({
        "type": "key", "key": "k", "handler_type": "http",
        "http_handler_config": {"path": "http://127.0.0.1:9/hook"}
    }))
    .unwrap();
    assert_eq!(
        spec.handler,
        Some(HandlerSpec::Http(HttpHandlerConfig {
            path: "http://127.0.0.1:9/hook".into(),
            method: "POST".into(),
            header: BTreeMap::new(),
            timeout: Duration::from_secs(10),
            tls_skip_verify: false,
        }))
    );

    let spec = parse_watch(&json!({
        "type": "nodes", "handler_type": "http",
        "http_handler_config": {
            "path": "http://h/x", "method": "PUT", "timeout": "3s",
            "header": {"X-A": ["1", "2"], "X-B": "3"}, "tls_skip_verify": true
        }
    }))
    .unwrap();
    let Some(HandlerSpec::Http(config)) = spec.handler else {
        panic!("http handler expected")
    };
    assert_eq!(config.method, "PUT");
    assert_eq!(config.timeout, Duration::from_secs(3));
    assert_eq!(config.header["X-A"], vec!["1", "2"]);
    assert_eq!(config.header["X-B"], vec!["3"]);
    assert!(config.tls_skip_verify);

    // HCL hands blocks over as one-element lists.
    let spec = parse_watch(&json!({
        "type": "nodes", "handler_type": "http",
        "http_handler_config": [{"path": "http://h/x"}]
    }))
    .unwrap();
    assert!(matches!(spec.handler, Some(HandlerSpec::Http(_))));
}

#[test]
fn errors_are_consuls_and_name_the_field() {
    assert_eq!(
        err(json!({"key": "k", "args": ["h"]})),
        "Watch type must be specified"
    );
    assert_eq!(
        err(json!({"type": "bogus", "args": ["h"]})),
        "Unsupported watch type: bogus"
    );
    assert_eq!(err(json!({"type": 3})), "Expecting type to be a string");
    assert_eq!(
        err(json!({"type": "key", "args": ["h"]})),
        "Must specify a single key to watch"
    );
    assert_eq!(
        err(json!({"type": "keyprefix", "args": ["h"]})),
        "Must specify a single prefix to watch"
    );
    assert_eq!(
        err(json!({"type": "service", "args": ["h"]})),
        "Must specify a single service to watch"
    );
    assert_eq!(
        err(json!({"type": "checks", "service": "a", "state": "any", "args": ["h"]})),
        "Cannot specify service and state"
    );
    assert_eq!(
        err(json!({"type": "service", "service": "web", "passingonly": "yes", "args": ["h"]})),
        "Expecting passingonly to be a boolean"
    );
    assert_eq!(
        err(json!({"type": "service", "service": "web", "tag": [1], "args": ["h"]})),
        "Index 0 of tag expected to be string"
    );
    assert_eq!(
        err(json!({"type": "service", "service": "web", "tag": 1, "args": ["h"]})),
        "Expecting tag to be a string or []string"
    );
    // Keys another type uses are leftovers here.
    assert_eq!(
        err(json!({"type": "key", "key": "k", "service": "web", "prefix": "p", "args": ["h"]})),
        "Invalid parameters: [prefix service]"
    );
    assert_eq!(
        err(json!({"type": "event", "stale": true, "args": ["h"]})),
        "Invalid parameters: [stale]"
    );
    assert!(err(json!("key")).contains("must be a JSON object"));
}

#[test]
fn handler_rules() {
    assert_eq!(err(json!({"type": "nodes"})), "Must define a watch handler");
    assert_eq!(
        err(json!({"type": "nodes", "handler": "a", "args": ["b"]})),
        "Only one watch handler allowed"
    );
    assert_eq!(
        err(
            json!({"type": "nodes", "args": ["b"], "handler_type": "http",
                   "http_handler_config": {"path": "http://h/"}})
        ),
        "Only one watch handler allowed"
    );
    assert_eq!(
        err(json!({"type": "nodes", "handler": ["a"]})),
        "Watch handler must be a string"
    );
    assert_eq!(
        err(json!({"type": "nodes", "args": "a"})),
        "Watch args must be a list of strings"
    );
    assert_eq!(
        err(json!({"type": "nodes", "args": ["a", 1]})),
        "Watch args must be a list of strings"
    );
    assert_eq!(
        err(json!({"type": "nodes", "args": []})),
        "Watch args must not be empty"
    );
    assert_eq!(
        err(json!({"type": "nodes", "handler_type": "http"})),
        "Handler type 'http' requires 'http_handler_config' to be set"
    );
    assert!(
        err(json!({"type": "nodes", "handler_type": "grpc", "args": ["a"]}))
            .contains("handler_type")
    );
    // A script handler does not take an HTTP config.
    assert_eq!(
        err(json!({"type": "nodes", "args": ["a"], "http_handler_config": {"path": "http://h/"}})),
        "Invalid parameters: [http_handler_config]"
    );

    let http = |config: serde_json::Value| {
        err(json!({"type": "nodes", "handler_type": "http", "http_handler_config": config}))
    };
    assert_eq!(
        http(json!({})),
        "Failed to parse 'http_handler_config': Requires 'path' to be set"
    );
    assert!(
        http(json!({"path": "http://h/", "timeout": "soon"}))
            .starts_with("Failed to parse 'http_handler_config': Failed to parse timeout:")
    );
    assert!(http(json!({"path": "https://h/"})).contains("https is not supported"));
    assert!(http(json!({"path": "http://h/", "header": {"X": [1]}})).contains("\"X\""));
    assert!(http(json!({"path": "http://h/", "method": "B AD"})).contains("'method'"));
    assert!(http(json!({"path": "http://h/", "retries": 3})).contains("'retries'"));

    // The CLI form needs no handler.
    let spec = parse_watch_query(&json!({"type": "nodes"})).unwrap();
    assert_eq!(spec.handler, None);
}

#[test]
fn agent_watches_are_all_validated_before_any_starts() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tracker = TaskTracker::new();
        let token = CancellationToken::new();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let defs = vec![
            json!({"type": "nodes", "args": ["true"]}),
            json!({"type": "key", "args": ["true"]}),
        ];
        let e = spawn_agent_watches(&defs, addr, &tracker, token.clone()).unwrap_err();
        assert_eq!(e, "watches[1]: Must specify a single key to watch");
        assert!(tracker.is_empty());

        assert_eq!(
            spawn_agent_watches(&[], addr, &tracker, token.clone()),
            Ok(0)
        );
        let n = spawn_agent_watches(&defs[..1], addr, &tracker, token.clone()).unwrap();
        assert_eq!(n, 1);
        token.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .expect("watch tasks stop on cancellation");
    });
}

/// What this test does:
/// - starts an in-process agent and two configured watches against it: a `key`
///   watch with an `args` handler appending its stdin to a file, and a
///   `keyprefix` watch with an HTTP handler;
/// - writes the key twice with the same value and once with another;
/// - checks each handler ran for the first view and once per real change, with
///   the index in `CONSUL_INDEX` / `X-Consul-Index`, then stops both watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_watches_run_script_and_http_handlers() {
    use crate::testing::{TestAgent, wait_for};
    use std::sync::{Arc, Mutex};

    let agent = TestAgent::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("key.out");

    // --- step: a tiny HTTP endpoint recording (index header, body)
    let hits: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let recorder = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::put(move |headers: axum::http::HeaderMap, body: String| {
            let recorder = recorder.clone();
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                recorder
                    .lock()
                    .unwrap()
                    .push((header("X-Consul-Index"), header("X-Custom"), body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // --- step: start the configured watches
    let defs = vec![
        json!({"type": "key", "key": "cfg/k", "args": [
            "sh", "-c", format!("echo \"$(cat) $CONSUL_INDEX\" >> '{}'", out.display())
        ]}),
        json!({"type": "keyprefix", "prefix": "cfg/", "handler_type": "http",
               "http_handler_config": {"path": hook, "method": "PUT", "header": {"X-Custom": ["yes"]}}}),
    ];
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    let n = spawn_agent_watches(&defs, agent.handle.http_addr, &tracker, token.clone()).unwrap();
    assert_eq!(n, 2);
    let lines = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    wait_for(Duration::from_secs(10), "first runs", || {
        lines().len() == 1 && hits.lock().unwrap().len() == 1
    })
    .await;
    assert!(lines()[0].starts_with("null "), "{:?}", lines());

    // --- step: v1, v1 again (index moves, data does not), then v2
    let put = |v: &'static str| {
        let url = agent.url("/v1/kv/cfg/k");
        let http = agent.http.clone();
        async move {
            let r = http.put(url).body(v).send().await.unwrap();
            assert!(r.status().is_success());
        }
    };
    put("v1").await;
    wait_for(Duration::from_secs(10), "v1 handled", || {
        lines().len() == 2 && hits.lock().unwrap().len() == 2
    })
    .await;
    put("v1").await;
    put("v2").await;
    wait_for(Duration::from_secs(10), "v2 handled", || {
        lines().len() == 3 && hits.lock().unwrap().len() == 3
    })
    .await;
    let lines = lines();
    assert!(lines[1].contains("\"Value\":\"djE=\""), "{lines:?}");
    assert!(lines[2].contains("\"Value\":\"djI=\""), "{lines:?}");
    let index: u64 = lines[2].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(index > 0);
    {
        let hits = hits.lock().unwrap();
        assert_eq!(hits[2].1, "yes");
        assert!(hits[2].0.parse::<u64>().unwrap() > 0);
        let body: serde_json::Value = serde_json::from_str(&hits[2].2).unwrap();
        assert_eq!(body[0]["Key"], "cfg/k");
    }

    // --- step: stop
    token.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .expect("watches stop");
    server.abort();
    agent.shutdown().await;
}
