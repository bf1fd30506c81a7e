//! Filter expressions against realistic Consul JSON: one `/v1/health/service`
//! element and one `/v1/catalog/service` element.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Filter, FilterError, apply, apply_map};

/// A `/v1/health/service/redis` element: node, instance and checks (one
/// node-level `serfHealth` passing, the service check critical).
fn health_entry() -> Value {
    json!({
        "Node": {
            "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
            "Node": "foobar",
            "Address": "10.1.10.12",
            "Datacenter": "dc1",
            "TaggedAddresses": { "lan": "10.1.10.12", "wan": "10.1.10.12" },
            "Meta": { "instance_type": "t2.medium", "consul-network-segment": "" },
            "CreateIndex": 5,
            "ModifyIndex": 5
        },
        "Service": {
            "ID": "redis1",
            "Service": "redis",
            "Tags": ["primary", "v1"],
            "Address": "10.1.10.12",
            "TaggedAddresses": {
                "lan": { "Address": "10.1.10.12", "Port": 8000 },
                "wan": { "Address": "198.18.0.53", "Port": 80 }
            },
            "Meta": { "redis_version": "4.0", "env": "prod", "weird-key": "odd", "path": "C:\\data\\redis" },
            "Port": 8000,
            "Weights": { "Passing": 10, "Warning": 1 },
            "EnableTagOverride": false,
            "Proxy": { "MeshGateway": {}, "Expose": {} },
            "Connect": {},
            "PeerName": "",
            "CreateIndex": 9007199254740993u64,
            "ModifyIndex": 12
        },
        "Checks": [
            {
                "Node": "foobar",
                "CheckID": "serfHealth",
                "Name": "Serf Health Status",
                "Status": "passing",
                "Notes": "",
                "Output": "Agent alive and reachable",
                "ServiceID": "",
                "ServiceName": "",
                "ServiceTags": [],
                "Type": "",
                "Definition": {},
                "CreateIndex": 5,
                "ModifyIndex": 5
            },
            {
                "Node": "foobar",
                "CheckID": "service:redis1",
                "Name": "Service 'redis' check",
                "Status": "critical",
                "Notes": "",
                "Output": "dial tcp 10.1.10.12:8000: connect: connection refused",
                "ServiceID": "redis1",
                "ServiceName": "redis",
                "ServiceTags": ["primary", "v1"],
                "Type": "tcp",
                "Definition": { "TCP": "10.1.10.12:8000", "Interval": "10s" },
                "CreateIndex": 13,
                "ModifyIndex": 14
            }
        ]
    })
}

/// A `/v1/catalog/service/web` element (node and instance flattened).
fn catalog_entry() -> Value {
    json!({
        "ID": "a3c5b1e2-6d2f-4b53-9f3e-0a8a2f1c7e11",
        "Node": "web-01",
        "Address": "192.168.10.10",
        "Datacenter": "dc1",
        "TaggedAddresses": { "lan": "192.168.10.10", "wan": "10.0.10.10" },
        "NodeMeta": { "os": "linux", "rack": "r12" },
        "ServiceKind": "",
        "ServiceID": "web-8080",
        "ServiceName": "web",
        "ServiceTags": ["http", "canary"],
        "ServiceAddress": "",
        "ServiceWeights": { "Passing": 1, "Warning": 1 },
        "ServiceMeta": {},
        "ServicePort": 8080,
        "ServiceSocketPath": "",
        "ServiceEnableTagOverride": true,
        "ServiceProxy": { "MeshGateway": {}, "Expose": {} },
        "ServiceConnect": {},
        "PeerName": "",
        "CreateIndex": 20,
        "ModifyIndex": 21
    })
}

fn eval(expr: &str, item: &Value) -> bool {
    Filter::parse(expr)
        .unwrap_or_else(|e| panic!("parse {expr:?}: {e}"))
        .matches(item)
        .unwrap_or_else(|e| panic!("eval {expr:?}: {e}"))
}

/// Asserts each expression's outcome on `item`.
fn check(item: &Value, cases: &[(&str, bool)]) {
    for (expr, want) in cases {
        assert_eq!(eval(expr, item), *want, "{expr}");
    }
}

fn syntax_message(expr: &str) -> String {
    match Filter::parse(expr) {
        Err(FilterError::Syntax { message, .. }) => message,
        other => panic!("{expr:?}: expected a syntax error, got {other:?}"),
    }
}

