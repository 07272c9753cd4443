//! Orders per second for one hot event: N tasks place 1-ticket HOLDs through
//! `PgShop::place_hold` as fast as they can on a fresh database, with the event's stock in 1
//! row (every order waits for the previous one's commit) and split across 4, 16 and 32 rows.
//!
//! ```sh
//! cargo run --release -p flash-adapter-postgres --example hot_event -- [tasks] [seconds] [pool]
//! ```
//!
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`) must allow
//! `CREATE DATABASE`; the benchmark database is dropped at the end.

use flash_adapter_postgres::{PgShop, PoolSettings, lazy_pool, migrate};
use flash_core::domain::{Event, HoldOutcome, HoldRequest};
use flash_core::ports::{EventStore, OrderStore};
use flash_core::{EventId, OrderId, Timestamp, UserId};
use sqlx::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

type Failure = Box<dyn std::error::Error + Send + Sync>;

const NOW: Timestamp = Timestamp(1_762_164_000_000);

fn arg(n: usize, default: u64) -> Result<u64, Failure> {
    match std::env::args().nth(n) {
        Some(s) => Ok(s.parse()?),
        None => Ok(default),
    }
}

fn request(event: EventId) -> HoldRequest {
    HoldRequest {
        order_id: OrderId(Uuid::new_v4()),
        user: UserId(Uuid::new_v4()),
        event_id: event,
        qty: 1,
        idempotency_key: Uuid::new_v4().to_string(),
        fingerprint: "bench".into(),
        now: NOW,
        hold_expires_at: NOW.plus(Duration::from_secs(300)),
        key_expires_at: NOW.plus(Duration::from_secs(86_400)),
    }
}

async fn new_event(shop: &PgShop) -> Result<EventId, Failure> {
    let e = Event {
        name: "hot".into(),
        ..flash_testkit::fixtures::selling(NOW, 1_000_000, 4, 1000)
    };
    shop.create(e.clone()).await?;
    Ok(e.id)
}

async fn run(shop: Arc<PgShop>, tasks: u64, seconds: u64) -> Result<(f64, Duration), Failure> {
    let event = new_event(&shop).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (shop, stop, done) = (Arc::clone(&shop), Arc::clone(&stop), Arc::clone(&done));
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let created = matches!(
                    shop.place_hold(request(event)).await?,
                    HoldOutcome::Created(_)
                );
                if created {
                    done.fetch_add(1, Ordering::Relaxed);
                    latencies.push(t.elapsed());
                }
            }
            Ok::<_, Failure>(latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let p99 = latencies
        .get(latencies.len().saturating_mul(99) / 100)
        .copied()
        .unwrap_or_default();
    let count = done.load(Ordering::Relaxed);
    let held: i32 = sqlx::query_scalar("SELECT held_qty FROM events_with_stock WHERE id = $1")
        .bind(event.as_uuid())
        .fetch_one(shop.pool())
        .await?;
    if u64::try_from(held)? != count {
        return Err(format!("held {held} but counted {count} orders").into());
    }
    Ok((count as f64 / elapsed, p99))
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let tasks = arg(1, 64)?;
    let seconds = arg(2, 10)?;
    let pool_size = u32::try_from(arg(3, 32)?)?;
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let cut = admin
        .rfind('/')
        .ok_or("DATABASE_URL has no database name")?;
    let secs = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let name = format!("fpt_{secs}_bench");
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let settings = PoolSettings {
        max_connections: pool_size,
        min_connections: pool_size,
        acquire_timeout: Duration::from_secs(30),
        application_name: "flash-bench".into(),
    };
    let pool = lazy_pool(&format!("{}/{name}", &admin[..cut]), &settings)?;
    migrate(&pool).await?;
    println!("one hot event, {tasks} tasks, pool of {pool_size}, {seconds} s per run");
    for shards in [1, 4, 16, 32] {
        let shop = Arc::new(PgShop::with_default_queue(pool.clone()).with_stock_shards(shards));
        let (rate, p99) = run(shop, tasks, seconds).await?;
        println!("{shards:>3} stock rows: {rate:>8.0} orders/s   p99 {p99:?}");
    }
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}
