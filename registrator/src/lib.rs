//! registrator: watches Docker and registers each published container port as a
//! service in a registry (gliderlabs/registrator's behaviour).
//!
//! # Layout
//! - [`service`]: the service model shared by the mapping and the backends.
//! - [`backend`]: one trait, one module per registry URI scheme.
//! - [`cli`]: flags and the registry URI, validated into a [`cli::Config`].
//! - [`mapping`]: pure `docker inspect` → [`service::Service`] rules (`SERVICE_*`).
//! - [`tags`]: the `-tags` Go template and the `\,`-escaped tag list syntax.
//! - [`checks`]: Consul registration payloads: checks from `SERVICE_CHECK_*`, meta filtering.
//! - [`docker`]: the Docker daemon: `DOCKER_HOST`, list, inspect, container events.
//! - [`bridge`]: the event loop: tracked containers → registered services, sync,
//!   cleanup, retries, reconnects; its decisions are pure ([`bridge::plan`]).
//! - [`run`](run()): the process: identity, registry ping, Docker connection, bridge.

pub mod backend;
pub mod bridge;
pub mod checks;
pub mod cli;
pub mod docker;
pub mod mapping;
pub mod service;
pub mod tags;

mod run;
pub use run::{RunError, run};
