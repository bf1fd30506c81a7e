//! Golden renders and the multi-pass / blocking behaviour.

use std::path::Path;

use templater::{Brain, Template};

use super::*;

/// What this test does:
/// - starts one fixture agent;
/// - renders every golden input with the multi-pass loop;
/// - compares output with `<stem>.out`, or the parse/execute error with `<stem>.err`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_files() {
    let a = fixture_agent().await;
    let bless = std::env::var_os("GOLDEN_BLESS").is_some();
    let mut failures = Vec::new();
    for path in inputs() {
        println!("--- step: {}", path.display());
        let src = std::fs::read_to_string(&path).expect("read");
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("stem");
        let dir = path.parent().expect("dir");
        let rel = format!(
            "tests/golden/{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("")
        );
        let (actual, expected_path) = match Template::parse(&rel, &src, &options(&path)) {
            Err(e) => (format!("{e}\n"), dir.join(format!("{stem}.err"))),
            Ok(t) => {
                let mut brain = Brain::new();
                let (out, _) = render_loop(&a, &t, &mut brain).await;
                let output = out
                    .output
                    .unwrap_or_else(|| panic!("{rel}: still missing {:?}", out.missing));
                (output, dir.join(format!("{stem}.out")))
            }
        };
        if bless && path.extension().is_some_and(|e| e == "ctmpl") {
            std::fs::write(&expected_path, &actual).expect("bless");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        if actual != expected {
            failures.push(format!(
                "{rel}: output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}",
                expected_path.display()
            ));
        }
    }
    a.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// What this test does:
/// - `range services` + `service .Name` needs a second pass: the first pass
///   only knows `catalog.services`;
/// - the final used set holds one health dependency per service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_dependencies_take_two_passes() {
    let a = fixture_agent().await;
    let src = "{{range services}}{{range service .Name}}{{.ID}} {{end}}{{end}}";
    let t = Template::parse("nested", src, &Default::default()).unwrap();
    let mut brain = Brain::new();
    println!("--- step: first pass discovers only the catalog");
    let first = templater::render(&t, &brain, &context()).unwrap();
    assert_eq!(first.output, None);
    assert_eq!(first.used.len(), 1);
    println!("--- step: loop to completion");
    let (out, passes) = render_loop(&a, &t, &mut brain).await;
    assert_eq!(passes, 3, "catalog, then the services, then a clean pass");
    assert_eq!(
        out.output.as_deref(),
        Some("consul nginx-1 nginx-2 redis-1 ")
    );
    // consul, nginx, postgres, redis + the catalog
    assert_eq!(out.used.len(), 5);
    a.shutdown().await;
}

/// What this test does:
/// - `key` of a missing key, `safeLs`/`safeTree` of an empty prefix keep the
///   template from rendering even once their data arrived (B.4.3);
/// - `keyOrDefault`, `keyExists`, `ls`, `tree` render with empty data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_functions_hold_rendering() {
    let a = fixture_agent().await;
    for src in [
        r#"{{ key "no/such/key" }}"#,
        r#"{{ range safeLs "no/such/prefix" }}{{ .Key }}{{ end }}"#,
        r#"{{ range safeTree "no/such/prefix" }}{{ .Key }}{{ end }}"#,
    ] {
        println!("--- step: {src}");
        let t = Template::parse("blocking", src, &Default::default()).unwrap();
        let mut brain = Brain::new();
        let (out, _) = render_loop(&a, &t, &mut brain).await;
        assert_eq!(out.output, None, "{src}");
        assert_eq!(out.missing.len(), 1);
        assert!(brain.recall(out.missing.iter().next().unwrap()).is_some());
    }
    let src = r#"{{ keyOrDefault "no/such/key" "dflt" }} {{ keyExists "no/such/key" }} [{{ range ls "no/such" }}x{{ end }}] [{{ range tree "no/such" }}x{{ end }}]"#;
    let t = Template::parse("nonblocking", src, &Default::default()).unwrap();
    let mut brain = Brain::new();
    let first = templater::render(&t, &brain, &context()).unwrap();
    assert_eq!(first.missing.len(), 2, "first pass: no data yet");
    let (out, _) = render_loop(&a, &t, &mut brain).await;
    assert_eq!(out.output.as_deref(), Some("dflt false [] []"));
    a.shutdown().await;
}

/// What this test does: a parse error names the file and the line.
#[test]
fn bad_template_reports_file_and_line() {
    let path = Path::new("tests/golden/bad.ctmpl");
    let err = Template::parse(
        "tests/golden/bad.ctmpl",
        "ok\n{{ range service \"x\" }}\n{{ .Name\n",
        &options(path),
    )
    .err()
    .expect("parse error");
    assert!(err.is_parse());
    // The lexer hits EOF on line 4 still inside the action.
    assert!(
        err.to_string().starts_with("tests/golden/bad.ctmpl:4"),
        "{err}"
    );
    let err = Template::parse("t.ctmpl", "ok\n{{ nosuch \"x\" }}\n", &options(path))
        .err()
        .expect("unknown function");
    assert_eq!(
        err.to_string(),
        "t.ctmpl:2: parse: function \"nosuch\" not defined"
    );
}

/// What this test does:
/// - registers two `web` instances (one on a node address, one with its own);
/// - renders the shipped `templates/` (the demo's nginx.ctmpl, its Handlebars
///   twin nginx.hbs, haproxy.ctmpl) with the file's own dialect;
/// - the twins render the same bytes, and each output routes to both instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_templates_render() {
    let a = fixture_agent().await;
    for (node, addr, id, svc_addr) in [
        ("web1", "10.0.0.1", "web-a", ""),
        ("web2", "10.0.0.2", "web-b", "172.20.0.7"),
    ] {
        let body = serde_json::json!({
            "Node": node,
            "Address": addr,
            "Service": {"ID": id, "Service": "web", "Address": svc_addr, "Port": 8080},
        });
        put(&a, "/v1/catalog/register", body).await;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    let mut outputs = std::collections::BTreeMap::new();
    for name in ["nginx.ctmpl", "nginx.hbs", "haproxy.ctmpl"] {
        println!("--- step: {name}");
        let path = dir.join(name);
        let src = std::fs::read_to_string(&path).expect("read");
        let t = Template::parse(name, &src, &options(&path)).unwrap_or_else(|e| panic!("{e}"));
        let mut brain = Brain::new();
        let (out, _) = render_loop(&a, &t, &mut brain).await;
        let output = out
            .output
            .unwrap_or_else(|| panic!("{name}: missing {:?}", out.missing));
        outputs.insert(name, output);
    }
    let nginx = &outputs["nginx.ctmpl"];
    assert_eq!(
        &outputs["nginx.hbs"], nginx,
        "the Handlebars twin renders the same bytes"
    );
    for upstream in [
        "server 10.0.0.1:8080;",
        "server 172.20.0.7:8080;",
        "listen 8888;",
    ] {
        assert!(
            nginx.contains(upstream),
            "nginx.ctmpl lacks {upstream:?}:\n{nginx}"
        );
    }
    let haproxy = &outputs["haproxy.ctmpl"];
    for server in [
        "server 10.0.0.1:8080 10.0.0.1:8080 check",
        "server 172.20.0.7:8080 172.20.0.7:8080 check",
    ] {
        assert!(
            haproxy.contains(server),
            "haproxy.ctmpl lacks {server:?}:\n{haproxy}"
        );
    }
    a.shutdown().await;
}
