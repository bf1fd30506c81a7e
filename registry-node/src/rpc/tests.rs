//! Transport tests over real loopback sockets: multiplexing, timeouts, error
//! classification and reconnection.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;

/// `Ping` answers at once, `ReadIndex` after 300 ms, `ForwardWrite` never.
struct TestHandler;

impl RpcHandler for TestHandler {
    async fn handle(&self, req: RpcRequest) -> RpcResponse {
        match req {
            RpcRequest::Ping => RpcResponse::Pong(PeerStatus {
                id: 9,
                initialized: false,
                leader: None,
            }),
            RpcRequest::ReadIndex => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                RpcResponse::ReadIndex(Ok(7))
            }
            RpcRequest::ForwardWrite(_) => std::future::pending().await,
            _ => RpcResponse::Error("unsupported".into()),
        }
    }
}

async fn server() -> (RpcServerHandle, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let handle =
        spawn_rpc_server(listener, Arc::new(TestHandler), CancellationToken::new()).expect("spawn");
    let addr = handle.local_addr.to_string();
    (handle, addr)
}

const LONG: Duration = Duration::from_secs(5);

#[tokio::test]
async fn calls_are_multiplexed_and_answered_out_of_order() {
    let (server, addr) = server().await;
    let client = RpcClient::new();
    let slow = {
        let (client, addr) = (client.clone(), addr.clone());
        tokio::spawn(async move { client.call(&addr, RpcRequest::ReadIndex, LONG).await })
    };
    // Give the slow call time to occupy the (single) connection first.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = tokio::time::Instant::now();
    let fast = client
        .call(&addr, RpcRequest::Ping, LONG)
        .await
        .expect("ping");
    assert!(matches!(fast, RpcResponse::Pong(_)));
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "ping waited behind the slow call"
    );
    let slow = slow.await.expect("join").expect("read index");
    assert!(matches!(slow, RpcResponse::ReadIndex(Ok(7))));
    assert_eq!(client.pooled(), 1, "one pooled connection");
    server.shutdown().await;
}

#[tokio::test]
async fn refused_connection_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let err = RpcClient::new()
        .call(&addr, RpcRequest::Ping, LONG)
        .await
        .expect_err("nobody listens");
    assert!(err.is_unreachable(), "{err:?}");
}

#[tokio::test]
async fn a_timed_out_call_leaves_the_connection_usable() {
    let (server, addr) = server().await;
    let client = RpcClient::new();
    let err = client
        .call(&addr, RpcRequest::ReadIndex, Duration::from_millis(50))
        .await
        .expect_err("too slow");
    assert!(err.is_timeout(), "{err:?}");
    let pong = client
        .call(&addr, RpcRequest::Ping, LONG)
        .await
        .expect("ping");
    assert!(matches!(pong, RpcResponse::Pong(_)));
    server.shutdown().await;
}

#[tokio::test]
async fn broken_mid_call_is_not_unreachable_and_the_client_reconnects() {
    let (server, addr) = server().await;
    let client = RpcClient::new();
    let stuck = {
        let (client, addr) = (client.clone(), addr.clone());
        tokio::spawn(async move {
            client
                .call(&addr, RpcRequest::ForwardWrite(Vec::new()), LONG)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.shutdown().await;
    let err = stuck.await.expect("join").expect_err("server went away");
    assert!(!err.is_unreachable() && !err.is_timeout(), "{err:?}");

    // Same port again (a restarted server): the pool replaces the dead connection.
    let listener = TcpListener::bind(&addr).await.expect("rebind");
    let server =
        spawn_rpc_server(listener, Arc::new(TestHandler), CancellationToken::new()).expect("spawn");
    let pong = client
        .call(&addr, RpcRequest::Ping, LONG)
        .await
        .expect("ping");
    assert!(matches!(pong, RpcResponse::Pong(_)));
    server.shutdown().await;
}
