//! `check_command` / `-check-cmd`: validate before install.

use registry_node::testing::TestAgent;

use super::*;

/// What this test does:
/// - a template renders a KV value; `-check-cmd` accepts only values with GOOD;
/// - a good value is written and its command runs;
/// - a bad value keeps the old file, skips the command, logs the check's stderr;
/// - the next good value is written (the check is retried on every change);
/// - both spellings work: `{{.TempPath}}` and `$TEMPLATER_TEMP_PATH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_check_keeps_the_old_file() {
    let a = TestAgent::start().await;
    let (_d, dir) = workdir();
    kv_put(&a, "app/config", "GOOD-1").await;
    std::fs::write(dir.join("app.ctmpl"), "{{ key \"app/config\" }}\n").unwrap();
    std::fs::write(dir.join("env.ctmpl"), "{{ key \"app/config\" }} env\n").unwrap();
    let out = dir.join("app.conf");
    let count = dir.join("count");
    let t = Templater::start(
        &dir,
        &[
            "-consul-addr",
            &addr(&a),
            "-template",
            "app.ctmpl:app.conf:echo x >> count",
            "-check-cmd",
            "grep -q GOOD {{.TempPath}} || { echo \"invalid config\" >&2; exit 3; }",
            "-log-level=info",
        ],
    );
    wait_file(&out, "first value", |s| s == "GOOD-1\n").await;
    wait_until("command", || lines(&count) == 1).await.unwrap();

    println!("--- step: bad value is rejected");
    kv_put(&a, "app/config", "BAD").await;
    t.wait_log("check command rejected").await;
    let line = t.last_line("check command rejected").unwrap();
    assert!(
        line.contains("exit status: 3") && line.contains("invalid config"),
        "{line}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "GOOD-1\n");
    assert_eq!(lines(&count), 1);
    let leftovers = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".templater-")
        })
        .count();
    assert_eq!(leftovers, 0, "the staged file is removed");

    println!("--- step: next good value is written");
    kv_put(&a, "app/config", "GOOD-2").await;
    wait_file(&out, "second value", |s| s == "GOOD-2\n").await;
    wait_until("command", || lines(&count) == 2).await.unwrap();
    drop(t);

    println!("--- step: the environment spelling");
    let mut t = Templater::start(
        &dir,
        &[
            "-consul-addr",
            &addr(&a),
            "-template",
            "env.ctmpl:env.conf",
            "-check-cmd",
            "grep -q GOOD \"$TEMPLATER_TEMP_PATH\"",
            "-once",
        ],
    );
    assert!(t.wait_exit().await.success(), "{}", t.log());
    assert_eq!(
        std::fs::read_to_string(dir.join("env.conf")).unwrap(),
        "GOOD-2 env\n"
    );
    a.shutdown().await;
}
