//! Golden tests: every `*.ctmpl` / `*.hbs` in this directory is rendered
//! against a real registry-node agent (in-process, port 0) and compared byte
//! for byte with `<stem>.out` (a `.hbs` twin shares its `.ctmpl`'s `.out`).
//! `<stem>.err` instead holds the expected error message.
//!
//! The render loop is the runner's n-pass discovery in miniature: render,
//! fetch every missing dependency over HTTP, `decode` it into the brain,
//! render again until nothing is missing.
//!
//! Set `GOLDEN_BLESS=1` to (re)write the expected files — then review every
//! diff against Go/consul-template semantics before keeping it.

mod t10_render;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use registry_node::agent::AgentOptions;
use registry_node::testing::TestAgent;
use serde_json::json;
use templater::{
    Brain, Dependency, Dialect, RenderContext, RenderOutcome, Source, Template, TemplateOptions,
    decode, render,
};

/// The fixture agent's node name.
pub const AGENT: &str = "agent1";

/// Starts an agent named [`AGENT`] and loads the fixture catalog and KV.
pub async fn fixture_agent() -> TestAgent {
    let mut opts = AgentOptions::for_test();
    opts.node_name = AGENT.into();
    let a = TestAgent::start_with(opts).await;
    let nodes = [
        ("web1", "10.0.0.1", json!({"rack": "r1"})),
        ("web2", "10.0.0.2", json!({"rack": "r2"})),
        ("web3", "10.0.0.3", json!({})),
        ("db1", "10.0.0.10", json!({"rack": "r1", "role": "db"})),
    ];
    for (node, addr, meta) in nodes.clone() {
        put(
            &a,
            "/v1/catalog/register",
            json!({"Node": node, "Address": addr, "NodeMeta": meta}),
        )
        .await;
    }
    let services = [
        // node, id, name, address, port, tags, meta, check status
        (
            "web1",
            "nginx-1",
            "nginx",
            "",
            80,
            json!(["web", "primary"]),
            json!({"version": "1.2"}),
            "passing",
        ),
        (
            "web2",
            "nginx-2",
            "nginx",
            "10.0.1.2",
            8080,
            json!(["web"]),
            json!({}),
            "passing",
        ),
        (
            "web3",
            "nginx-3",
            "nginx",
            "",
            80,
            json!(["web", "canary"]),
            json!({}),
            "critical",
        ),
        (
            "db1",
            "redis-1",
            "redis",
            "",
            6379,
            json!(["cache"]),
            json!({}),
            "",
        ),
        (
            "db1",
            "postgres-1",
            "postgres",
            "",
            5432,
            json!(["sql", "primary"]),
            json!({}),
            "warning",
        ),
    ];
    for (node, id, name, addr, port, tags, meta, status) in services {
        let mut body = json!({
            "Node": node,
            "Address": nodes.iter().find(|n| n.0 == node).map(|n| n.1).unwrap(),
            // Re-registering a node without NodeMeta clears it (as in Consul).
            "NodeMeta": nodes.iter().find(|n| n.0 == node).map(|n| n.2.clone()).unwrap(),
            "Service": {"ID": id, "Service": name, "Address": addr, "Port": port, "Tags": tags, "Meta": meta},
        });
        if !status.is_empty() {
            body["Check"] = json!({"CheckID": format!("check-{id}"), "Name": format!("{name} health"), "Status": status, "ServiceID": id});
        }
        put(&a, "/v1/catalog/register", body).await;
    }
    let kv: &[(&str, &str)] = &[
        ("config/app/name", "demo"),
        ("config/app/port", "8080"),
        ("config/app/empty", ""),
        ("config/db/", ""),
        ("config/db/host", "db.internal"),
        ("config/db/nested/deep", "x"),
        (
            "json/settings",
            r#"{"b": 2, "a": [1, "x"], "html": "<b>&"}"#,
        ),
        ("flags/enabled", "true"),
        ("nums/int", "42"),
        ("services/web/port", "80"),
        ("services/web/host", "w"),
        ("services/db/port", "5432"),
    ];
    for (k, v) in kv {
        let r = a
            .http
            .put(a.url(&format!("/v1/kv/{k}")))
            .body(v.to_string())
            .send()
            .await
            .expect("PUT kv");
        assert!(r.status().is_success(), "PUT {k}");
    }
    a
}

