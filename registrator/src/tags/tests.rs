use super::*;

fn render(template: &str) -> Result<String, TagsError> {
    let container: ContainerInspectResponse = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/bridge_two_ports_metadata.json"
    )))
    .unwrap();
    TagsTemplate::parse(template)?.render(&container, "172.17.0.3")
}

fn ok(template: &str) -> String {
    render(template).unwrap_or_else(|e| panic!("{template}: {e}"))
}

#[test]
fn tag_lists() {
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("a", &["a"]),
        ("a,b,c", &["a", "b", "c"]),
        (",a,,b,", &["a", "b"]),
        ("a\\,b,c", &["a,b", "c"]),
        ("\\,", &[","]),
        (" a , b", &[" a ", " b"]),
        ("a\\b", &["a\\b"]),
        (
            "traefik.frontend.rule=Host:x\\,y",
            &["traefik.frontend.rule=Host:x,y"],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_tags(text), *want, "{text:?}");
    }
}

#[test]
fn plain_text_is_not_a_template() {
    let t = TagsTemplate::parse("a,b").unwrap();
    assert!(t.template.is_none());
    assert_eq!(ok("a,b"), "a,b");
    assert!(TagsTemplate::parse("").unwrap().is_empty());
}

#[test]
fn go_field_names() {
    assert_eq!(ok("{{.ID}}"), ok("{{.Id}}"));
    assert_eq!(ok("{{.Name}}"), "/web.1");
    assert_eq!(ok("{{.Config.Image}}"), "example.com/acme/webapp:1.4.2");
    assert_eq!(ok("{{.HostConfig.NetworkMode}}"), "bridge");
    assert_eq!(
        ok("{{.NetworkSettings.Networks.bridge.IPAddress}}"),
        "172.17.0.3"
    );
    assert_eq!(ok("{{.NetworkSettings.IPAddress}}"), "172.17.0.3");
    assert_eq!(ok("{{.Config.Labels.nothing}}"), "<no value>");
    assert_eq!(
        ok("{{range .Config.Cmd}}[{{.}}]{{end}}"),
        "[/bin/sleep][3600]"
    );
}

#[test]
fn str_slice() {
    assert_eq!(ok("{{strSlice .ID 0 12}}"), "c3802cbce76a");
    assert_eq!(ok(r#"{{strSlice "abcdef" 2}}"#), "cdef");
    assert_eq!(ok(r#"{{strSlice "abcdef" 2 4}}"#), "cd");
    // end < start: from start on; out of range: unchanged.
    assert_eq!(ok(r#"{{strSlice "abcdef" 4 2}}"#), "ef");
    assert_eq!(ok(r#"{{strSlice "abc" 1 9}}"#), "abc");
    assert_eq!(ok(r#"{{strSlice "abc" 9}}"#), "abc");
    assert!(render(r#"{{strSlice "abc" -1}}"#).is_err());
}

#[test]
fn slice_and_map_index() {
    assert_eq!(ok("{{sIndex 0 .Config.Cmd}}"), "/bin/sleep");
    assert_eq!(ok("{{sIndex -1 .Config.Cmd}}"), "3600");
    assert_eq!(ok("{{sIndex 7 .Config.Cmd}}"), "3600");
    assert_eq!(ok("{{sIndex -7 .Config.Cmd}}"), "/bin/sleep");
    assert!(render("{{sIndex 0 .Config.Entrypoint}}").is_err());
    assert_eq!(
        ok(r#"{{mIndex "com.example.team" .Config.Labels}}"#),
        "payments"
    );
    assert_eq!(ok(r#"{{mIndex "missing" .Config.Labels}}"#), "");
}

#[test]
fn string_functions() {
    assert_eq!(ok(r#"{{toUpper "foo"}}{{toLower "BaR"}}"#), "FOObar");
    assert_eq!(ok(r#"{{replace -1 "=" "" "=foo="}}"#), "foo");
    assert_eq!(ok(r#"{{replace 1 "=" "" "=foo="}}"#), "foo=");
    assert_eq!(ok(r#"{{join "," (split "/" "a/b/c")}}"#), "a,b,c");
    assert_eq!(ok(r#"{{split "/" "a/b"}}"#), "[a b]");
    assert_eq!(
        ok(r#"{{splitIndex -1 "/" "arn:aws:ecs:region:1:task/368f"}}"#),
        "368f"
    );
    assert_eq!(ok(r#"{{splitIndex 9 "," "a,b"}}"#), "b");
    assert_eq!(ok(r#"{{splitIndex -9 "," "a,b"}}"#), "a");
}

#[test]
fn regex_functions() {
    assert_eq!(
        ok(r#"{{matchFirstElement "^SERVICE_" .Config.Env}}"#),
        "SERVICE_443_NAME=secure"
    );
    assert_eq!(
        ok(r#"{{join "," (matchAllElements "^SERVICE_[0-9]+_" .Config.Env)}}"#),
        "SERVICE_443_NAME=secure,SERVICE_80_CHECK_HTTP=/health"
    );
    assert_eq!(ok(r#"{{matchFirstElement "^NOPE" .Config.Env}}"#), "");
    assert!(render(r#"{{matchFirstElement "(" .Config.Env}}"#).is_err());
}

#[test]
fn json_parse_and_http_get() {
    assert_eq!(ok(r#"{{jsonParse "{\"a\":{\"b\":\"c\"}}" "a::b"}}"#), "c");
    assert_eq!(ok(r#"{{jsonParse "{\"a\":{\"b\":1}}" "a"}}"#), r#"{"b":1}"#);
    assert_eq!(ok(r#"{{jsonParse "nope" "a"}}"#), "");
    let err = render(r#"{{httpGet "http://169.254.169.254/"}}"#).unwrap_err();
    assert!(
        err.to_string().contains("httpGet is not supported"),
        "{err}"
    );
}

#[test]
fn errors() {
    let err = TagsTemplate::parse("{{.ID").unwrap_err();
    assert!(matches!(err, TagsError::Parse { .. }), "{err}");
    assert!(err.to_string().starts_with("{{.ID template parsing failed"));
    let err = render("{{toUpper 1}}").unwrap_err();
    assert!(matches!(err, TagsError::Exec { .. }), "{err}");
    assert!(render("{{toUpper}}").is_err());
}
