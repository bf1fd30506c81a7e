//! The seed's daemon setup: nginx template, command on change, quiescence.

use std::time::Duration;

use registry_node::testing::TestAgent;

use super::*;

/// What this test does:
/// - starts templater with the seed's `-template "nginx.ctmpl:out:cmd"` and `-wait`;
/// - the first render writes the file and runs the command once;
/// - registering an instance rewrites the file after the quiescence window and
///   runs the command exactly once; three quick registrations make one render;
/// - deregistering removes the instance (one more command);
/// - an unrelated KV write rewrites nothing and runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_template_follows_the_catalog() {
    let a = TestAgent::start().await;
    let (_d, dir) = workdir();
    register(&a, "nginx", "nginx-1", "10.0.0.1", 80).await;
    let out = dir.join("conf/nginx.conf");
    let count = dir.join("count");
    let _t = Templater::start(
        &dir,
        &[
            "-consul-addr",
            &addr(&a),
            "-template",
            "./nginx.ctmpl:conf/nginx.conf:echo reload >> count",
            "-wait=500ms:3s",
            "-log-level=debug",
        ],
    );
    println!("--- step: first render");
    wait_file(&out, "has nginx-1", |s| s.contains("server 10.0.0.1:80;")).await;
    wait_until("first command", || lines(&count) == 1)
        .await
        .unwrap();

    println!("--- step: one registration, one render, one command");
    register(&a, "nginx", "nginx-2", "10.0.0.2", 80).await;
    wait_file(&out, "has nginx-2", |s| s.contains("server 10.0.0.2:80;")).await;
    wait_until("second command", || lines(&count) == 2)
        .await
        .unwrap();

    println!("--- step: three quick registrations, one render");
    for i in 3..6 {
        register(
            &a,
            "nginx",
            &format!("nginx-{i}"),
            &format!("10.0.0.{i}"),
            80,
        )
        .await;
    }
    let s = wait_file(&out, "has nginx-5", |s| s.contains("10.0.0.5:80")).await;
    assert!(
        s.contains("10.0.0.3:80") && s.contains("10.0.0.4:80"),
        "{s}"
    );
    wait_until("third command", || lines(&count) == 3)
        .await
        .unwrap();

    println!("--- step: deregistration");
    deregister(&a, "nginx-1").await;
    wait_file(&out, "lost nginx-1", |s| !s.contains("10.0.0.1:80")).await;
    wait_until("fourth command", || lines(&count) == 4)
        .await
        .unwrap();

    println!("--- step: unrelated KV write changes nothing");
    let before = std::fs::metadata(&out).unwrap().modified().unwrap();
    kv_put(&a, "unrelated/key", "x").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(lines(&count), 4, "no command for an unrelated write");
    assert_eq!(std::fs::metadata(&out).unwrap().modified().unwrap(), before);
    let expected = "upstream http_backend {\n\nserver 10.0.0.2:80;\n\nserver 10.0.0.3:80;\n\nserver 10.0.0.4:80;\n\nserver 10.0.0.5:80;\n\n}\n";
    assert!(std::fs::read_to_string(&out).unwrap().starts_with(expected));
    a.shutdown().await;
}

/// What this test does:
/// - two templates share `service "web"`, a third reads `key "a"`: two unique
///   dependencies → two views and two open blocking queries (not three);
/// - editing a template source (no SIGHUP) re-renders it, and the key it no
///   longer uses is stopped: one view, one open query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_blocking_query_per_unique_dependency() {
    let a = TestAgent::start().await;
    let (_d, dir) = workdir();
    register(&a, "web", "web-1", "10.1.0.1", 8080).await;
    kv_put(&a, "a", "A").await;
    let web = "{{range service \"web\"}}{{.Address}}\n{{end}}";
    std::fs::write(dir.join("one.ctmpl"), web).unwrap();
    std::fs::write(dir.join("two.ctmpl"), web).unwrap();
    std::fs::write(dir.join("three.ctmpl"), "{{ key \"a\" }}").unwrap();
    let t = Templater::start(
        &dir,
        &[
            "-consul-addr",
            &addr(&a),
            "-template",
            "one.ctmpl:one.out",
            "-template",
            "two.ctmpl:two.out",
            "-template",
            "three.ctmpl:three.out",
            "-log-level=info",
        ],
    );
    wait_file(&dir.join("three.out"), "rendered", |s| s == "A").await;
    t.wait_log("(watcher) watching 2 dependencies").await;
    t.wait_log("(watcher) open blocking queries: 2").await;
    assert!(!t.log().contains("watching 3 dependencies"), "{}", t.log());

    println!("--- step: edit a source; its key is no longer watched");
    std::fs::write(dir.join("three.ctmpl"), "static\n").unwrap();
    wait_file(&dir.join("three.out"), "re-rendered", |s| s == "static\n").await;
    t.wait_log("(watcher) watching 1 dependencies").await;
    t.wait_log("(watcher) open blocking queries: 1").await;
    a.shutdown().await;
}
