use super::*;

fn run(args: &[&str]) -> Result<Config, UsageError> {
    let argv = std::iter::once("registrator")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect();
    parse(argv)
}

fn ok(args: &[&str]) -> Config {
    run(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The message of an `Invalid` error, asserting exit code 2.
fn invalid(args: &[&str]) -> (String, bool) {
    match run(args) {
        Err(e @ UsageError::Invalid { .. }) => {
            assert_eq!(e.exit_code(), 2);
            let UsageError::Invalid {
                message,
                show_usage,
            } = e
            else {
                unreachable!()
            };
            (message, show_usage)
        }
        other => panic!("{args:?}: expected a usage error, got {other:?}"),
    }
}

#[test]
fn defaults() {
    let c = ok(&["consul://"]);
    assert_eq!(split(&c.registry), ("consul", "", ""));
    assert_eq!(c.registry.raw, "consul://");
    assert_eq!(c.host_ip, None);
    assert!(!c.internal && !c.explicit && !c.cleanup);
    assert_eq!(c.use_ip_from_label, None);
    assert!(c.tags.is_empty());
    assert_eq!(c.ttl, Duration::ZERO);
    assert_eq!(c.ttl_refresh, None);
    assert_eq!(c.resync, None);
    assert_eq!(c.deregister, Deregister::Always);
    assert_eq!(c.retry_attempts, RetryAttempts::Extra(0));
    assert_eq!(c.retry_interval, Duration::from_millis(2000));
}

#[test]
fn every_flag_go_style() {
    let c = ok(&[
        "-ip",
        "10.0.0.5",
        "-internal",
        "-explicit",
        "-useIpFromLabel=com.example.ip",
        "-tags",
        "a,b\\,c",
        "-ttl=30",
        "-ttl-refresh",
        "10",
        "-resync=60",
        "-deregister=on-success",
        "-retry-attempts",
        "-1",
        "-retry-interval=500",
        "-cleanup",
        "consul://10.0.0.1:8500",
    ]);
    assert_eq!(c.host_ip.as_deref(), Some("10.0.0.5"));
    assert!(c.internal && c.explicit && c.cleanup);
    assert_eq!(c.use_ip_from_label.as_deref(), Some("com.example.ip"));
    assert_eq!(c.tags.source(), "a,b\\,c");
    assert_eq!(c.ttl, Duration::from_secs(30));
    assert_eq!(c.ttl_refresh, Some(Duration::from_secs(10)));
    assert_eq!(c.resync, Some(Duration::from_secs(60)));
    assert_eq!(c.deregister, Deregister::OnSuccess);
    assert_eq!(c.retry_attempts, RetryAttempts::Forever);
    assert_eq!(c.retry_interval, Duration::from_millis(500));
    assert_eq!(split(&c.registry), ("consul", "10.0.0.1:8500", ""));
}

/// Scheme, host and path of a parsed registry URI.
fn split(uri: &RegistryUri) -> (&str, &str, &str) {
    (&uri.scheme, &uri.host, &uri.path)
}

#[test]
fn double_dash_forms_work_too() {
    let c = ok(&[
        "--internal",
        "--ip=1.2.3.4",
        "--retry-attempts=3",
        "etcd://",
    ]);
    assert!(c.internal);
    assert_eq!(c.host_ip.as_deref(), Some("1.2.3.4"));
    assert_eq!(c.retry_attempts, RetryAttempts::Extra(3));
}

#[test]
fn booleans_take_values_only_with_equals() {
    assert!(!ok(&["-internal=false", "consul://"]).internal);
    assert!(ok(&["-internal=1", "consul://"]).internal);
    assert!(ok(&["-cleanup=T", "consul://"]).cleanup);
    assert!(!ok(&["-explicit=F", "consul://"]).explicit);
    // Go: `-internal false` sets the flag and makes `false` the URI.
    let (message, _) = invalid(&["-internal", "false"]);
    assert_eq!(message, "unrecognized adapter: false");
    let (message, usage) = invalid(&["-internal=maybe", "consul://"]);
    assert!(message.contains("-internal"), "{message}");
    assert!(usage);
}

#[test]
fn go_integer_syntax() {
    assert_eq!(
        ok(&["-retry-interval=0x10", "consul://"]).retry_interval,
        Duration::from_millis(16)
    );
    assert_eq!(
        ok(&["-resync=010", "consul://"]).resync,
        Some(Duration::from_secs(8))
    );
    assert_eq!(
        ok(&["-retry-interval=1_000", "consul://"]).retry_interval,
        Duration::from_secs(1)
    );
    let (message, usage) = invalid(&["-ttl=abc", "consul://"]);
    assert!(message.contains("-ttl"), "{message}");
    assert!(usage);
}

#[test]
fn tags_value_may_start_with_a_dash() {
    assert_eq!(ok(&["-tags", "-x", "consul://"]).tags.source(), "-x");
}

#[test]
fn missing_uri() {
    let (message, usage) = invalid(&[]);
    assert_eq!(message, "Missing required argument for registry URI.");
    assert!(usage);
    let (message, _) = invalid(&["-internal"]);
    assert_eq!(message, "Missing required argument for registry URI.");
    let rendered = run(&[]).unwrap_err().to_string();
    assert!(rendered.contains("Usage of registrator:"), "{rendered}");
}

#[test]
fn options_after_the_uri_are_extra_arguments() {
    let (message, usage) = invalid(&["consul://", "-internal", "x"]);
    assert_eq!(
        message,
        "Extra unparsed arguments:\n  -internal x\nOptions should come before the registry URI argument."
    );
    assert!(usage);
    let (message, _) = invalid(&["-ip=1.2.3.4", "consul://a", "consul://b"]);
    assert!(message.starts_with("Extra unparsed arguments:\n  consul://b\n"));
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let (message, usage) = invalid(&["-nope", "consul://"]);
    assert_eq!(message, "error: unknown flag: -nope");
    assert!(usage);
}

#[test]
fn version_and_help() {
    assert_eq!(run(&["--version"]), Err(UsageError::Version));
    assert_eq!(run(&["-version"]), Err(UsageError::Version));
    assert_eq!(run(&["-h"]), Err(UsageError::Help));
    assert_eq!(run(&["-help"]), Err(UsageError::Help));
    assert_eq!(UsageError::Version.exit_code(), 0);
    assert_eq!(UsageError::Help.exit_code(), 0);
    assert!(
        UsageError::Help
            .to_string()
            .contains("-useIpFromLabel string")
    );
}

#[test]
fn ttl_rules() {
    let together = "-ttl and -ttl-refresh must be specified together or not at all";
    assert_eq!(invalid(&["-ttl=30", "etcd://"]).0, together);
    assert_eq!(invalid(&["-ttl-refresh=10", "etcd://"]).0, together);
    let greater = "-ttl must be greater than -ttl-refresh";
    assert_eq!(
        invalid(&["-ttl=10", "-ttl-refresh=10", "etcd://"]).0,
        greater
    );
    assert_eq!(
        invalid(&["-ttl=5", "-ttl-refresh=10", "etcd://"]).0,
        greater
    );
    assert!(!invalid(&["-ttl=-5", "etcd://"]).1);
    let c = ok(&["-ttl=11", "-ttl-refresh=10", "etcd://"]);
    assert_eq!(c.ttl, Duration::from_secs(11));
}

#[test]
fn retry_rules() {
    let message = "-retry-interval must be greater than 0";
    assert_eq!(invalid(&["-retry-interval=0", "consul://"]).0, message);
    assert_eq!(invalid(&["-retry-interval=-5", "consul://"]).0, message);
    assert!(
        invalid(&["-retry-attempts=-2", "consul://"])
            .0
            .contains("-1")
    );
    let attempts = ok(&["-retry-attempts=2", "consul://"]).retry_attempts;
    assert!(attempts.allows(0) && attempts.allows(2) && !attempts.allows(3));
    assert!(RetryAttempts::Forever.allows(u32::MAX));
}

#[test]
fn deregister_values() {
    assert_eq!(
        invalid(&["-deregister=never", "consul://"]).0,
        "-deregister must be \"always\" or \"on-success\""
    );
    assert_eq!(
        ok(&["-deregister", "always", "consul://"]).deregister,
        Deregister::Always
    );
}

#[test]
fn checks_run_in_upstream_order() {
    // ttl before retry-interval before deregister before the URI.
    let (message, _) = invalid(&["-ttl=1", "-retry-interval=0", "-deregister=x", "nope://"]);
    assert!(message.starts_with("-ttl"), "{message}");
    let (message, _) = invalid(&["-retry-interval=0", "-deregister=x", "nope://"]);
    assert!(message.starts_with("-retry-interval"), "{message}");
    let (message, _) = invalid(&["-deregister=x", "nope://"]);
    assert!(message.starts_with("-deregister"), "{message}");
}

#[test]
fn bad_tags_template_stops_start_up() {
    let (message, _) = invalid(&["-tags={{.ID", "consul://"]);
    assert!(message.contains("template parsing failed"), "{message}");
}

#[test]
fn registry_uris() {
    // The parsing itself is `backend::RegistryUri`'s (tested there): the command line
    // keeps the parsed value and the argument as typed.
    for (text, want) in [
        ("consul://", ("consul", "", "")),
        (
            "consul://consul.service:8500/ignored",
            ("consul", "consul.service:8500", "/ignored"),
        ),
        (
            "consulkv-unix:///tmp/consul.sock:/a/b",
            ("consulkv-unix", "", "/tmp/consul.sock:/a/b"),
        ),
        ("CONSUL://[::1]:8500", ("consul", "[::1]:8500", "")),
    ] {
        let c = ok(&[text]);
        assert_eq!(split(&c.registry), want, "{text}");
        assert_eq!(c.registry.to_string(), text);
    }
}

#[test]
fn bad_registry_uris() {
    for uri in [
        "zookeeper://zk:2181/x",
        "localhost:8500",
        "redis://x",
        "consul",
    ] {
        assert_eq!(
            invalid(&[uri]).0,
            format!("unrecognized adapter: {uri}"),
            "{uri}"
        );
    }
    for uri in [
        "consul://host:port",
        "consul://[::1",
        "consulkv-unix://",
        "consul-unix://",
    ] {
        let (message, show_usage) = invalid(&[uri]);
        assert!(
            message.starts_with(&format!("bad adapter uri: {uri}: ")),
            "{uri}: {message}"
        );
        assert!(!show_usage);
    }
}
