//! What this test does (one compose project, under steady traffic through nginx:
//! two loops, each sending `GET /` on a new connection every ~5 ms):
//!
//! 1. builds the images, `up --scale web=3`; waits for the three servers to agree
//!    on a leader, the UI to answer and `registry-node members` to list four agents;
//! 2. nginx is answered by exactly the three web containers;
//! 3. `--scale web=6`: within 2 s of `up` returning, all six answer (and no other);
//! 4. `docker stop` of one web container: within 2 s of the stop being issued its
//!    address has left the rendered nginx config; no request sent after the stop
//!    returned is answered by it; and no request fails except those in flight at
//!    the stop (sent before `docker stop` returned, completed after it was issued).
//!    Then one container's `/health` starts failing (its flag file is copied in):
//!    its check turns critical and its address leaves the config (within 10 s);
//! 5. `docker kill` of the Raft leader: no request fails, the two survivors agree on
//!    a new leader within 10 s, and scaling still works: `--scale web=7` restarts the
//!    stopped container and adds two, all answer through nginx within 2 s of `up`
//!    returning;
//!    then `docker kill` of the client agent templater and registrator query, and
//!    `docker start` 2 s later: no request fails, and a new web container
//!    (`--scale web=8`) is rendered into nginx's config and answers;
//! 6. `down -v`: no container, network or volume of the project is left.
//!
//! Every timing is printed, met or not.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use registry_e2e::compose::docker;
use registry_e2e::{Demo, Traffic};

use crate::{
    BUDGET, answered_by_exactly, failures, hostnames, wait_answered_by_exactly, wait_for,
    wait_left_config, web_containers,
};

