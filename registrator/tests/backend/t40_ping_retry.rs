//! `ping_with_retry`: upstream's startup loop (`-retry-attempts`, `-retry-interval`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use registrator::backend::{self, Backend, BackendError, ping_with_retry};
use registry_node::agent::{AgentOptions, Listeners};

use super::*;

/// A real backend whose pings are counted.
#[derive(Debug)]
struct Counted {
    inner: Arc<dyn Backend>,
    pings: AtomicUsize,
}

#[async_trait]
impl Backend for Counted {
    async fn ping(&self) -> Result<String, BackendError> {
        self.pings.fetch_add(1, Ordering::SeqCst);
        self.inner.ping().await
    }
    async fn register(&self, s: &Service) -> Result<(), BackendError> {
        self.inner.register(s).await
    }
    async fn deregister(&self, s: &Service) -> Result<(), BackendError> {
        self.inner.deregister(s).await
    }
    async fn refresh(&self, s: &Service) -> Result<(), BackendError> {
        self.inner.refresh(s).await
    }
}

fn counted(uri: &str) -> Counted {
    Counted {
        inner: backend::from_uri(uri).unwrap(),
        pings: AtomicUsize::new(0),
    }
}

/// What this test does: against a closed port, `attempts` = 0 pings once and 2
/// pings three times, then returns the last (unreachable) error.
#[tokio::test]
async fn gives_up_after_attempts_plus_one() {
    let uri = format!("consul://127.0.0.1:{}", closed_port());
    for (attempts, expected) in [(0, 1), (2, 3)] {
        let b = counted(&uri);
        let err = ping_with_retry(&b, attempts, Duration::from_millis(10))
            .await
            .unwrap_err();
        assert!(err.is_unreachable(), "{err:?}");
        assert_eq!(
            b.pings.load(Ordering::SeqCst),
            expected,
            "attempts {attempts}"
        );
    }
}

/// What this test does: the agent starts on the pinged port while the loop is
/// retrying (forever, `-1`); the loop then succeeds after more than one ping.
#[tokio::test]
async fn succeeds_when_the_registry_appears() {
    let port = closed_port();
    let b = Arc::new(counted(&format!("consul://127.0.0.1:{port}")));
    let pinger = {
        let b = b.clone();
        tokio::spawn(async move { ping_with_retry(&*b, -1, Duration::from_millis(100)).await })
    };

    // --- step: wait for a failed ping or two, then start the agent on that port
    eventually("a failed ping", || async {
        (b.pings.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    let mut listeners = Listeners::loopback(true).await.unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    listeners.http = tokio::net::TcpListener::bind(addr)
        .await
        .expect("the released port is still free");
    let agent = TestAgent::start_on(AgentOptions::for_test(), listeners).await;
    agent.wait_ready().await;

    let text = tokio::time::timeout(Duration::from_secs(20), pinger)
        .await
        .expect("the loop ends")
        .unwrap()
        .unwrap();
    assert!(text.starts_with("consul: current leader "), "{text}");
    assert!(b.pings.load(Ordering::SeqCst) >= 3);
    agent.shutdown().await;
}
