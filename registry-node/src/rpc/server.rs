//! The RPC listener: one task accepts, one task per connection reads frames
//! and writes answers, and every request runs in its own task so that a slow
//! call (a forwarded write waiting for its commit) never delays heartbeats
//! queued behind it on the same connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{Envelope, RpcHandler, RpcRequest, RpcResponse, codec};

/// How long `shutdown` waits for connection and request tasks.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running RPC server.
pub struct RpcServerHandle {
    /// The address the listener is bound to.
    pub local_addr: SocketAddr,
    /// Cancels the accept loop, every connection and every request task.
    token: CancellationToken,
    /// The accept loop and everything it spawned.
    tracker: TaskTracker,
}

impl RpcServerHandle {
    /// Stops accepting, closes every connection and waits (bounded) for the
    /// tasks, so the port can be bound again afterwards.
    pub async fn shutdown(&self) {
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(addr = %self.local_addr, "rpc server tasks did not stop in time");
        }
    }
}

/// Serves RPC on an already-bound listener until `token` is cancelled.
pub fn spawn_rpc_server<H: RpcHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    token: CancellationToken,
) -> std::io::Result<RpcServerHandle> {
    let local_addr = listener.local_addr()?;
    let token = token.child_token();
    let tracker = TaskTracker::new();
    tracker.spawn(
        accept_loop(listener, handler, token.clone(), tracker.clone())
            .instrument(tracing::info_span!("rpc_server", addr = %local_addr)),
    );
    Ok(RpcServerHandle {
        local_addr,
        token,
        tracker,
    })
}

async fn accept_loop<H: RpcHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    tracing::info!("rpc server started");
    loop {
        let accepted = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tracker.spawn(
                    connection_loop(
                        stream,
                        handler.clone(),
                        token.child_token(),
                        tracker.clone(),
                    )
                    .instrument(tracing::debug_span!("rpc_conn", %peer)),
                );
            }
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "rpc accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::info!("rpc server stopped");
}

async fn connection_loop<H: RpcHandler>(
    stream: TcpStream,
    handler: Arc<H>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    let mut framed = Framed::new(stream, codec());
    let (answer_tx, mut answer_rx) = mpsc::channel::<Bytes>(256);
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            Some(answer) = answer_rx.recv() => {
                if let Err(e) = framed.send(answer).await {
                    tracing::debug!(error = %e, "rpc write failed");
                    break;
                }
            }
            frame = framed.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "rpc read failed");
                        break;
                    }
                    None => break,
                };
                let (id, request) = match serde_json::from_slice::<Envelope<RpcRequest>>(&frame) {
                    Ok(env) => (env.id, Ok(env.body)),
                    // Answer what we can: the ID if it parses, so the caller fails fast.
                    Err(e) => (peek_id(&frame), Err(e.to_string())),
                };
                let handler = handler.clone();
                let answer_tx = answer_tx.clone();
                let token = token.clone();
                tracker.spawn(async move {
                    let body = match request {
                        Ok(req) => tokio::select! {
                            biased;
                            _ = token.cancelled() => RpcResponse::Error("server shutting down".into()),
                            resp = handler.handle(req) => resp,
                        },
                        Err(e) => RpcResponse::Error(format!("bad request: {e}")),
                    };
                    match serde_json::to_vec(&Envelope { id, body }) {
                        Ok(bytes) => {
                            let _ = answer_tx.send(Bytes::from(bytes)).await;
                        }
                        Err(e) => tracing::warn!(error = %e, "rpc answer not encodable"),
                    }
                });
            }
        }
    }
}

/// The `id` of a frame whose body did not decode (0 when even that fails).
fn peek_id(frame: &[u8]) -> u64 {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: u64,
    }
    serde_json::from_slice::<IdOnly>(frame)
        .map(|i| i.id)
        .unwrap_or(0)
}
