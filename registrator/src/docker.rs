//! The Docker Engine side of the bridge: which daemon to talk to (`DOCKER_HOST`),
//! the few calls the bridge makes (ping, list, inspect, container events), and
//! the [`Engine`] trait over them so the bridge can be driven by a fake in unit
//! tests.
//!
//! Events are read from `Type`, `Action` and `Actor.ID` only: Engine API 1.52
//! (Docker 29) no longer sends the legacy `status`/`id` fields upstream read.
//! The client negotiates the API version with the daemon (Docker 20.10 speaks at
//! most 1.41, Docker 29 refuses below 1.44).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerSummaryStateEnum, EventMessage};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::service::DockerHealth;

/// Where upstream looks when `DOCKER_HOST` is unset (the documented
/// `-v /var/run/docker.sock:/tmp/docker.sock` mount).
pub const UPSTREAM_DEFAULT_HOST: &str = "unix:///tmp/docker.sock";
/// The daemon's usual socket, used when the upstream default does not exist.
pub const SYSTEM_SOCKET: &str = "/var/run/docker.sock";
/// Timeout of each Docker request (not of the event stream's body).
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Errors talking to the Docker daemon.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// `DOCKER_HOST` names a scheme we cannot use.
    #[error("unsupported DOCKER_HOST {0:?}: use unix:///path or tcp://host:port")]
    UnsupportedHost(String),
    /// A request failed.
    #[error("docker {action} failed at {host}: {source}")]
    Request {
        /// What we asked (`list containers`).
        action: &'static str,
        /// The daemon address.
        host: String,
        /// bollard's error.
        source: bollard::errors::Error,
    },
}

/// The daemon address chosen from the environment, and why (for the start-up log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerHost {
    /// `unix:///path` or `tcp://host:port`.
    pub addr: String,
    /// Set when the address is not simply `DOCKER_HOST`.
    pub note: Option<String>,
}

/// Upstream sets `DOCKER_HOST=unix:///tmp/docker.sock` when unset; we keep that, but
/// fall back to `/var/run/docker.sock` when only that socket exists (registrator
/// run directly on a host, not in its container).
pub fn docker_host(env: Option<&str>, exists: &dyn Fn(&Path) -> bool) -> DockerHost {
    if let Some(host) = env.filter(|h| !h.is_empty()) {
        return DockerHost {
            addr: host.to_string(),
            note: None,
        };
    }
    let default_path = UPSTREAM_DEFAULT_HOST.trim_start_matches("unix://");
    if !exists(Path::new(default_path)) && exists(Path::new(SYSTEM_SOCKET)) {
        return DockerHost {
            addr: format!("unix://{SYSTEM_SOCKET}"),
            note: Some(format!(
                "DOCKER_HOST unset and {default_path} missing: using {SYSTEM_SOCKET}"
            )),
        };
    }
    DockerHost {
        addr: UPSTREAM_DEFAULT_HOST.to_string(),
        note: None,
    }
}

/// One container of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Full container ID.
    pub id: String,
    /// Running (or paused): its services should be registered. The others in the
    /// listing (created, restarting) are alive but have no ports right now.
    pub running: bool,
}

/// A container event the bridge acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// Full container ID (`Actor.ID`).
    pub id: String,
    /// What happened.
    pub kind: EventKind,
}

/// The container actions the bridge subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `start`.
    Start,
    /// `die`.
    Die,
    /// `health_status: healthy|unhealthy|starting`.
    Health(DockerHealth),
}

/// The container event of an Engine event message, `None` for anything else.
pub fn parse_event(message: &EventMessage) -> Option<ContainerEvent> {
    if message.typ.map(|t| t.to_string()).as_deref() != Some("container") {
        return None;
    }
    let id = message
        .actor
        .as_ref()?
        .id
        .clone()
        .filter(|i| !i.is_empty())?;
    let action = message.action.as_deref()?;
    let kind = match action {
        "start" => EventKind::Start,
        "die" => EventKind::Die,
        _ => {
            let status = action.strip_prefix("health_status:")?.trim();
            EventKind::Health(match status {
                "healthy" => DockerHealth::Healthy,
                "unhealthy" => DockerHealth::Unhealthy,
                "starting" => DockerHealth::Starting,
                _ => return None,
            })
        }
    };
    Some(ContainerEvent { id, kind })
}

/// What the bridge needs from Docker.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Checks that the daemon answers.
    async fn ping(&self) -> Result<(), DockerError>;

    /// Containers that have not exited (created, restarting, running, paused).
    async fn containers(&self) -> Result<Vec<Listed>, DockerError>;

    /// `docker inspect`; `None` when the container no longer exists (`--rm`).
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInspectResponse>, DockerError>;

    /// Subscribes to container `start`, `die` and `health_status` events, replaying
    /// the last second so an event racing the subscription is not lost (the bridge
    /// lists containers after subscribing; duplicates are harmless). The stream
    /// ends or errors when the connection to the daemon is lost.
    fn events(&self) -> BoxStream<'static, Result<ContainerEvent, DockerError>>;
}

