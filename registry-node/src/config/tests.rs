//! Config loading tests: every file in `examples/` parses, unknown keys are
//! rejected with their file, and sources layer as Consul layers them.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command, goflags};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Every file under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Agent config examples: every `.json`/`.hcl` file except other binaries'
/// configs, which their own crates' tests parse (systemd units are not configs).
fn agent_examples() -> Vec<PathBuf> {
    files_under(&examples_dir())
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            let config = matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "hcl"));
            config && !name.starts_with("templater") && !name.starts_with("registrator")
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Parses an agent command line the way `main` does.
fn agent_args(args: &[&str]) -> AgentArgs {
    let argv = std::iter::once("registry-node")
        .chain(std::iter::once("agent"))
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect();
    match Cli::try_parse_from(goflags::normalize(argv))
        .unwrap()
        .command
    {
        Command::Agent(args) => *args,
        other => panic!("not an agent command: {other:?}"),
    }
}

fn load_err(args: &[&str]) -> String {
    load(&agent_args(args)).unwrap_err().to_string()
}

fn parse_json(text: &str) -> Result<Config, ConfigError> {
    Config::parse_str("test.json", text, ConfigFormat::Json)
}

#[test]
fn every_example_parses_and_validates() {
    let files = agent_examples();
    assert!(files.len() >= 5, "examples missing: {files:?}");
    for file in files {
        let result = check_paths(std::slice::from_ref(&file), None);
        assert!(
            result.is_ok(),
            "{}: {}",
            file.display(),
            result.unwrap_err()
        );
    }
}

#[test]
fn every_json_example_rejects_an_unknown_key() {
    for file in agent_examples()
        .into_iter()
        .filter(|p| p.extension().unwrap() == "json")
    {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value
            .as_object_mut()
            .unwrap()
            .insert("no_such_key".into(), true.into());
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "bad.json", &value.to_string());
        let err = check_paths(std::slice::from_ref(&path), None).unwrap_err();
        assert!(err.is_unknown_key(), "{}: {err}", file.display());
        assert_eq!(
            err.to_string(),
            format!(
                "Error parsing {}: unknown field \"no_such_key\"",
                path.display()
            )
        );
    }
}

#[test]
fn server_example_values() {
    let file = examples_dir().join("server.json");
    let (config, _) = check_paths(&[file], None).unwrap();
    let Config {
        server,
        bootstrap_expect,
        retry_join,
        dns_config,
        limits,
        ..
    } = &config;
    assert!(*server);
    assert_eq!(*bootstrap_expect, 3);
    assert_eq!(retry_join.len(), 2);
    assert_eq!(dns_config.service_ttl["web"].get(), Duration::from_secs(30));
    assert_eq!(dns_config.soa.min_ttl, 60);
    assert_eq!(dns_config.soa.expire, 86400);
    assert_eq!(limits.kv_max_value_size, 524288);
    assert_eq!(limits.http_max_conns_per_client, 400);
    assert_eq!(config.retry_interval.get(), Duration::from_secs(15));

    let hcl = examples_dir().join("server.hcl");
    let (config, _) = check_paths(&[hcl], None).unwrap();
    assert_eq!(config.ports.serf_wan, 8302);
    assert_eq!(config.addresses.http, "0.0.0.0");
    assert!(config.ui_enabled());
    assert_eq!(config.acl.down_policy, "extend-cache");
}

#[test]
fn seed_web3_service_definition_loads() {
    let (config, _) = check_paths(&[examples_dir().join("services")], None).unwrap();
    // Lexical order: redis.hcl, then web3.json.
    let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["redis", "web3"]);
    let web3 = &config.services[1];
    assert_eq!(web3.tags, ["master"]);
    assert_eq!(web3.address, "127.0.0.1");
    assert_eq!(web3.port, 10000);
    let checks = web3.all_checks();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].http, "http://localhost:10000/health");
    assert_eq!(checks[0].interval.unwrap().get(), Duration::from_secs(10));
    assert_eq!(config.services[0].all_checks()[0].id, "redis-tcp");
}

#[test]
fn hcl_repeated_blocks_become_lists() {
    let (config, _) = check_paths(&[examples_dir().join("dev.hcl")], None).unwrap();
    assert_eq!(config.services.len(), 2);
    let web = &config.services[0];
    assert_eq!(web.name, "web");
    assert_eq!(web.all_checks().len(), 2);
    assert_eq!(web.all_checks()[1].tcp, "127.0.0.1:8080");
    assert_eq!(config.services[1].meta["team"], "platform");
    assert_eq!(config.checks.len(), 1);
    assert_eq!(config.checks[0].ttl.unwrap().get(), Duration::from_secs(60));
    assert_eq!(config.watches.len(), 1);
}