#[test]
fn equality_on_strings_numbers_and_bools() {
    check(
        &health_entry(),
        &[
            (r#"Service.Service == "redis""#, true),
            (r#"Service.Service == "web""#, false),
            (r#"Service.Service != "web""#, true),
            (r#"Node.Node == "foobar""#, true),
            // Numbers compare by value, quoted or not.
            ("Service.Port == 8000", true),
            (r#"Service.Port == "8000""#, true),
            ("Service.Port == 8000.0", true),
            ("Service.Port != 8001", true),
            (r#"Service.Port == "abc""#, false),
            ("Service.Weights.Passing == 10", true),
            // u64 indexes beyond f64 precision still compare exactly.
            ("Service.CreateIndex == 9007199254740993", true),
            ("Service.CreateIndex == 9007199254740992", false),
            // Bools accept Go's ParseBool spellings.
            ("Service.EnableTagOverride == false", true),
            (r#"Service.EnableTagOverride == "false""#, true),
            ("Service.EnableTagOverride == 0", true),
            ("Service.EnableTagOverride == true", false),
            ("Service.EnableTagOverride != true", true),
            // Bare words are values, as in go-bexpr.
            ("Service.Meta.env == prod", true),
            // Objects and arrays equal no scalar.
            (r#"Service.Tags == "primary""#, false),
            (r#"Service.Meta == "prod""#, false),
        ],
    );
}

#[test]
fn map_keys_dotted_and_bracketed() {
    check(
        &health_entry(),
        &[
            (r#"Service.Meta.redis_version == "4.0""#, true),
            (r#"Service.Meta["redis_version"] == "4.0""#, true),
            (r#"Service.Meta["weird-key"] == "odd""#, true),
            (r#"Service.Meta[ `weird-key` ] == odd"#, true),
            (r#"Node.Meta["consul-network-segment"] is empty"#, true),
            (r#"Node.Meta.instance_type == "t2.medium""#, true),
            (
                r#"Service.TaggedAddresses.wan.Address == "198.18.0.53""#,
                true,
            ),
            (r#"Service.TaggedAddresses["lan"].Port == 8000"#, true),
            // Missing keys below the first segment are empty, not errors.
            (r#"Service.Meta.missing == "x""#, false),
            (r#"Service.Meta.missing != "x""#, true),
            ("Service.Meta.missing is empty", true),
            ("Service.Meta.missing is not empty", false),
            (r#""x" in Service.Meta.missing"#, false),
            (r#""x" not in Service.Meta.missing"#, true),
            (r#"Service.Meta.missing matches ".*""#, false),
            (r#"Service.Port.deeper == "x""#, false),
        ],
    );
}

#[test]
fn emptiness() {
    let item = json!({
        "Missing": null, "Str": "", "Full": "x", "Arr": [], "Obj": {}, "Zero": 0, "No": false,
        "Tags": ["a"], "Meta": {"k": "v"}
    });
    check(
        &item,
        &[
            ("Missing is empty", true),
            ("Str is empty", true),
            ("Arr is empty", true),
            ("Obj is empty", true),
            ("Full is empty", false),
            ("Tags is empty", false),
            ("Meta is empty", false),
            // Scalars other than "" are never empty.
            ("Zero is empty", false),
            ("No is not empty", true),
            ("Full is not empty", true),
            ("Arr is not empty", false),
        ],
    );
}

#[test]
fn in_and_contains() {
    check(
        &health_entry(),
        &[
            // Membership in an array of strings.
            (r#""primary" in Service.Tags"#, true),
            (r#""prim" in Service.Tags"#, false),
            (r#""secondary" not in Service.Tags"#, true),
            (r#"Service.Tags contains "v1""#, true),
            (r#"Service.Tags not contains "v1""#, false),
            (r#"Service.Tags not contains "v2""#, true),
            ("primary in Service.Tags", true),
            // Substring of a string.
            (r#""red" in Service.Service"#, true),
            (r#"Service.Service contains "dis""#, true),
            (r#"Node.Address contains "10.1.""#, true),
            (r#"Node.Address not contains "192.""#, true),
            // Key presence in a map.
            (r#""env" in Service.Meta"#, true),
            (r#"Service.Meta contains "weird-key""#, true),
            (r#""prod" in Service.Meta"#, false),
            // Numbers are not containers.
            (r#""80" in Service.Port"#, false),
        ],
    );
}

#[test]
fn regex_matches() {
    check(
        &health_entry(),
        &[
            (r#"Service.Service matches "^re""#, true),
            (r#"Service.Service matches "^dis""#, false),
            (r#"Service.Service not matches "^web""#, true),
            (r#"Node.Address matches `^10\.1\.\d+\.\d+$`"#, true),
            (r#"Node.Address matches "^10\\.1\\.\\d+\\.\\d+$""#, true),
            // Scalars match on their text.
            (r#"Service.Port matches "^80""#, true),
            (r#"Service.EnableTagOverride matches "^f""#, true),
            // Collections never match.
            (r#"Service.Tags matches "primary""#, false),
        ],
    );
}

#[test]
fn selectors_crossing_arrays_match_any_element() {
    let item = health_entry();
    check(
        &item,
        &[
            (r#"Checks.Status == "critical""#, true),
            (r#"Checks.Status == "passing""#, true),
            (r#"Checks.Status == "warning""#, false),
            // Per element, then any: "some check is not passing".
            (r#"Checks.Status != "passing""#, true),
            (r#"Checks.Status != "warning""#, true),
            // Whole-item negation: "no check is critical".
            (r#"not Checks.Status == "critical""#, false),
            (r#"not Checks.Status == "warning""#, true),
            (r#"Checks.CheckID == "serfHealth""#, true),
            (r#"Checks.Output contains "refused""#, true),
            (r#"Checks.Name matches "^Serf""#, true),
            (r#"Checks.ServiceTags is empty"#, true),
            (r#""v1" in Checks.ServiceTags"#, true),
            (r#"Checks.Definition.TCP == "10.1.10.12:8000""#, true),
            (r#"Checks.Definition.HTTP is empty"#, true),
            // A numeric segment indexes the array instead.
            (r#"Checks.0.CheckID == "serfHealth""#, true),
            (r#"Checks.1.Status == "passing""#, false),
            ("Checks.5.Status is empty", true),
            ("Checks is not empty", true),
        ],
    );

    // An empty array offers no element to match, whatever the operator.
    let mut no_checks = item.clone();
    no_checks["Checks"] = json!([]);
    check(
        &no_checks,
        &[
            (r#"Checks.Status == "passing""#, false),
            (r#"Checks.Status != "passing""#, false),
            ("Checks.Status is empty", false),
            ("Checks is empty", true),
            (r#"not Checks.Status == "critical""#, true),
        ],
    );
}

#[test]
fn boolean_operators_and_precedence() {
    let item = health_entry();
    let t = r#"Service.Service == "redis""#;
    let f = r#"Service.Service == "web""#;
    check(
        &item,
        &[
            (&format!("{t} and {t}"), true),
            (&format!("{t} and {f}"), false),
            (&format!("{f} or {t}"), true),
            (&format!("{f} or {f}"), false),
            (&format!("not {f}"), true),
            (&format!("not not {t}"), true),
            (&format!("not ({t})"), false),
            // and binds tighter than or.
            (&format!("{t} or {t} and {f}"), true),
            (&format!("({t} or {t}) and {f}"), false),
            (&format!("{f} and {t} or {t}"), true),
            (&format!("{f} and ({t} or {t})"), false),
            // not binds tighter than and/or.
            (&format!("not {t} and {f}"), false),
            (&format!("not {f} and {t}"), true),
            (&format!("not {t} or {t}"), true),
            (&format!("not ({f} or {t})"), false),
            // Whole-expression parentheses, nested groups, line breaks.
            (&format!("(({t}))"), true),
            (&format!("(\n\t{f}\n\tor ({t} and not {f})\n)"), true),
            // Long flat chains.
            (&vec![f; 200].join(" or "), false),
            (&vec![t; 200].join(" and "), true),
        ],
    );
}

#[test]
fn string_literals_escapes_and_raw() {
    let item = json!({ "S": "a\"b\tc\\d é", "P": "C:\\data\\redis" });
    check(
        &item,
        &[
            (r#"S == "a\"b\tc\\d é""#, true),
            (r#"S == "a\"b\tc\\d \u00e9""#, true),
            (r#"S == "a\x22b\x09c\\d \U000000e9""#, true),
            (r#"S == "a\042b\011c\\d é""#, true),
            // Raw strings keep backslashes.
            (r"P == `C:\data\redis`", true),
            (r#"P == "C:\\data\\redis""#, true),
            (r"P matches `^C:\\data`", true),
            ("P == ``", false),
            (r#"S != """#, true),
        ],
    );
}

#[test]
fn catalog_service_element() {
    check(
        &catalog_entry(),
        &[
            (r#"NodeMeta.os == "linux""#, true),
            (r#"NodeMeta.os == linux and NodeMeta.rack == r12"#, true),
            (r#""canary" in ServiceTags"#, true),
            (
                r#"ServiceTags contains "http" and ServicePort == 8080"#,
                true,
            ),
            ("ServiceMeta is empty", true),
            ("ServiceAddress is empty", true),
            ("ServiceEnableTagOverride == true", true),
            (r#"TaggedAddresses.wan == "10.0.10.10""#, true),
            (r#"ServiceKind == """#, true),
            (
                r#"Node matches `^web-\d+$` and not "canary" not in ServiceTags"#,
                true,
            ),
            (
                r#"ServiceName == "web" and (NodeMeta.os == "windows" or ServicePort == 80)"#,
                false,
            ),
        ],
    );
}

#[test]
fn unknown_first_segment_is_an_invalid_selector() {
    let item = health_entry();
    let filter = Filter::parse(r#"Foo == "bar""#).unwrap();
    let err = filter.matches(&item).unwrap_err();
    assert!(err.is_invalid_selector() && err.is_bad_request());
    assert_eq!(
        err.to_string(),
        r#"Failed to create boolean expression evaluator: Selector "Foo" is not valid"#
    );

    // The full selector is reported, and every selector is checked even where
    // evaluation would short-circuit before reaching it.
    let filter = Filter::parse(r#"Service.Port == 8000 or Nodes.Meta.os == "linux""#).unwrap();
    assert_eq!(
        filter.matches(&item),
        Err(FilterError::InvalidSelector {
            selector: "Nodes.Meta.os".to_string()
        })
    );

    // Field names are case-sensitive, as Go's are.
    assert!(
        Filter::parse("service.Port == 8000")
            .unwrap()
            .matches(&item)
            .is_err()
    );

    // Optional fields read as empty instead.
    let filter = Filter::parse(r#"Kind == "connect-proxy""#)
        .unwrap()
        .with_optional_fields(&["Kind"]);
    let plain = json!({ "ID": "web", "Service": "web" });
    assert_eq!(filter.matches(&plain), Ok(false));
    assert_eq!(
        filter.matches(&json!({ "Kind": "connect-proxy" })),
        Ok(true)
    );

    // Only objects have fields to validate against.
    assert_eq!(
        Filter::parse("Foo is empty").unwrap().matches(&json!("x")),
        Ok(true)
    );
}

#[test]
fn syntax_errors_carry_positions() {
    let err = Filter::parse(r#"Service.Port =="#).unwrap_err();
    assert!(err.is_syntax() && err.is_bad_request());
    assert_eq!(
        err.to_string(),
        "Failed to create boolean expression evaluator: \
         1:16 (15): expected a value after '==', found end of input"
    );

    let err = Filter::parse("Service.Port == 1 and\n  Checks.Status ~ 2").unwrap_err();
    assert!(
        matches!(
            err,
            FilterError::Syntax {
                line: 2,
                column: 17,
                offset: 38,
                ..
            }
        ),
        "{err:?}"
    );

    let cases = [
        (
            "",
            "expected a selector, a value or '(', found end of input",
        ),
        (
            "   ",
            "expected a selector, a value or '(', found end of input",
        ),
        ("Service.Port", "expected an operator"),
        ("Service.Port = 8000", "did you mean '=='"),
        ("Service.Port ! 8000", "use '!=' or \"not\""),
        ("Service.Port == 8000 and", "found end of input"),
        ("Service.Port == 8000 or or", "found 'or'"),
        ("and Service.Port == 1", "found 'and'"),
        (
            "Service.Port == 8000 Service.ID == x",
            "expected \"and\", \"or\" or end of input",
        ),
        ("(Service.Port == 8000", "Unmatched parentheses"),
        ("Service.Port == 8000)", "Unmatched parentheses"),
        (
            "(Service.Port == 8000 x)",
            "expected \"and\", \"or\" or ')'",
        ),
        ("()", "found ')'"),
        (r#"Service.ID == "redis"#, "Unterminated string literal"),
        ("Service.ID == `redis", "Unterminated string literal"),
        ("Service.ID == \"a\nb\"", "newline in string literal"),
        (r#"Service.ID == "\q""#, "invalid escape sequence \\q"),
        (r#"Service.ID == "\xff""#, "above \\x7f"),
        (r#"Service.ID == "\u12""#, "invalid escape sequence"),
        ("Service.Port == 80a", "Invalid number literal"),
        ("Service.Port == 0123", "Invalid number literal"),
        ("Service.Meta.version == 1.2.3", "Invalid number literal"),
        ("Service.Port == -x", "unexpected character '-'"),
        (r#"Service.Meta.weird-key == "x""#, r#"as Sel["key"]"#),
        ("Service. == 1", "expected a field name after '.'"),
        ("Service.Meta[env] == 1", "Invalid index"),
        (r#"Service.Meta["env" == 1"#, "Unclosed index expression"),
        (
            "Service.Tags is full",
            "expected \"empty\" or \"not empty\"",
        ),
        (
            "Service.Tags not equals x",
            "expected \"in\", \"contains\" or \"matches\"",
        ),
        (r#""x" in "y""#, "Invalid selector"),
        (r#""x" == Service.ID"#, "expected \"in\" or \"not in\""),
        ("Service.ID == x & y", "unexpected character '&'"),
        ("Service.ID in", "found end of input"),
    ];
    for (expr, want) in cases {
        let message = syntax_message(expr);
        assert!(
            message.contains(want),
            "{expr:?}: {message:?} lacks {want:?}"
        );
    }
}

#[test]
fn invalid_regex_fails_at_parse_time() {
    let err = Filter::parse(r#"Service.Service matches "(unclosed""#).unwrap_err();
    assert!(matches!(&err, FilterError::InvalidRegex { pattern, .. } if pattern == "(unclosed"));
    assert!(
        err.to_string().starts_with(
            "Failed to create boolean expression evaluator: \
             Failed to compile regular expression \"(unclosed\": "
        ),
        "{err}"
    );
}

#[test]
fn nesting_is_capped() {
    let deep = format!("{}Service.Port == 1{}", "(".repeat(64), ")".repeat(64));
    assert!(Filter::parse(&deep).is_ok());
    let too_deep = format!("{}Service.Port == 1{}", "(".repeat(65), ")".repeat(65));
    assert!(syntax_message(&too_deep).contains("deeper than 64"));
    let nots = format!("{}Service.Port == 1", "not ".repeat(1000));
    assert!(syntax_message(&nots).contains("deeper than 64"));
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Instance {
    #[serde(rename = "ID")]
    id: &'static str,
    #[serde(rename = "Tags")]
    tags: Vec<&'static str>,
    #[serde(rename = "Port")]
    port: u16,
}

fn instances() -> Vec<Instance> {
    vec![
        Instance {
            id: "web-1",
            tags: vec!["primary"],
            port: 8080,
        },
        Instance {
            id: "web-2",
            tags: vec![],
            port: 8081,
        },
        Instance {
            id: "web-3",
            tags: vec!["primary", "canary"],
            port: 8082,
        },
    ]
}

#[test]
fn apply_keeps_matching_items_in_order() {
    let kept = apply(Some(r#""primary" in Tags"#), instances()).unwrap();
    let ids: Vec<_> = kept.iter().map(|i| i.id).collect();
    assert_eq!(ids, ["web-1", "web-3"]);

    assert_eq!(apply(None, instances()).unwrap(), instances());
    assert_eq!(apply(Some(""), instances()).unwrap(), instances());
    assert!(
        apply(Some("Port == 1"), Vec::<Instance>::new())
            .unwrap()
            .is_empty()
    );
    assert!(apply(Some("Port =="), instances()).unwrap_err().is_syntax());
    assert!(
        apply(Some("Name == x"), instances())
            .unwrap_err()
            .is_invalid_selector()
    );

    let filter: Filter = "Port != 8081".parse().unwrap();
    assert_eq!(filter.to_string(), "Port != 8081");
    assert_eq!(filter.as_str(), "Port != 8081");
    assert_eq!(filter.apply(instances()).unwrap().len(), 2);
}

#[test]
fn apply_map_keeps_matching_values() {
    let by_id: BTreeMap<String, Instance> = instances()
        .into_iter()
        .map(|i| (i.id.to_string(), i))
        .collect();
    let kept = apply_map(Some("Tags is empty or Port == 8082"), by_id.clone()).unwrap();
    assert_eq!(kept.keys().collect::<Vec<_>>(), ["web-2", "web-3"]);
    assert_eq!(apply_map(None, by_id.clone()).unwrap(), by_id);
    assert!(apply_map(Some("ID =="), by_id).unwrap_err().is_syntax());
}

#[test]
fn encode_failures_are_server_errors() {
    // JSON objects need string keys; this map cannot be encoded.
    let items = vec![BTreeMap::from([((1, 2), "x")])];
    let err = apply(Some("X is empty"), items).unwrap_err();
    assert!(matches!(err, FilterError::Encode { .. }));
    assert!(!err.is_bad_request());
}
