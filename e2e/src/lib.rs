//! Harness for the docker-compose demo (`docker-compose.yml` at the workspace root):
//! three registry-node servers and a client agent, registrator on the Docker socket,
//! nginx supervised by templater, and `web` containers. The end-to-end suite
//! (`tests/demo`) and `demo-bench` drive the demo through it, from the outside, as a
//! user would: `docker-compose` (or `docker compose`), `docker`, and HTTP to nginx and
//! to the registry servers.
//!
//! Nothing is skipped: without a reachable Docker daemon, [`build_images`] fails with
//! the build script's message.
//!
//! # Layout
//!
//! * [`compose`]: [`Demo`], one compose project (unique name, free host ports): up,
//!   scale, its containers, the rendered nginx config, the Raft leader, logs, down, and
//!   what is left afterwards. Dropping it tears the project down (logs printed first
//!   when the thread is panicking).
//! * [`traffic`]: [`Traffic`], a steady request loop through nginx recording every
//!   answer (which container, or the error) with its send and completion times.

pub mod compose;
pub mod traffic;

use std::path::PathBuf;
use std::process::Command;

pub use compose::{Container, Demo};
pub use traffic::{Sample, Traffic};

/// The workspace root (holds `docker-compose.yml` and `docker/`).
pub fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Builds every image the compose file needs with `docker/build-demo-images.sh`
/// (debug binaries; quick when nothing changed). `Err` carries the script's output:
/// no Docker, no debootstrap, a failed cargo build.
pub fn build_images() -> Result<(), String> {
    let script = workspace().join("docker/build-demo-images.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).current_dir(workspace());
    // Inside `cargo test`, use the cargo that runs us, without the variables it set for
    // this test (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...): build scripts (ring's) rerun
    // when those change, so the nested build would recompile what a build from a shell
    // compiled, and the next build from a shell would recompile it again.
    if let Some(cargo) = std::env::var_os("CARGO") {
        cmd.env("CARGO", cargo);
    }
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if is_package_var(&name) {
            cmd.env_remove(&*name);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        eprint!("{stderr}");
        Ok(())
    } else {
        Err(format!(
            "{} failed ({}); the demo needs a reachable Docker daemon (it never skips):\n{}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            stderr
        ))
    }
}

/// The variables cargo sets for one package's build script, test or binary (not
/// the user's CARGO_HOME, CARGO_TARGET_DIR, CARGO_BUILD_*, ...).
fn is_package_var(name: &str) -> bool {
    name == "OUT_DIR"
        || name == "CARGO_CRATE_NAME"
        || name == "CARGO_BIN_NAME"
        || name == "CARGO_PRIMARY_PACKAGE"
        || name == "CARGO_TARGET_TMPDIR"
        || name == "CARGO_RUSTC_CURRENT_DIR"
        || [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_EXE_",
            "CARGO_CFG_",
        ]
        .iter()
        .any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::is_package_var;

    #[test]
    fn package_vars_are_told_apart_from_the_users() {
        for var in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "OUT_DIR",
            "CARGO_BIN_EXE_x",
        ] {
            assert!(is_package_var(var), "{var}");
        }
        for var in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_JOBS",
            "PATH",
        ] {
            assert!(!is_package_var(var), "{var}");
        }
    }
}