#[test]
fn client_example_services_and_node_check() {
    let (config, _) = check_paths(&[examples_dir().join("client.json")], None).unwrap();
    assert!(!config.server);
    assert_eq!(config.services.len(), 2);
    assert_eq!(config.services[0].effective_id(), "web3-1");
    assert_eq!(config.services[1].all_checks().len(), 2);
    assert_eq!(config.checks[0].args[0], "/usr/local/bin/check_disk");
    assert!(config.leave_on_terminate());
    assert!(!config.skip_leave_on_interrupt());
}

#[test]
fn unknown_keys_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "a.json",
            r#"{"datacenterx": "dc1"}"#,
            "unknown field \"datacenterx\"",
        ),
        (
            "b.json",
            r#"{"ports": {"htp": 1}}"#,
            "unknown field \"ports.htp\"",
        ),
        (
            "c.json",
            r#"{"dns_config": {"soa": {"ttl": 1}}}"#,
            "unknown field \"dns_config.soa.ttl\"",
        ),
        (
            "d.hcl",
            "ports {\n  htp = 1\n}\n",
            "unknown field \"ports.htp\"",
        ),
        (
            "e.json",
            r#"{"service": {"name": "web", "portx": 80}}"#,
            "service \"web\": unknown field \"portx\"",
        ),
        (
            "f.hcl",
            "service {\n name = \"web\"\n check {\n  htp = \"x\"\n }\n}\n",
            "service \"web\": checks[0]: unknown field \"htp\"",
        ),
        (
            "g.json",
            r#"{"check": {"ttl": "10s", "bogus": 1}}"#,
            "checks[0]: unknown field \"bogus\"",
        ),
    ];
    for (name, text, expected) in cases {
        let path = write(dir.path(), name, text);
        let err = check_paths(std::slice::from_ref(&path), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("Error parsing {}: {expected}", path.display()),
            "{name}"
        );
    }
}

#[test]
fn bad_values_are_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "d.json", r#"{"retry_interval": "5x"}"#);
    let err = check_paths(std::slice::from_ref(&path), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "Error parsing {}: retry_interval: time: invalid duration \"5x\"",
            path.display()
        )
    );

    let path = write(dir.path(), "p.json", r#"{"ports": {"http": "abc"}}"#);
    let err = check_paths(std::slice::from_ref(&path), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ports.http: invalid type: string \"abc\""),
        "{err}"
    );

    let path = write(dir.path(), "q.json", r#"{"ports": {"http": 70000}}"#);
    let err = check_paths(&[path], None).unwrap_err().to_string();
    assert_eq!(err, "ports.http: invalid port 70000 (must be -1 to 65535)");

    let path = write(
        dir.path(),
        "s.json",
        r#"{"service": {"name": "web", "port": 99999}}"#,
    );
    let err = check_paths(&[path], None).unwrap_err().to_string();
    assert!(err.contains("service \"web\":"), "{err}");

    let path = write(
        dir.path(),
        "c.json",
        r#"{"service": {"name": "web", "check": {"http": "http://x/"}}}"#,
    );
    let err = check_paths(&[path], None).unwrap_err().to_string();
    assert!(
        err.ends_with("service \"web\": checks[0]: Interval must be specified for http checks"),
        "{err}"
    );

    let path = write(dir.path(), "n.json", r#"{"service": {"port": 1}}"#);
    let err = check_paths(&[path], None).unwrap_err().to_string();
    assert!(err.ends_with("services[0]: missing service name"), "{err}");

    let path = write(dir.path(), "syntax.json", r#"{"server": true,"#);
    let err = check_paths(std::slice::from_ref(&path), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("Error parsing {}: ", path.display())),
        "{err}"
    );

    let missing = dir.path().join("missing.json");
    let err = check_paths(std::slice::from_ref(&missing), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("Error reading {}", missing.display())),
        "{err}"
    );
}