/// The real daemon, through bollard.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    host: String,
}

impl DockerEngine {
    /// Connects to `host` (`unix://` or `tcp://`/`http://`) and negotiates the API
    /// version, which contacts the daemon.
    pub async fn connect(host: &str) -> Result<DockerEngine, DockerError> {
        let request = |source| DockerError::Request {
            action: "connect",
            host: host.to_string(),
            source,
        };
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if host.starts_with("unix://") {
            Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, version)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, version)
        } else {
            return Err(DockerError::UnsupportedHost(host.to_string()));
        }
        .map_err(request)?;
        let docker = docker.negotiate_version().await.map_err(request)?;
        Ok(DockerEngine {
            docker,
            host: host.to_string(),
        })
    }

    fn error(
        &self,
        action: &'static str,
    ) -> impl Fn(bollard::errors::Error) -> DockerError + use<> {
        let host = self.host.clone();
        move |source| DockerError::Request {
            action,
            host: host.clone(),
            source,
        }
    }
}

#[async_trait]
impl Engine for DockerEngine {
    async fn ping(&self) -> Result<(), DockerError> {
        self.docker
            .ping()
            .await
            .map(drop)
            .map_err(self.error("ping"))
    }

    async fn containers(&self) -> Result<Vec<Listed>, DockerError> {
        let filters =
            HashMap::from([("status", vec!["created", "restarting", "running", "paused"])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(self.error("list containers"))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let running = matches!(
                    c.state,
                    Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::PAUSED)
                );
                Some(Listed { id: c.id?, running })
            })
            .collect())
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInspectResponse>, DockerError> {
        match self.docker.inspect_container(id, None).await {
            Ok(c) => Ok(Some(c)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.error("inspect")(e)),
        }
    }

    fn events(&self) -> BoxStream<'static, Result<ContainerEvent, DockerError>> {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(Duration::from_secs(1))
            .as_secs();
        let filters = HashMap::from([
            ("type", vec!["container"]),
            // Docker matches `health_status` against `health_status: <state>` fuzzily.
            ("event", vec!["start", "die", "health_status"]),
        ]);
        let options = EventsOptionsBuilder::new()
            .since(&since.to_string())
            .filters(&filters)
            .build();
        let error = self.error("events");
        let docker = self.docker.clone();
        // bollard's stream borrows the client: a task owns both and forwards. It
        // starts polling (connecting) at once and stops when the receiver is dropped.
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(docker.events(Some(options)));
            while let Some(item) = stream.next().await {
                let out = match item {
                    Ok(message) => match parse_event(&message) {
                        Some(event) => Ok(event),
                        None => continue,
                    },
                    Err(e) => Err(error(e)),
                };
                let failed = out.is_err();
                if tx.send(out).await.is_err() || failed {
                    break;
                }
            }
        });
        futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{EventActor, EventMessageTypeEnum};

    use super::*;

    #[test]
    fn docker_host_keeps_upstream_default_unless_only_the_system_socket_exists() {
        let none = |_: &Path| false;
        let system_only = |p: &Path| p == Path::new(SYSTEM_SOCKET);
        let both = |_: &Path| true;
        assert_eq!(docker_host(None, &none).addr, UPSTREAM_DEFAULT_HOST);
        assert_eq!(docker_host(None, &both).addr, UPSTREAM_DEFAULT_HOST);
        let fallback = docker_host(Some(""), &system_only);
        assert_eq!(fallback.addr, "unix:///var/run/docker.sock");
        assert!(fallback.note.is_some());
        let env = docker_host(Some("tcp://10.0.0.1:2375"), &system_only);
        assert_eq!(env.addr, "tcp://10.0.0.1:2375");
        assert_eq!(env.note, None);
    }

    fn message(typ: EventMessageTypeEnum, action: &str, id: &str) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some(action.to_string()),
            actor: Some(EventActor {
                id: Some(id.to_string()),
                attributes: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn events_are_read_from_action_and_actor() {
        let c = EventMessageTypeEnum::CONTAINER;
        let event = |action| parse_event(&message(c, action, "abc")).map(|e| e.kind);
        assert_eq!(event("start"), Some(EventKind::Start));
        assert_eq!(event("die"), Some(EventKind::Die));
        assert_eq!(
            event("health_status: healthy"),
            Some(EventKind::Health(DockerHealth::Healthy))
        );
        assert_eq!(
            event("health_status: unhealthy"),
            Some(EventKind::Health(DockerHealth::Unhealthy))
        );
        assert_eq!(event("health_status: bogus"), None);
        assert_eq!(event("stop"), None);
        assert_eq!(event("exec_start: sh"), None);
        let network = message(EventMessageTypeEnum::NETWORK, "start", "abc");
        assert_eq!(parse_event(&network), None);
        assert_eq!(parse_event(&message(c, "start", "")), None);
    }
}
