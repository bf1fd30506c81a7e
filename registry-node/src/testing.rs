//! Test harness (feature `test-util`): start real agents in-process on port 0
//! and talk to them over HTTP. The cluster issue grows this into `TestCluster`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentHandle, AgentOptions, Listeners};

/// A running in-process agent and an HTTP client for it.
pub struct TestAgent {
    /// The agent handle.
    pub handle: AgentHandle,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client with no proxy.
    pub http: reqwest::Client,
}

impl TestAgent {
    /// Starts a dev-mode server with test options and waits until it leads and
    /// has registered itself.
    pub async fn start() -> TestAgent {
        Self::start_with(AgentOptions::for_test()).await
    }

    /// Starts an agent with the given options (ports are always 0).
    pub async fn start_with(opts: AgentOptions) -> TestAgent {
        let listeners = Listeners::loopback(opts.server)
            .await
            .expect("bind listeners");
        let handle = Agent::start(opts, listeners, CancellationToken::new())
            .await
            .expect("agent starts");
        let base = format!("http://{}", handle.http_addr);
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let agent = TestAgent { handle, base, http };
        agent.wait_ready().await;
        agent
    }

    /// Waits until this agent leads and its node is in the catalog.
    pub async fn wait_ready(&self) {
        let node = self.handle.agent.opts.node_name.clone();
        wait_for(Duration::from_secs(10), "agent ready", || {
            self.handle.agent.raft.is_leader()
                && self
                    .handle
                    .agent
                    .raft
                    .shared
                    .read(|s| s.catalog().node(&node).is_some())
        })
        .await;
    }

    /// Full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the agent.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