#[test]
fn flags_override_files_and_lists_append() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "a.json",
        r#"{"datacenter": "dc2", "node_name": "from-file", "data_dir": "/d",
            "retry_join": ["10.0.0.1"], "node_meta": {"a": "1", "b": "2"},
            "server": true, "ports": {"http": 8000, "dns": 8601}}"#,
    );
    let file = file.to_str().unwrap();
    let config = load(&agent_args(&[
        "-config-file",
        file,
        "-datacenter=DC3",
        "-node",
        "from-flag",
        "-retry-join=10.0.0.2",
        "-node-meta=b:3",
        "-server=false",
        "-http-port=9000",
    ]))
    .unwrap();
    assert_eq!(config.datacenter, "dc3", "flag wins, lower-cased");
    assert_eq!(config.node_name, "from-flag");
    assert_eq!(config.retry_join, ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(config.node_meta["a"], "1");
    assert_eq!(config.node_meta["b"], "3");
    assert!(!config.server, "-server=false overrides the file");
    assert_eq!(config.ports.http, 9000);
    assert_eq!(config.ports.dns, 8601, "untouched by flags");

    // Flags not given leave the file's values alone.
    let config = load(&agent_args(&["-config-file", file])).unwrap();
    assert!(config.server);
    assert_eq!(config.node_name, "from-file");
}

#[test]
fn config_dir_loads_json_and_hcl_in_lexical_order() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "b.json",
        r#"{"node_name": "b", "retry_join": ["b"]}"#,
    );
    write(
        dir.path(),
        "a.json",
        r#"{"node_name": "a", "retry_join": ["a"], "data_dir": "/d"}"#,
    );
    write(
        dir.path(),
        "c.hcl",
        "node_name = \"c\"\nretry_join = [\"c\"]\n",
    );
    write(dir.path(), "z.txt", "not a config file");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    write(
        &dir.path().join("sub"),
        "x.json",
        r#"{"node_name": "nested"}"#,
    );
    let config = load(&agent_args(&["-config-dir", dir.path().to_str().unwrap()])).unwrap();
    assert_eq!(config.node_name, "c");
    assert_eq!(config.retry_join, ["a", "b", "c"]);
}

#[test]
fn services_from_several_files_accumulate() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "1.json",
        r#"{"service": {"name": "one"}, "data_dir": "/d"}"#,
    );
    write(dir.path(), "2.json", r#"{"service": {"name": "two"}}"#);
    write(
        dir.path(),
        "3.hcl",
        "services = [{ name = \"three\" }, { name = \"four\" }]\n",
    );
    let config = load(&agent_args(&["-config-dir", dir.path().to_str().unwrap()])).unwrap();
    let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["one", "two", "three", "four"]);
}

#[test]
fn hcl_fragments_come_after_files_and_before_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "a.json",
        r#"{"node_name": "file", "datacenter": "file", "data_dir": "/d"}"#,
    );
    let config = load(&agent_args(&[
        "-config-file",
        file.to_str().unwrap(),
        "-hcl",
        "node_name = \"hcl\"",
        "-hcl=datacenter = \"hcl\"",
        "-datacenter=flag",
    ]))
    .unwrap();
    assert_eq!(config.node_name, "hcl");
    assert_eq!(config.datacenter, "flag");

    let err = load_err(&["-data-dir=/d", "-hcl", "bogus = 1"]);
    assert_eq!(err, "Error parsing -hcl #1: unknown field \"bogus\"");
}

#[test]
fn dev_mode_is_an_in_memory_server_with_ui() {
    let config = load(&agent_args(&["-dev"])).unwrap();
    assert!(config.dev_mode && config.in_memory());
    assert!(config.server && config.bootstrap);
    assert!(config.ui_enabled());
    assert_eq!(config.bind_addr, "127.0.0.1");
    assert_eq!(config.client_addr, "127.0.0.1");
    assert_eq!(config.data_dir(), None);
    let resolved = config.resolve().unwrap();
    assert_eq!(resolved.advertise_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(
        resolved.http,
        [ListenAddr::Tcp("127.0.0.1:8500".parse().unwrap())]
    );

    // Files and flags still override dev defaults.
    let config = load(&agent_args(&["-dev", "-client=0.0.0.0", "-log-level=warn"])).unwrap();
    assert_eq!(config.client_addr, "0.0.0.0");
    assert_eq!(config.log_level, "warn");
}

#[test]
fn seed_command_lines_parse() {
    // From the seed documents (Consul 0.x/1.x usage).
    let config = load(&agent_args(&[
        "-server",
        "-bootstrap-expect",
        "2",
        "-data-dir",
        "/tmp/consul",
        "-node=n1",
        "-bind=10.10.105.71",
        "-dc=dc1",
    ]))
    .unwrap();
    assert!(config.server);
    assert_eq!(config.bootstrap_expect, 2);
    assert_eq!(config.node_name, "n1");
    assert_eq!(config.datacenter, "dc1");
    assert_eq!(config.data_dir(), Some(Path::new("/tmp/consul")));
    let resolved = config.resolve().unwrap();
    assert_eq!(
        resolved.advertise_ip,
        "10.10.105.71".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        resolved.serf_lan,
        "10.10.105.71:8301".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        resolved.server_rpc,
        Some("10.10.105.71:8300".parse().unwrap())
    );

    let args = agent_args(&[
        "-server",
        "-bootstrap",
        "-ui",
        "-data-dir=/var/lib/consul-data",
        "-bind=10.11.97.181",
        "-client=0.0.0.0",
        "-node=server01",
        "-join=172.17.0.2",
        "-disable-host-node-id",
        "-rejoin",
    ]);
    let config = load(&args).unwrap();
    assert!(config.bootstrap && config.ui_enabled() && config.rejoin_after_leave);
    let resolved = config.resolve().unwrap();
    assert_eq!(resolved.lan_join, ["172.17.0.2"]);
    assert_eq!(
        resolved.http,
        [ListenAddr::Tcp("0.0.0.0:8500".parse().unwrap())]
    );

    // -bootstrap-expect=1 is bootstrap mode, with a warning.
    let (config, warnings) = load_with_warnings(&agent_args(&[
        "-server",
        "-bootstrap-expect=1",
        "-data-dir=/d",
    ]))
    .unwrap();
    assert!(config.bootstrap);
    assert_eq!(config.bootstrap_expect, 0);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("same as Bootstrap mode"))
    );
}