#[test]
fn nginx_follows_the_web_containers() {
    eprintln!("--- step 1: build the images, compose up with 3 web containers");
    registry_e2e::build_images().unwrap_or_else(|e| panic!("{e}"));
    let mut demo = Demo::new("e2edemo").unwrap();
    eprintln!(
        "project {}: nginx on :{}, registry1 on :{}",
        demo.project, demo.http_port, demo.ui_port
    );
    let started = Instant::now();
    demo.up(3).unwrap();
    let leader = demo.wait_for_leader(Duration::from_secs(60)).unwrap();
    eprintln!(
        "up and leader {} elected after {:?}",
        leader.name,
        started.elapsed()
    );
    let ui = format!("/ui/?port={}", demo.ui_port);
    let (status, _) = demo.registry_get(&leader, &ui).unwrap();
    assert_eq!(status, 200, "UI");
    let registry1 = demo.container("registry1").unwrap();
    let (members, _) = wait_for(Duration::from_secs(30), || {
        let out = docker(&["exec", &registry1.id, "registry-node", "members"])?;
        let alive = out.lines().filter(|l| l.contains(" alive ")).count();
        (alive == 4).then_some(out.clone()).ok_or(out)
    })
    .unwrap();
    eprint!("registry-node members:\n{members}");

    eprintln!("--- step 2: every web container answers through nginx");
    let traffic = Traffic::start(demo.rt().handle(), &demo.url(), 2, Duration::from_millis(5));
    let web = web_containers(&demo, 3);
    let since = Instant::now();
    let (_, at) = wait_for(Duration::from_secs(60), || {
        answered_by_exactly(&traffic.hosts_since(since), &hostnames(&web))
    })
    .unwrap();
    eprintln!(
        "answered by all 3 after {:?}; rendered config:\n{}",
        at - since,
        demo.rendered_conf().unwrap()
    );

    eprintln!("--- step 3: scale web to 6");
    let t_up = Instant::now();
    demo.scale_web(6).unwrap();
    let returned = Instant::now();
    let web = web_containers(&demo, 6);
    let result = wait_for(Duration::from_secs(30), || {
        answered_by_exactly(&traffic.hosts_since(returned), &hostnames(&web))
    });
    let (_, at) = result.unwrap();
    eprintln!(
        "all 6 answered {:?} after `up --scale web=6` returned (the command took {:?})",
        at - returned,
        returned - t_up
    );
    assert!(
        at - returned <= BUDGET,
        "scale to 6: over the {BUDGET:?} budget"
    );

    eprintln!("--- step 4: stop one web container under traffic");
    let victim = web[0].clone();
    let issued = Instant::now();
    docker(&["stop", &victim.id]).unwrap();
    let stopped = Instant::now();
    let gone = wait_left_config(&demo, &victim, Duration::from_secs(30)).unwrap();
    // Let the traffic run on the new config for a while.
    std::thread::sleep(Duration::from_secs(1));
    let samples = traffic.samples();
    let step: Vec<_> = samples
        .iter()
        .filter(|s| s.done >= issued - Duration::from_secs(1))
        .cloned()
        .collect();
    let after_stop: Vec<_> = step
        .iter()
        .filter(|s| s.sent >= stopped && s.outcome.as_ref() == Ok(&victim.hostname))
        .collect();
    let in_flight = |s: &registry_e2e::Sample| s.sent < stopped && s.done > issued;
    let (allowed, unexpected): (Vec<_>, Vec<_>) =
        failures(&step).into_iter().partition(|s| in_flight(s));
    let last_answer = step
        .iter()
        .filter(|s| s.outcome.as_ref() == Ok(&victim.hostname))
        .map(|s| s.done)
        .max();
    eprintln!(
        "docker stop took {:?}; its address left the config {:?} after the stop was issued; \
         its last answer came {:?} after; {} requests in the step, {} failed in flight, \
         {} failed otherwise",
        stopped - issued,
        gone - issued,
        last_answer.map(|t| t.saturating_duration_since(issued)),
        step.len(),
        allowed.len(),
        unexpected.len()
    );
    assert!(
        after_stop.is_empty(),
        "the stopped container answered: {after_stop:?}"
    );
    assert!(unexpected.is_empty(), "failed requests: {unexpected:?}");
    assert!(gone - issued <= BUDGET, "stop: over the {BUDGET:?} budget");
    let web = web_containers(&demo, 5);
    wait_answered_by_exactly(&traffic, &hostnames(&web), Duration::from_secs(5)).unwrap();

    eprintln!("--- step 4b: one web container turns unhealthy");
    let sick = web[0].clone();
    let flag = std::env::temp_dir().join(format!("{}-unhealthy", demo.project));
    std::fs::write(&flag, "").unwrap();
    let dest = format!("{}:/tmp/unhealthy", sick.id);
    let flagged = Instant::now();
    // The image has no shell: the flag file goes in with `docker cp`.
    docker(&["cp", flag.to_str().unwrap(), &dest]).unwrap();
    let _ = std::fs::remove_file(&flag);
    let gone = wait_left_config(&demo, &sick, Duration::from_secs(10)).unwrap();
    let healthy: BTreeSet<_> = hostnames(&web[1..]);
    wait_answered_by_exactly(&traffic, &healthy, Duration::from_secs(5)).unwrap();
    eprintln!(
        "its address left the config {:?} after /health started failing (check every 1s)",
        gone - flagged
    );
    // It would stay unhealthy (nothing in the image can delete the flag): remove it.
    docker(&["rm", "-f", &sick.id]).unwrap();
    let web = web_containers(&demo, 4);

    eprintln!("--- step 5: kill the registry leader under traffic");
    let leader = demo.wait_for_leader(Duration::from_secs(10)).unwrap();
    let killed = Instant::now();
    docker(&["kill", &leader.id]).unwrap();
    let new_leader = demo.wait_for_leader(Duration::from_secs(10)).unwrap();
    let elected = Instant::now();
    assert_ne!(new_leader.id, leader.id);
    eprintln!(
        "killed leader {}; {} elected, all survivors agree {:?} after the kill",
        leader.name,
        new_leader.name,
        elected - killed
    );
    std::thread::sleep(Duration::from_secs(2).saturating_sub(killed.elapsed()));
    let during: Vec<_> = traffic
        .samples()
        .into_iter()
        .filter(|s| s.done >= killed)
        .collect();
    let failed = failures(&during);
    eprintln!(
        "{} requests since the kill, {} failed",
        during.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    let before: BTreeSet<_> = hostnames(&web);
    let t_up = Instant::now();
    // Scales only `web`: the killed server stays down. Compose starts the stopped web
    // container again and adds two.
    demo.scale_web(7).unwrap();
    let returned = Instant::now();
    let web = web_containers(&demo, 7);
    let new: Vec<_> = hostnames(&web).difference(&before).cloned().collect();
    assert_eq!(
        new.len(),
        3,
        "the stopped container restarted and two new ones"
    );
    let (_, at) = wait_for(Duration::from_secs(60), || {
        answered_by_exactly(&traffic.hosts_since(returned), &hostnames(&web))
    })
    .unwrap();
    eprintln!(
        "with a server down: all 7 (restarted or new: {new:?}) answered {:?} after `up --scale web=7` \
         returned (the command took {:?})",
        at - returned,
        returned - t_up
    );
    assert!(
        at - returned <= BUDGET,
        "scale after the kill: over the {BUDGET:?} budget"
    );

    eprintln!("--- step 5b: kill templater's registry agent, restart it");
    // registry-client is what templater (and registrator) query: SIGKILL it, keep the
    // traffic going on the last rendered config, start it again (same data dir).
    let client = demo.container("registry-client").unwrap();
    let killed = Instant::now();
    docker(&["kill", &client.id]).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    docker(&["start", &client.id]).unwrap();
    let before: BTreeSet<_> = hostnames(&web);
    demo.scale_web(8).unwrap();
    let returned = Instant::now();
    let web = web_containers(&demo, 8);
    let new: Vec<_> = hostnames(&web).difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "one new web container");
    let (_, at) = wait_for(Duration::from_secs(60), || {
        answered_by_exactly(&traffic.hosts_since(returned), &hostnames(&web))
    })
    .unwrap();
    let during: Vec<_> = traffic
        .samples()
        .into_iter()
        .filter(|s| s.done >= killed)
        .collect();
    let failed = failures(&during);
    eprintln!(
        "agent killed and restarted: templater rendered the new container, all 8 answered {:?} \
         after `up --scale web=8` returned; {} requests since the kill, {} failed",
        at - returned,
        during.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");

    eprintln!("--- step 6: compose down");
    let samples = demo.rt().block_on(traffic.stop());
    eprintln!(
        "{} requests in all, {} failed",
        samples.len(),
        failures(&samples).len()
    );
    demo.down().unwrap();
    let left = demo.leftovers().unwrap();
    assert!(left.is_empty(), "left behind by down -v: {left:?}");
}
