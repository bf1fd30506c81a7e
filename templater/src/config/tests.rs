//! Config parsing, merging and defaults.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn hcl(text: &str) -> Result<ConfigLayer, ConfigError> {
    parse_text("test.hcl", text, Format::Hcl)
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/templater")
}

#[test]
fn every_example_parses() {
    let mut n = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        let layer = load_paths(std::slice::from_ref(&path)).unwrap_or_else(|e| panic!("{e}"));
        layer
            .finalize(&no_env)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn hcl_example_values() {
    let c = load_paths(&[examples().join("templater.hcl")])
        .unwrap()
        .finalize(&no_env)
        .unwrap();
    assert_eq!(c.templates.len(), 2);
    let t = &c.templates[0];
    assert_eq!(t.perms, Some(0o644), "HCL 0644 is octal");
    assert!(t.backup);
    assert_eq!(t.command, vec!["/usr/local/nginx/sbin/nginx -s reload"]);
    assert_eq!(t.command_timeout, Duration::from_secs(60));
    assert!(
        t.check_command
            .as_deref()
            .unwrap()
            .contains("{{.TempPath}}")
    );
    assert_eq!(c.templates[1].dialect, Dialect::Handlebars);
    assert_eq!(
        c.wait,
        Some(Wait {
            min: Duration::from_secs(2),
            max: Duration::from_secs(10)
        })
    );
    assert_eq!(c.log_level, "info");
}

#[test]
fn json_example_values() {
    let c = load_paths(&[examples().join("templater.json")])
        .unwrap()
        .finalize(&no_env)
        .unwrap();
    assert_eq!(c.templates[0].perms, Some(0o640));
    assert_eq!(c.templates[0].command.len(), 3);
    assert_eq!(c.kill_signal, Some(Signal::SIGTERM));
    let e = c.exec.unwrap();
    assert_eq!(e.reload_signal, Some(Signal::SIGHUP));
    assert_eq!(e.kill_signal, Signal::SIGINT);
    assert_eq!(e.kill_timeout, Duration::from_secs(10));
}

#[test]
fn defaults_are_upstreams() {
    let c = ConfigLayer::default().finalize(&no_env).unwrap();
    assert_eq!(c.consul.address, "127.0.0.1:8500");
    assert_eq!(c.max_stale, Duration::from_secs(2));
    assert_eq!(c.block_query_wait, Duration::from_secs(60));
    assert_eq!(c.kill_signal, Some(Signal::SIGINT));
    assert_eq!(c.reload_signal, Some(Signal::SIGHUP));
    assert_eq!(c.log_level, "warn");
    assert_eq!(c.consul.retry.backoff, Duration::from_millis(250));
    assert_eq!(c.consul.retry.max_backoff, Duration::from_secs(60));
    assert!(c.consul.retry.enabled);
    assert_eq!(
        c.consul.retry.attempts, None,
        "ours: retry forever by default"
    );
    assert!(c.exec.is_none());
    assert!(!c.once && !c.dry);
}

#[test]
fn env_defaults_and_precedence() {
    let env = |k: &str| match k {
        "CONSUL_HTTP_ADDR" => Some("10.0.0.1:8500".to_string()),
        "CONSUL_HTTP_TOKEN" => Some("http-token".to_string()),
        "CT_LOG" => Some("DEBUG".to_string()),
        _ => None,
    };
    let c = ConfigLayer::default().finalize(&env).unwrap();
    assert_eq!(c.consul.address, "10.0.0.1:8500");
    assert_eq!(c.consul.token, "http-token");
    assert_eq!(c.log_level, "debug");
    // A file beats the environment; the command line beats the file.
    let mut layer = hcl(r#"consul { address = "file:8500" }"#).unwrap();
    let c = layer.clone().finalize(&env).unwrap();
    assert_eq!(c.consul.address, "file:8500");
    layer.merge(ConfigLayer {
        consul: Some(ConsulLayer {
            address: Some("cli:8500".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(layer.finalize(&env).unwrap().consul.address, "cli:8500");
}

#[test]
fn later_files_win_and_templates_concatenate() {
    let mut a = hcl(r#"
        max_stale = "5s"
        log_level = "info"
        template {
          source = "a.ctmpl"
          destination = "a"
        }
        "#)
    .unwrap();
    let b = parse_text(
        "b.json",
        r#"{"max_stale": "0", "template": {"contents": "x", "destination": "b"}}"#,
        Format::Json,
    )
    .unwrap();
    a.merge(b);
    let c = a.finalize(&no_env).unwrap();
    assert_eq!(c.max_stale, Duration::ZERO);
    assert_eq!(c.log_level, "info");
    let dests: Vec<_> = c
        .templates
        .iter()
        .map(|t| t.destination.clone().unwrap())
        .collect();
    assert_eq!(dests, [PathBuf::from("a"), PathBuf::from("b")]);
}

#[test]
fn unknown_keys_are_rejected() {
    for text in [
        "nosuch = 1",
        "consul { adress = \"x\" }",
        "template {\n source = \"a\"\n destinaton = \"b\"\n}",
        "exec { comand = \"x\" }",
        "consul {\n retry {\n attempt = 1\n }\n}",
    ] {
        let e = hcl(text).unwrap_err();
        assert!(e.message.contains("unknown field"), "{text}: {e}");
    }
}

#[test]
fn wait_forms() {
    assert_eq!(
        Wait::parse("5s").unwrap(),
        Wait {
            min: Duration::from_secs(5),
            max: Duration::from_secs(20)
        }
    );
    assert_eq!(Wait::parse("1s:3s").unwrap().max, Duration::from_secs(3));
    assert!(Wait::parse("5s:1s").is_err());
    assert!(Wait::parse("-1s").is_err());
    let c = hcl("wait {\n min = \"1s\"\n}")
        .unwrap()
        .finalize(&no_env)
        .unwrap();
    assert_eq!(c.wait.unwrap().max, Duration::from_secs(4));
    let c = hcl("wait = \"200ms:1s\"")
        .unwrap()
        .finalize(&no_env)
        .unwrap();
    assert_eq!(c.wait.unwrap().min, Duration::from_millis(200));
}

#[test]
fn template_validation() {
    let e = hcl("template {\n destination = \"x\"\n}")
        .unwrap()
        .finalize(&no_env)
        .unwrap_err();
    assert!(e.message.contains("one of source or contents"), "{e}");
    let e = hcl("template {\n source = \"a\"\n contents = \"b\"\n destination = \"x\"\n}")
        .unwrap()
        .finalize(&no_env)
        .unwrap_err();
    assert!(e.message.contains("only one of"), "{e}");
    let e = hcl("template {\n source = \"a\"\n}")
        .unwrap()
        .finalize(&no_env)
        .unwrap_err();
    assert!(e.message.contains("missing destination"), "{e}");
    let e = hcl("template {\n source = \"a\"\n destination = \"b\"\n engine = \"jinja\"\n}")
        .unwrap()
        .finalize(&no_env)
        .unwrap_err();
    assert!(e.message.contains("engine"), "{e}");
    // The newer exec spelling of a template command.
    let c = hcl("template {\n source = \"a.hbs\"\n destination = \"b\"\n exec {\n command = [\"x\", \"y\"]\n timeout = \"5s\"\n }\n}")
        .unwrap()
        .finalize(&no_env)
        .unwrap();
    assert_eq!(c.templates[0].command, ["x", "y"]);
    assert_eq!(c.templates[0].command_timeout, Duration::from_secs(5));
    assert_eq!(c.templates[0].dialect, Dialect::Handlebars);
    assert!(c.templates[0].create_dest_dirs);
}

#[test]
fn global_check_command_applies_to_templates_without_one() {
    let mut layer = hcl(
        "template {\n contents = \"a\"\n destination = \"a\"\n}\ntemplate {\n contents = \"b\"\n destination = \"b\"\n check_command = \"own\"\n}",
    )
    .unwrap();
    layer.check_command = Some("nginx -t -c {{.TempPath}}".into());
    let c = layer.finalize(&no_env).unwrap();
    assert_eq!(
        c.templates[0].check_command.as_deref(),
        Some("nginx -t -c {{.TempPath}}")
    );
    assert_eq!(c.templates[1].check_command.as_deref(), Some("own"));
}

#[test]
fn durations_like_go() {
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("5x").is_err());
    assert!(parse_duration("-1s").is_err());
}

#[test]
fn signals_like_upstream() {
    assert_eq!(parse_signal("SIGHUP").unwrap(), Some(Signal::SIGHUP));
    assert_eq!(parse_signal("sigterm").unwrap(), Some(Signal::SIGTERM));
    assert_eq!(parse_signal("").unwrap(), None);
    assert_eq!(parse_signal("SIGNULL").unwrap(), None);
    assert!(parse_signal("HUP").is_err());
    assert!(parse_signal("SIGNOPE").is_err());
    let c = hcl("reload_signal = \"\"")
        .unwrap()
        .finalize(&no_env)
        .unwrap();
    assert_eq!(c.reload_signal, None);
}

#[test]
fn directories_are_read_in_lexical_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.hcl"), "log_level = \"debug\"").unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        r#"{"log_level": "info", "max_stale": "1s"}"#,
    )
    .unwrap();
    let c = load_paths(&[dir.path().to_path_buf()])
        .unwrap()
        .finalize(&no_env)
        .unwrap();
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.max_stale, Duration::from_secs(1));
}