#[test]
fn validation_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["-server"], "data_dir cannot be empty"),
        (
            &[
                "-data-dir=/d",
                "-server",
                "-bootstrap",
                "-bootstrap-expect=3",
            ],
            "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive",
        ),
        (
            &["-data-dir=/d", "-bootstrap-expect=3"],
            "'bootstrap_expect > 0' requires 'server = true'",
        ),
        (
            &["-data-dir=/d", "-bootstrap"],
            "'bootstrap = true' requires 'server = true'",
        ),
        (
            &["-dev", "-bootstrap=false", "-bootstrap-expect=3"],
            "not allowed in dev mode",
        ),
        (
            &["-data-dir=/d", "-node=my node"],
            "must not contain whitespace",
        ),
        (
            &["-data-dir=/d", "-bind=eth0"],
            "bind_addr: \"eth0\" is not a valid IP address",
        ),
        (
            &["-data-dir=/d", "-client=127.0.0.1 nope"],
            "client_addr: \"nope\" is not a valid IP",
        ),
        (
            &["-data-dir=/d", "-advertise=0.0.0.0"],
            "Advertise address cannot be 0.0.0.0",
        ),
        (
            &["-data-dir=/d", "-node-id=not-a-uuid"],
            "is not a valid UUID",
        ),
        (
            &["-data-dir=/d", "-encrypt=short"],
            "encrypt has invalid key",
        ),
        (
            &["-data-dir=/d", "-datacenter=d c"],
            "can only contain lowercase alphanumeric",
        ),
        (
            &["-data-dir=/d", "-raft-protocol=2"],
            "raft_protocol version 2 is not supported",
        ),
        (
            &["-data-dir=/d", "-node-meta=consul-x:1"],
            "reserved prefix",
        ),
        (
            &["-data-dir=/d", "-ui", "-ui-dir=./dist"],
            "Both the ui_config.enabled and ui_config.dir",
        ),
    ];
    for (args, expected) in cases {
        let err = load_err(args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn resolve_client_addresses_and_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "a.hcl",
        r#"
data_dir    = "/d"
bind_addr   = "10.1.2.3"
client_addr = "127.0.0.1 ::1"
addresses {
  http = "unix:///run/registry/http.sock"
}
ports {
  https = 8501
  dns   = -1
}
"#,
    );
    let config = load(&agent_args(&[
        "-config-file",
        file.to_str().unwrap(),
        "-ui-dir=./dist",
    ]))
    .unwrap();
    let resolved = config.resolve().unwrap();
    assert_eq!(resolved.client_ips.len(), 2);
    assert_eq!(
        resolved.http,
        [ListenAddr::Unix(PathBuf::from("/run/registry/http.sock"))]
    );
    assert_eq!(
        resolved.https,
        [
            ListenAddr::Tcp("127.0.0.1:8501".parse().unwrap()),
            ListenAddr::Tcp("[::1]:8501".parse().unwrap())
        ]
    );
    assert!(resolved.dns.is_empty());
    assert_eq!(resolved.server_rpc, None, "clients run no server RPC");
    assert_eq!(resolved.serf_wan, None);
    assert!(resolved.ui_enabled);
    assert_eq!(resolved.ui_dir, Some(PathBuf::from("./dist")));
    assert!(!resolved.node_name.is_empty());
}

