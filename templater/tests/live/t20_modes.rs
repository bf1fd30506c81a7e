//! `-once`, `-dry`, exec mode and template errors.

use registry_node::testing::TestAgent;

use super::*;

/// What this test does:
/// - `-once` renders, runs the command and exits 0;
/// - `-dry -once` prints `> <dest>` and the output, writes nothing, runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_and_dry() {
    let a = TestAgent::start().await;
    let (_d, dir) = workdir();
    register(&a, "nginx", "nginx-1", "10.0.0.1", 80).await;
    println!("--- step: -once");
    let mut t = Templater::start(
        &dir,
        &[
            "-consul-addr",
            &addr(&a),
            "-template",
            "nginx.ctmpl:out.conf:touch ran",
            "-once",
        ],
    );
    let status = t.wait_exit().await;
    assert!(status.success(), "{status:?}\n{}", t.log());
    let out = std::fs::read_to_string(dir.join("out.conf")).unwrap();
    assert!(out.contains("server 10.0.0.1:80;"), "{out}");
    assert!(dir.join("ran").exists());

    println!("--- step: -dry");
    let mut t = Templater::start(
        &dir,
        &[
            "-consul-addr",
            &addr(&a),
            "-template",
            "nginx.ctmpl:dry.conf:touch dry-ran",
            "-dry",
            "-once",
        ],
    );
    assert!(t.wait_exit().await.success(), "{}", t.log());
    let stdout = t.stdout();
    assert!(
        stdout.starts_with("> dry.conf\nupstream http_backend {\n\nserver 10.0.0.1:80;\n"),
        "{stdout}"
    );
    assert!(!dir.join("dry.conf").exists());
    assert!(!dir.join("dry-ran").exists());
    a.shutdown().await;
}

/// What this test does:
/// - a template with a syntax error: exit 14, the error names file and line,
///   nothing is written;
/// - an unknown flag exits 13, a bad config file 15.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_exit_codes() {
    let a = TestAgent::start().await;
    let (_d, dir) = workdir();
    std::fs::write(
        dir.join("bad.ctmpl"),
        "ok\nstill ok\n{{ range service \"x\" }\n",
    )
    .unwrap();
    let mut t = Templater::start(
        &dir,
        &["-consul-addr", &addr(&a), "-template", "bad.ctmpl:bad.out"],
    );
    let status = t.wait_exit().await;
    assert_eq!(status.code(), Some(14), "{}", t.log());
    assert!(t.log().contains("bad.ctmpl:3"), "{}", t.log());
    assert!(!dir.join("bad.out").exists());

    let mut t = Templater::start(&dir, &["-no-such-flag"]);
    assert_eq!(t.wait_exit().await.code(), Some(13));
    assert!(
        t.log().contains("unknown flag: -no-such-flag"),
        "{}",
        t.log()
    );

    std::fs::write(dir.join("bad.hcl"), "template {\n sauce = \"x\"\n}\n").unwrap();
    let mut t = Templater::start(&dir, &["-config", "bad.hcl"]);
    assert_eq!(t.wait_exit().await.code(), Some(15));
    assert!(t.log().contains("sauce"), "{}", t.log());
    a.shutdown().await;
}

/// What this test does:
/// - `-exec` starts the child after the first render;
/// - a catalog change sends the child `-exec-reload-signal` (SIGHUP);
/// - SIGTERM to templater stops the child (kill signal, then exit);
/// - a child that exits by itself makes templater exit with its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_mode() {
    let a = TestAgent::start().await;
    let (_d, dir) = workdir();
    register(&a, "nginx", "nginx-1", "10.0.0.1", 80).await;
    let child = "echo $$ > child.pid; trap 'echo HUP >> hup.log' HUP; while :; do sleep 0.1; done";
    let mut t = Templater::start(
        &dir,
        &[
            "-consul-addr",
            &addr(&a),
            "-template",
            "nginx.ctmpl:out.conf",
            "-exec",
            child,
            "-exec-reload-signal=SIGHUP",
            "-exec-kill-timeout=5s",
            "-log-level=debug",
        ],
    );
    let pid_file = dir.join("child.pid");
    let pid = wait_file(&pid_file, "child started", |s| s.ends_with('\n')).await;
    let pid: i32 = pid.trim().parse().unwrap();
    assert!(
        dir.join("out.conf").exists(),
        "child starts after the render"
    );

    println!("--- step: a change reloads the child");
    register(&a, "nginx", "nginx-2", "10.0.0.2", 80).await;
    wait_file(&dir.join("hup.log"), "child got HUP", |s| s.contains("HUP")).await;
    assert!(!gone(pid));

    println!("--- step: SIGTERM stops templater and the child");
    t.signal(Signal::SIGTERM);
    let status = t.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{}", t.log());
    wait_until("child gone", || gone(pid)).await.unwrap();

    println!("--- step: the child's exit code becomes ours");
    let mut t = Templater::start(
        &dir,
        &[
            "-consul-addr",
            &addr(&a),
            "-template",
            "nginx.ctmpl:out2.conf",
            "-exec",
            "exit 7",
        ],
    );
    assert_eq!(t.wait_exit().await.code(), Some(7), "{}", t.log());
    a.shutdown().await;
}
