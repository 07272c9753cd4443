//! Redis and RabbitMQ restarted mid-sale (one test, run serially: it restarts shared services).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn redis_up() -> bool {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "ping"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
}

fn start_redis() {
    run(
        "redis-server",
        &[
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
    );
}

/// Restarts the service even if the test fails half-way.
struct RestoreRedis;

impl Drop for RestoreRedis {
    fn drop(&mut self) {
        if !redis_up() {
            start_redis();
        }
    }
}

struct RestoreRabbit;

impl Drop for RestoreRabbit {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").output();
    }
}

async fn enqueue_status(http: &Http, gw: &str, token: &str, event: &str) -> u16 {
    http.enqueue(gw, token, event).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_system_rides_out_a_redis_restart_and_a_rabbitmq_restart_mid_sale() {
    let s = Sale::start(Env::new("restarts").paying_within(100, 300), 100, 1).await;
    let (env, gw, api, http, event) = (&s.env, &s.gw, &s.api, &s.http, &s.event);

    // --- Redis goes away: clear 503s while it is down, recovery on its own.
    let token = http.register(&gw.url, "redis01").await;
    assert_eq!(enqueue_status(http, &gw.url, &token, event).await, 201);
    {
        let _restore = RestoreRedis;
        run("redis-cli", &["-h", "127.0.0.1", "shutdown", "nosave"]);
        let (s, body) = http.enqueue(&gw.url, &token, event).await;
        assert_eq!(s, 503, "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("unavailable")),
            "{body}"
        );
        assert_eq!(http.get(format!("{}/ready", gw.url), None).await.0, 503);
        // Liveness does not depend on Redis: the pod is not restarted for a dependency blip.
        assert_eq!(http.get(format!("{}/live", gw.url), None).await.0, 200);
        start_redis();
        eventually("Redis back", Duration::from_secs(20), || async {
            redis_up().then_some(())
        })
        .await;
    }
    eventually("enqueue works again", Duration::from_secs(30), || async {
        (enqueue_status(http, &gw.url, &token, event).await == 201).then_some(())
    })
    .await;
    assert_eq!(http.get(format!("{}/ready", gw.url), None).await.0, 200);
    // The api pod's own Redis connection comes back on its own too (its first command after the
    // restart may still meet the old one): wait for its readiness, not just the gateway's.
    eventually("the api ready again", Duration::from_secs(30), || async {
        (http.get(format!("{}/ready", api.url), None).await.0 == 200).then_some(())
    })
    .await;

    // --- RabbitMQ restarts while payments are in flight: none lost, none applied twice.
    let mut buyers = Vec::new();
    for i in 0..20 {
        let t = http.register(&gw.url, &format!("rabbit{i:02}")).await;
        let order = http.hold_one(&gw.url, &api.url, &t, event).await;
        buyers.push((t, order));
    }
    {
        let _restore = RestoreRabbit;
        for (t, o) in &buyers[..10] {
            let (s, p) = http.pay(&api.url, t, o).await;
            assert_eq!(s, 201, "{p}");
        }
        run("rabbitmqctl", &["stop_app"]);
        // Payments are still accepted: they wait in the transactional outbox.
        for (t, o) in &buyers[10..] {
            let (s, p) = http.pay(&api.url, t, o).await;
            assert_eq!(s, 201, "{p}");
        }
        run("rabbitmqctl", &["start_app"]);
    }
    for (t, o) in &buyers {
        eventually(
            "PAID after the broker restart",
            Duration::from_secs(90),
            || async {
                let (_, ord) = http.get(format!("{}/orders/{o}", api.url), Some(t)).await;
                (ord["status"] == "PAID").then_some(())
            },
        )
        .await;
    }
    let db = &env.db.name;
    assert_eq!(
        psql_value(db, "SELECT COUNT(*) FROM orders WHERE status = 'PAID'"),
        "20"
    );
    let wrong = psql_value(
        db,
        "SELECT COUNT(*) FROM orders o WHERE (SELECT COUNT(*) FROM payments p WHERE p.order_id = o.id AND p.status = 'OK') <> 1",
    );
    assert_eq!(wrong, "0", "every PAID order has exactly one OK payment");
    assert_eq!(
        psql_value(
            db,
            &format!("SELECT sold_qty FROM events_with_stock WHERE id = '{event}'")
        ),
        "20"
    );
}
