//! Checks that run: real local HTTP, TCP and UDP servers flipped between
//! healthy and unhealthy, observed through `/v1/health/service/<name>?passing`;
//! script checks (timeouts, permission), alias checks, initial status.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use super::*;
use registry_node::agent::AgentOptions;
use serde_json::json;

/// Polls `?passing` until the instance count is `want`.
async fn wait_passing(a: &TestAgent, service: &str, want: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (rows, _) = get_json(a, &format!("/v1/health/service/{service}?passing")).await;
        let n = rows.as_array().unwrap().len();
        if n == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service}: {n} passing, want {want}: {rows}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn check_output(a: &TestAgent, id: &str) -> (String, String) {
    let (checks, _) = get_json(a, "/v1/agent/checks").await;
    let c = &checks[id];
    (
        c["Status"].as_str().unwrap_or("").to_string(),
        c["Output"].as_str().unwrap_or("").to_string(),
    )
}

/// An HTTP server whose answer code the test sets.
async fn flipping_http() -> (String, Arc<AtomicU16>) {
    let code = Arc::new(AtomicU16::new(200));
    let c = code.clone();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let c = c.clone();
            async move {
                (
                    axum::http::StatusCode::from_u16(c.load(Ordering::SeqCst)).unwrap(),
                    "body-text",
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/health"), code)
}

#[tokio::test]
async fn http_check_follows_the_server() {
    let a = TestAgent::start().await;
    let (url, code) = flipping_http().await;
    let reg = json!({"Name": "web", "ID": "web1", "Port": 80, "Check": {"HTTP": url, "Interval": "200ms"}});
    assert_eq!(
        put(&a, "/v1/agent/service/register", reg.to_string())
            .await
            .0,
        200
    );
    // --- step: healthy
    wait_passing(&a, "web", 1).await;
    let (status, output) = check_output(&a, "service:web1").await;
    assert_eq!(status, "passing");
    assert!(
        output.starts_with(&format!("HTTP GET {url}: 200 OK Output: body-text")),
        "{output}"
    );
    // --- step: 429 is warning (not passing), 503 is critical
    code.store(429, Ordering::SeqCst);
    wait_passing(&a, "web", 0).await;
    assert_eq!(check_output(&a, "service:web1").await.0, "warning");
    code.store(503, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while check_output(&a, "service:web1").await.0 != "critical" {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // --- step: back to healthy
    code.store(200, Ordering::SeqCst);
    wait_passing(&a, "web", 1).await;
    // --- step: deregistering stops the check
    assert_eq!(
        put(&a, "/v1/agent/service/deregister/web1", "").await.0,
        200
    );
    assert_eq!(a.handle.agent.runner.running(), 0);
    a.shutdown().await;
}

#[tokio::test]
async fn tcp_and_udp_checks_follow_the_servers() {
    let a = TestAgent::start().await;
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp.local_addr().unwrap();
    let reg = json!({"Name": "db", "ID": "db1", "Port": tcp_addr.port(), "Checks": [
        {"CheckID": "db-tcp", "Name": "tcp", "TCP": tcp_addr.to_string(), "Interval": "200ms", "Timeout": "1s"},
        {"CheckID": "db-udp", "Name": "udp", "UDP": udp_addr.to_string(), "Interval": "200ms", "Timeout": "300ms"}
    ]});
    assert_eq!(
        put(&a, "/v1/agent/service/register", reg.to_string())
            .await
            .0,
        200
    );
    wait_passing(&a, "db", 1).await;
    assert_eq!(
        check_output(&a, "db-tcp").await.1,
        format!("TCP connect {tcp_addr}: Success")
    );
    // --- step: close both servers
    drop(tcp);
    drop(udp);
    wait_passing(&a, "db", 0).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while check_output(&a, "db-tcp").await.0 != "critical"
        || check_output(&a, "db-udp").await.0 != "critical"
    {
        assert!(tokio::time::Instant::now() < deadline, "both critical");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.shutdown().await;
}

#[tokio::test]
async fn script_checks_need_permission_and_time_out() {
    // --- step: refused by default
    let a = TestAgent::start().await;
    let reg =
        json!({"Name": "job", "Check": {"Args": ["sh", "-c", "exit 0"], "Interval": "200ms"}});
    let (status, body) = put(&a, "/v1/agent/service/register", reg.to_string()).await;
    assert_eq!(status, 400);
    assert!(body.contains("Scripts are disabled"), "{body}");
    assert_eq!(
        get_json(&a, "/v1/agent/services").await.0,
        json!({}),
        "nothing registered"
    );
    a.shutdown().await;

    // --- step: allowed; exit codes and a hanging script killed at its timeout
    let mut opts = AgentOptions::for_test();
    opts.enable_script_checks = true;
    let a = TestAgent::start_with(opts).await;
    let reg = json!({"Name": "job", "ID": "job", "Checks": [
        {"CheckID": "ok", "Name": "ok", "Args": ["sh", "-c", "echo fine; exit 0"], "Interval": "200ms"},
        {"CheckID": "warn", "Name": "warn", "Args": ["sh", "-c", "exit 1"], "Interval": "200ms"},
        {"CheckID": "hang", "Name": "hang", "Args": ["sh", "-c", "sleep 30 & sleep 31"], "Interval": "1s", "Timeout": "300ms"}
    ]});
    assert_eq!(
        put(&a, "/v1/agent/service/register", reg.to_string())
            .await
            .0,
        200
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ok = check_output(&a, "ok").await;
        let warn = check_output(&a, "warn").await;
        let hang = check_output(&a, "hang").await;
        if ok.0 == "passing"
            && warn.0 == "warning"
            && hang.0 == "critical"
            && hang.1.starts_with("Timed out")
        {
            assert!(ok.1.contains("fine"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{ok:?} {warn:?} {hang:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.shutdown().await;
}

#[tokio::test]
async fn alias_check_mirrors_another_service() {
    let a = TestAgent::start().await;
    let backend = json!({"Name": "backend", "ID": "backend", "Check": {"CheckID": "backend-ttl", "TTL": "60s", "Status": "passing"}});
    assert_eq!(
        put(&a, "/v1/agent/service/register", backend.to_string())
            .await
            .0,
        200
    );
    let sidecar = json!({"Name": "sidecar", "ID": "sidecar", "Check": {"Name": "alias", "AliasService": "backend"}});
    assert_eq!(
        put(&a, "/v1/agent/service/register", sidecar.to_string())
            .await
            .0,
        200
    );
    wait_passing(&a, "sidecar", 1).await;
    assert_eq!(put(&a, "/v1/agent/check/fail/backend-ttl", "").await.0, 200);
    wait_passing(&a, "sidecar", 0).await;
    a.shutdown().await;
}

#[tokio::test]
async fn agent_config_watches_run_their_handler_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seen.log");
    let mut opts = AgentOptions::for_test();
    opts.watches = vec![json!({
        "type": "key",
        "key": "app/config",
        "args": ["sh", "-c", format!("cat >> {}; echo >> {}", out.display(), out.display())]
    })];
    let a = TestAgent::start_with(opts).await;
    let count = || {
        std::fs::read_to_string(&out)
            .map(|s| s.lines().filter(|l| !l.is_empty()).count())
            .unwrap_or(0)
    };
    // --- step: the first result (the key is missing: null) runs the handler once
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count() < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "initial handler run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // --- step: other keys do not run it; the watched key does
    put(&a, "/v1/kv/other", "x").await;
    put(&a, "/v1/kv/app/config", "v1").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "handler after the change"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(), 2, "{}", std::fs::read_to_string(&out).unwrap());
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("app/config")
    );
    a.shutdown().await;
}

#[tokio::test]
async fn invalid_agent_watch_fails_start_up() {
    let mut opts = AgentOptions::for_test();
    opts.watches = vec![json!({"type": "nope", "args": ["true"]})];
    let listeners = registry_node::agent::Listeners::loopback(true)
        .await
        .unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let err = registry_node::agent::Agent::start(opts, listeners, token.clone())
        .await
        .err()
        .expect("start fails");
    assert!(err.to_string().contains("Unsupported watch type"), "{err}");
    token.cancel();
}
