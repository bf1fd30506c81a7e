//! A registry outage does not kill templater.

use std::time::Duration;

use registry_node::agent::{AgentOptions, Listeners};
use registry_node::testing::TestAgent;
use tokio::net::{TcpListener, UdpSocket};

use super::*;

/// Binds a fresh agent's listeners with HTTP on `port` (retrying while the
/// old socket lingers).
async fn listeners_on(port: u16) -> Listeners {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let http = loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => break l,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("rebind {port}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("rebind {port}: {e}"),
        }
    };
    Listeners {
        http,
        server_rpc: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        serf_lan: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        dns: Vec::new(),
    }
}

/// What this test does:
/// - templater renders from an agent, then the agent is shut down;
/// - templater keeps running and keeps the last output while the registry is
///   gone (logging the failure, retrying with backoff);
/// - a new agent on the same HTTP port (empty state, lower index) comes up and
///   gets a new instance: templater renders the new state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_registry_restart() {
    let a = TestAgent::start().await;
    let port = a.handle.http_addr.port();
    let (_d, dir) = workdir();
    register(&a, "nginx", "nginx-1", "10.0.0.1", 80).await;
    let out = dir.join("out.conf");
    let mut t = Templater::start(
        &dir,
        &[
            "-consul-addr",
            &addr(&a),
            "-template",
            "nginx.ctmpl:out.conf",
            "-consul-retry-max-backoff=1s",
            "-log-level=info",
        ],
    );
    wait_file(&out, "first render", |s| s.contains("10.0.0.1:80")).await;
    let before = std::fs::read_to_string(&out).unwrap();

    println!("--- step: registry down");
    a.shutdown().await;
    t.wait_log("query failed; retrying").await;
    // Longer than several backoff rounds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        t.running(),
        "templater must survive the outage\n{}",
        t.log()
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), before);
    assert_eq!(
        t.log().matches("query failed; retrying").count(),
        1,
        "logged once\n{}",
        t.log()
    );

    println!("--- step: registry back on the same port");
    let b = TestAgent::start_on(AgentOptions::for_test(), listeners_on(port).await).await;
    b.wait_ready().await;
    register(&b, "nginx", "nginx-9", "10.0.0.9", 80).await;
    wait_until("new state", || {
        std::fs::read_to_string(&out)
            .is_ok_and(|s| s.contains("10.0.0.9:80") && !s.contains("10.0.0.1:80"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n--- log:\n{}", t.log()));
    t.wait_log("(view) recovered").await;
    assert!(t.running());
    b.shutdown().await;
}
