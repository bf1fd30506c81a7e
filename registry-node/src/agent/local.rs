//! Services and checks owned by this agent, and the pure rules that turn
//! registration payloads into catalog entries (check IDs, names, defaults).
//! The agent syncs this state to the catalog (anti-entropy): the agent is
//! authoritative for its own node.

use std::collections::BTreeMap;

use registry_api::{AgentServiceRegistration, CRITICAL, CheckDefinition, HealthCheck, NodeService};
use tokio::time::Instant;

/// A service registered on this agent.
#[derive(Debug, Clone)]
pub struct LocalService {
    /// The instance as it goes to the catalog.
    pub service: NodeService,
    /// Defined in a config file (reload replaces these; the API cannot remove them for good).
    pub from_config: bool,
}

/// A check registered on this agent.
#[derive(Debug, Clone)]
pub struct LocalCheck {
    /// The check as it goes to the catalog (status and output are ours).
    pub check: HealthCheck,
    /// The definition it was registered with.
    pub definition: CheckDefinition,
    /// When a TTL check expires unless updated.
    pub ttl_deadline: Option<Instant>,
    /// Defined in a config file.
    pub from_config: bool,
    /// When the output was last pushed to the catalog (output-only changes are rate-limited).
    pub output_synced_at: Option<Instant>,
    /// The catalog has an older output than ours (pushed by the periodic sync).
    pub output_dirty: bool,
    /// Since when the check has been critical (for `deregister_critical_service_after`).
    pub critical_since: Option<Instant>,
}

impl LocalCheck {
    /// A newly registered check; TTL checks start their clock now.
    pub fn new(check: HealthCheck, definition: CheckDefinition, from_config: bool) -> Self {
        let now = Instant::now();
        LocalCheck {
            ttl_deadline: definition.ttl.map(|ttl| now + ttl.get()),
            critical_since: (check.status == CRITICAL).then_some(now),
            check,
            definition,
            from_config,
            output_synced_at: None,
            output_dirty: false,
        }
    }

    /// Records a new status and output, tracking since when it is critical.
    pub fn record(&mut self, status: &str, output: &str) {
        if status == CRITICAL {
            self.critical_since.get_or_insert_with(Instant::now);
        } else {
            self.critical_since = None;
        }
        self.check.status = status.to_string();
        self.check.output = output.to_string();
    }
}

/// Local services and checks, keyed by ID.
#[derive(Debug, Default)]
pub struct LocalState {
    /// Services by ID.
    pub services: BTreeMap<String, LocalService>,
    /// Checks by ID.
    pub checks: BTreeMap<String, LocalCheck>,
}

/// Validates a service registration and returns the instance.
pub fn service_from_registration(reg: &AgentServiceRegistration) -> Result<NodeService, String> {
    if reg.name.is_empty() {
        return Err("Missing service name".into());
    }
    if reg.meta.len() > 64 {
        return Err("Node metadata cannot contain more than 64 key/value pairs".into());
    }
    for key in reg.meta.keys() {
        if key.starts_with("consul-") {
            return Err(format!(
                "Key prefix 'consul-' is reserved for internal use: \"{key}\""
            ));
        }
    }
    if let Some(w) = reg.weights
        && w.passing < 1
    {
        return Err("Passing must be greater than 0".into());
    }
    Ok(reg.to_node_service())
}

/// The checks embedded in a service registration, with Consul's generated IDs
/// (`service:<id>`, or `service:<id>:<n>` when there are several) and names.
pub fn service_checks(
    reg: &AgentServiceRegistration,
    node: &str,
) -> Result<Vec<(HealthCheck, CheckDefinition)>, String> {
    let svc = reg.to_node_service();
    let defs = reg.all_checks();
    let many = defs.len() > 1;
    defs.into_iter()
        .enumerate()
        .map(|(i, mut def)| {
            if def.id.is_empty() {
                def.id = if many {
                    format!("service:{}:{}", svc.id, i + 1)
                } else {
                    format!("service:{}", svc.id)
                };
            }
            if def.name.is_empty() {
                def.name = format!("Service '{}' check", svc.service);
            }
            def.service_id = svc.id.clone();
            let check = check_from_definition(&def, node, Some(&svc))?;
            Ok((check, def))
        })
        .collect()
}

/// Validates a check definition and builds the catalog check.
pub fn check_from_definition(
    def: &CheckDefinition,
    node: &str,
    service: Option<&NodeService>,
) -> Result<HealthCheck, String> {
    if def.name.is_empty() {
        return Err("Missing check name".into());
    }
    def.validate()?;
    let id = if def.id.is_empty() {
        def.name.clone()
    } else {
        def.id.clone()
    };
    Ok(HealthCheck {
        node: node.to_string(),
        check_id: id,
        name: def.name.clone(),
        status: if def.status.is_empty() {
            CRITICAL.to_string()
        } else {
            def.status.clone()
        },
        notes: def.notes.clone(),
        output: String::new(),
        service_id: service.map(|s| s.id.clone()).unwrap_or_default(),
        service_name: service.map(|s| s.service.clone()).unwrap_or_default(),
        service_tags: service.map(|s| s.tags.clone()).unwrap_or_default(),
        check_type: def.check_type().to_string(),
        interval: def.interval.map(|d| d.to_string()).unwrap_or_default(),
        timeout: def.timeout.map(|d| d.to_string()).unwrap_or_default(),
        exposed_port: 0,
        definition: def.definition_value(),
        create_index: 0,
        modify_index: 0,
    })
}

#[cfg(test)]
mod tests {
    use registry_api::GoDuration;
    use std::time::Duration;

    use super::*;

    fn http_check() -> CheckDefinition {
        CheckDefinition {
            http: "http://127.0.0.1:8080/".into(),
            interval: Some(GoDuration(Duration::from_secs(5))),
            ..Default::default()
        }
    }

    #[test]
    fn embedded_check_ids_and_names() {
        let reg = AgentServiceRegistration {
            id: "jetty".into(),
            name: "web".into(),
            checks: vec![http_check()],
            ..Default::default()
        };
        let checks = service_checks(&reg, "n1").unwrap();
        assert_eq!(checks[0].0.check_id, "service:jetty");
        assert_eq!(checks[0].0.name, "Service 'web' check");
        assert_eq!(checks[0].0.status, CRITICAL);
        assert_eq!(checks[0].0.check_type, "http");
        assert_eq!(checks[0].0.interval, "5s");
        let two = AgentServiceRegistration {
            name: "web".into(),
            checks: vec![http_check(), http_check()],
            ..Default::default()
        };
        let ids: Vec<String> = service_checks(&two, "n1")
            .unwrap()
            .into_iter()
            .map(|c| c.0.check_id)
            .collect();
        assert_eq!(ids, vec!["service:web:1", "service:web:2"]);
    }

    #[test]
    fn invalid_definitions_are_rejected() {
        let no_interval = CheckDefinition {
            name: "x".into(),
            http: "http://a/".into(),
            ..Default::default()
        };
        assert!(
            check_from_definition(&no_interval, "n", None)
                .unwrap_err()
                .contains("Interval")
        );
        let nothing = CheckDefinition {
            name: "x".into(),
            ..Default::default()
        };
        assert!(check_from_definition(&nothing, "n", None).is_err());
        assert!(service_from_registration(&AgentServiceRegistration::default()).is_err());
    }
}
