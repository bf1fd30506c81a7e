//! Services and checks registered through the HTTP API survive an agent
//! restart, as in Consul: they are written to `<data-dir>/local-state.json`
//! (atomically: temp file, fsync, rename) after every change, and loaded at
//! start-up. Definitions from config files are not persisted; they come from
//! the files again.

use std::io::Write;
use std::path::Path;

use registry_api::{CheckDefinition, HealthCheck, NodeService};
use serde::{Deserialize, Serialize};

use super::local::{LocalCheck, LocalService, LocalState};

const FILE: &str = "local-state.json";

/// What is persisted.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Persisted {
    /// API-registered services.
    pub services: Vec<NodeService>,
    /// API-registered checks with their definitions (status kept, as Consul keeps TTL state).
    pub checks: Vec<(HealthCheck, CheckDefinition)>,
}

/// The API-registered part of the local state.
pub fn snapshot(local: &LocalState) -> Persisted {
    Persisted {
        services: local
            .services
            .values()
            .filter(|s| !s.from_config)
            .map(|s| s.service.clone())
            .collect(),
        checks: local
            .checks
            .values()
            .filter(|c| !c.from_config)
            .map(|c| (c.check.clone(), c.definition.clone()))
            .collect(),
    }
}

/// Writes the persisted state atomically.
pub fn save(dir: &Path, state: &Persisted) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(state).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE))
}

/// Loads the persisted state; a missing file is an empty state.
pub fn load(dir: &Path) -> std::io::Result<Persisted> {
    match std::fs::read(dir.join(FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", dir.join(FILE).display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Persisted::default()),
        Err(e) => Err(e),
    }
}

/// Adds persisted entries to the local state; config-file definitions win on conflicts.
pub fn restore(local: &mut LocalState, state: Persisted) {
    for service in state.services {
        if local
            .services
            .get(&service.id)
            .is_some_and(|s| s.from_config)
        {
            continue;
        }
        local.services.insert(
            service.id.clone(),
            LocalService {
                service,
                from_config: false,
            },
        );
    }
    for (check, definition) in state.checks {
        if local
            .checks
            .get(&check.check_id)
            .is_some_and(|c| c.from_config)
        {
            continue;
        }
        if !check.service_id.is_empty() && !local.services.contains_key(&check.service_id) {
            continue;
        }
        local.checks.insert(
            check.check_id.clone(),
            LocalCheck::new(check, definition, false),
        );
    }
}
