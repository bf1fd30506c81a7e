//! Config files (HCL and JSON), both dialects, SIGHUP reload.

use registry_node::testing::TestAgent;

use super::*;

const NGINX_HBS: &str = r#"upstream http_backend {
{{#each (service "nginx")}}

server {{ Address }}:{{ Port }};
{{/each}}

}
server {
listen 8888;
server_name localhost;
location / {
proxy_pass http://http_backend;
}
}
"#;

/// What this test does:
/// - an HCL config with two template stanzas: the seed's Go template and its
///   Handlebars twin (`engine = "handlebars"`); both outputs are identical;
/// - the same with a JSON config (the `.hbs` extension picks the dialect);
/// - the HCL config is edited (a third stanza) and SIGHUP reloads it: the new
///   template renders; a broken edit + SIGHUP keeps templater running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_files_dialects_and_reload() {
    let a = TestAgent::start().await;
    let (_d, dir) = workdir();
    std::fs::write(dir.join("nginx.tmpl"), NGINX_HBS).unwrap();
    std::fs::write(dir.join("nginx.hbs"), NGINX_HBS).unwrap();
    register(&a, "nginx", "nginx-1", "10.0.0.1", 80).await;
    register(&a, "nginx", "nginx-2", "10.0.0.2", 8080).await;
    let hcl = |extra: &str| {
        format!(
            r#"
consul {{
  address = "{}"
}}
log_level = "info"
template {{
  source      = "nginx.ctmpl"
  destination = "go.conf"
}}
template {{
  source      = "nginx.tmpl"
  engine      = "handlebars"
  destination = "hbs.conf"
  perms       = 0600
}}
{extra}
"#,
            addr(&a)
        )
    };
    std::fs::write(dir.join("templater.hcl"), hcl("")).unwrap();
    let t = Templater::start(&dir, &["-config", "templater.hcl"]);
    let go = wait_file(&dir.join("go.conf"), "go", |s| s.contains("10.0.0.2:8080")).await;
    let hbs = wait_file(&dir.join("hbs.conf"), "hbs", |s| {
        s.contains("10.0.0.2:8080")
    })
    .await;
    assert_eq!(go, hbs, "both dialects render the same");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.join("hbs.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    println!("--- step: SIGHUP reloads an edited config");
    std::fs::write(
        dir.join("templater.hcl"),
        hcl("template {\n  contents = \"{{ range service \\\"nginx\\\" }}{{ .ID }} {{ end }}\"\n  destination = \"ids.txt\"\n}\n"),
    )
    .unwrap();
    t.signal(Signal::SIGHUP);
    wait_file(&dir.join("ids.txt"), "new stanza", |s| {
        s == "nginx-1 nginx-2 "
    })
    .await;

    println!("--- step: a broken config on SIGHUP keeps the running one");
    std::fs::write(dir.join("templater.hcl"), "template {\n nope = 1\n}\n").unwrap();
    t.signal(Signal::SIGHUP);
    t.wait_log("reload failed; keeping the running configuration")
        .await;
    register(&a, "nginx", "nginx-3", "10.0.0.3", 80).await;
    wait_file(&dir.join("ids.txt"), "still running", |s| {
        s.contains("nginx-3")
    })
    .await;
    drop(t);

    println!("--- step: JSON config");
    let json = format!(
        r#"{{"consul": {{"address": "{}"}}, "template": [
            {{"source": "nginx.ctmpl", "destination": "json-go.conf"}},
            {{"source": "nginx.hbs", "destination": "json-hbs.conf", "command": "touch json-ran"}}
        ]}}"#,
        addr(&a)
    );
    std::fs::write(dir.join("templater.json"), json).unwrap();
    let mut t = Templater::start(&dir, &["-config", "templater.json", "-once"]);
    assert!(t.wait_exit().await.success(), "{}", t.log());
    let go = std::fs::read_to_string(dir.join("json-go.conf")).unwrap();
    let hbs = std::fs::read_to_string(dir.join("json-hbs.conf")).unwrap();
    assert_eq!(go, hbs);
    assert!(go.contains("10.0.0.3:80"));
    assert!(dir.join("json-ran").exists());
    a.shutdown().await;
}