#[test]
fn for_test_is_valid_and_uses_os_ports() {
    let config = Config::for_test();
    config.validate().unwrap();
    let resolved = config.resolve().unwrap();
    assert_eq!(
        resolved.http,
        [ListenAddr::Tcp("127.0.0.1:0".parse().unwrap())]
    );
    assert_eq!(resolved.dns, ["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
    assert_eq!(
        resolved.serf_lan,
        "127.0.0.1:0".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(resolved.server_rpc, Some("127.0.0.1:0".parse().unwrap()));
    assert!(resolved.https.is_empty());
}

#[test]
fn defaults_match_consul() {
    let config = Config::default();
    assert_eq!(config.datacenter, "dc1");
    assert_eq!(config.domain, "consul.");
    assert_eq!(config.ports.http, 8500);
    assert_eq!(config.ports.https, -1);
    assert_eq!(config.ports.dns, 8600);
    assert_eq!(config.ports.server, 8300);
    assert_eq!(config.ports.serf_lan, 8301);
    assert_eq!(config.ports.serf_wan, 8302);
    assert_eq!(config.client_addr, "127.0.0.1");
    assert_eq!(config.bind_addr, "0.0.0.0");
    assert_eq!(config.retry_interval.get(), Duration::from_secs(30));
    assert_eq!(config.default_query_time.get(), Duration::from_secs(300));
    assert_eq!(config.max_query_time.get(), Duration::from_secs(600));
    assert_eq!(config.session_ttl_min.get(), Duration::from_secs(10));
    assert_eq!(config.check_update_interval.get(), Duration::from_secs(300));
    assert_eq!(
        config.reconnect_timeout.get(),
        Duration::from_secs(72 * 3600)
    );
    assert_eq!(config.raft_protocol, 3);
    assert_eq!(config.performance.raft_multiplier, 5);
    assert_eq!(config.limits.kv_max_value_size, 524288);
    assert_eq!(config.limits.txn_max_req_len, 524288);
    assert!(config.disable_remote_exec);
    assert!(config.disable_host_node_id);
    assert!(config.dns_config.allow_stale);
    assert_eq!(
        config.dns_config.max_stale.get(),
        Duration::from_secs(87600 * 3600)
    );
    assert_eq!(config.dns_config.udp_answer_limit, 3);
    assert_eq!(config.dns_config.soa.refresh, 3600);
    assert_eq!(config.ui_config.content_path, "/ui/");
    assert_eq!(
        config.gossip_lan.lan().probe_interval,
        Duration::from_secs(1)
    );
    assert_eq!(config.gossip_wan.wan().suspicion_mult, 6);
    assert_eq!(config.acl.default_policy, "allow");
}

#[test]
fn config_format_forces_the_parser() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "agent.conf",
        "data_dir = \"/d\"\nnode_name = \"x\"\n",
    );
    let (_, warnings) = load_with_warnings(&agent_args(&[
        "-data-dir=/d",
        "-config-file",
        file.to_str().unwrap(),
    ]))
    .unwrap();
    assert!(
        warnings.iter().any(|w| w.contains("skipping file")),
        "{warnings:?}"
    );

    let config = load(&agent_args(&[
        "-config-format=hcl",
        "-config-file",
        file.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(config.node_name, "x");
}

#[test]
fn parse_str_and_service_definitions() {
    let config =
        parse_json(r#"{"service": {"Name": "web", "Port": 80, "EnableTagOverride": true}}"#)
            .unwrap();
    assert!(config.services[0].enable_tag_override);
    let service = parse_service_definition(serde_json::json!({"name": "x", "port": 1})).unwrap();
    assert_eq!(service.port, 1);
    let err = parse_service_definition(serde_json::json!({"name": "x", "bogus": 1})).unwrap_err();
    assert_eq!(err, "service \"x\": unknown field \"bogus\"");
}

#[test]
fn config_serializes_and_reads_back() {
    // `/v1/agent/self` shows the configuration; what it prints must load again.
    let (config, _) = check_paths(&[examples_dir().join("client.json")], None).unwrap();
    let value = serde_json::to_value(&config).unwrap();
    assert_eq!(value["ports"]["http"], 8500);
    assert_eq!(value["retry_interval"], "30s");
    let source = Source::from_value("round trip", value).unwrap();
    let again = Config::from_sources(vec![source], false).unwrap();
    assert_eq!(again, config);
}