pub async fn put(a: &TestAgent, path: &str, body: serde_json::Value) {
    let r = a
        .http
        .put(a.url(path))
        .body(body.to_string())
        .send()
        .await
        .expect("PUT");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "PUT {path} {body}: {status} {text}");
}

/// GETs a Consul path with params; 404 yields an empty body (no such key).
async fn get(a: &TestAgent, path: &str, params: &[(String, String)]) -> Vec<u8> {
    let mut url = a.url(path);
    for (i, (k, v)) in params.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(k);
        if !v.is_empty() {
            url.push('=');
            url.push_str(v);
        }
    }
    let r = a.http.get(&url).send().await.expect("GET");
    if r.status().as_u16() == 404 {
        return Vec::new();
    }
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.bytes().await.expect("body").to_vec()
}

/// Fetches one dependency the way the watcher will (without blocking).
pub async fn fetch(a: &TestAgent, dep: &Dependency) -> templater::Data {
    let body = match dep.source() {
        Source::Consul { path, params, .. } => get(a, &path, &params).await,
        Source::ConsulLocalNode { params } => {
            let me: serde_json::Value =
                serde_json::from_slice(&get(a, "/v1/agent/self", &[]).await).expect("self");
            let name = me["Config"]["NodeName"]
                .as_str()
                .expect("NodeName")
                .to_string();
            get(a, &format!("/v1/catalog/node/{name}"), &params).await
        }
        Source::File(path) => std::fs::read(&path).expect("fixture file"),
    };
    decode(dep, &body).unwrap_or_else(|e| panic!("{e}"))
}

/// The fixed render context: clock at 2009-11-10T23:04:05Z, FOO=bar.
pub fn context() -> RenderContext {
    RenderContext {
        env: Arc::new(vec![("FOO".into(), "bar".into())]),
        now: Some(UNIX_EPOCH + Duration::from_secs(1_257_894_245)),
    }
}

/// Renders until nothing is missing (or a pass discovers nothing new);
/// returns the last outcome and the number of passes.
pub async fn render_loop(a: &TestAgent, t: &Template, brain: &mut Brain) -> (RenderOutcome, usize) {
    let ctx = context();
    let mut passes = 0;
    loop {
        passes += 1;
        let out = render(t, brain, &ctx).unwrap_or_else(|e| panic!("{e}"));
        if std::env::var_os("GOLDEN_DEBUG").is_some() {
            eprintln!(
                "pass {passes}: missing {:?} output {:?}",
                out.missing
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>(),
                out.output
            );
        }
        let unfetched: Vec<_> = out
            .missing
            .iter()
            .filter(|d| brain.recall(d).is_none())
            .cloned()
            .collect();
        if out.missing.is_empty() || unfetched.is_empty() || passes > 10 {
            return (out, passes);
        }
        for dep in unfetched {
            let data = fetch(a, &dep).await;
            brain.remember(dep, data);
        }
    }
}

/// Options for a golden file: `delims_*` use `[[`/`]]`.
pub fn options(path: &Path) -> TemplateOptions {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mut o = TemplateOptions {
        dialect: Dialect::from_path(name),
        ..TemplateOptions::default()
    };
    if name.starts_with("delims") {
        o.left_delim = "[[".into();
        o.right_delim = "]]".into();
    }
    o
}

/// All golden inputs, sorted.
pub fn inputs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("ctmpl" | "hbs")
            )
        })
        .collect();
    v.sort();
    v
}
