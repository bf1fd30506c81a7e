//! A unix-socket relay in front of the Docker daemon that a test can cut: every
//! open connection is dropped and the socket disappears (new connections fail)
//! until it is restored, as a registrator sees a daemon restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

const DAEMON: &str = "/var/run/docker.sock";

/// The relay; cut on drop.
pub struct DockerProxy {
    path: PathBuf,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl DockerProxy {
    /// Listens on `path` and relays to the daemon.
    pub fn start(path: &Path) -> DockerProxy {
        let mut proxy = DockerProxy {
            path: path.to_path_buf(),
            accept: None,
            conns: Arc::default(),
        };
        proxy.restore();
        proxy
    }

    /// `DOCKER_HOST` for the relay.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Drops every relayed connection and stops accepting.
    pub fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        let _ = std::fs::remove_file(&self.path);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    /// Accepts again.
    pub fn restore(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).expect("bind proxy socket");
        let conns = self.conns.clone();
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let relay = tokio::spawn(async move {
                    if let Ok(mut daemon) = UnixStream::connect(DAEMON).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut daemon).await;
                    }
                });
                let mut conns = conns.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(relay);
            }
        }));
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
