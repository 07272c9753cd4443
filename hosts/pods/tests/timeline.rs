//! The monitoring timeline on the pods: every gateway and api pod adds its own counts to the
//! shared one-second records in Redis, so whichever api pod answers, an admin reads the same
//! series: here, joins made through two gateways, read from two api pods.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// `second → (arrivals, requests)` of one answer.
fn by_second(v: &Value) -> BTreeMap<u64, (Value, Value)> {
    let t = v["t"].as_array().cloned().unwrap_or_default();
    t.iter()
        .enumerate()
        .filter_map(|(i, s)| {
            Some((
                s.as_u64()?,
                (
                    v["arrivalsPerSecond"][i].clone(),
                    v["requestsPerSecond"][i].clone(),
                ),
            ))
        })
        .collect()
}

fn sum(v: &Value, key: &str) -> u64 {
    v[key]
        .as_array()
        .map_or(0, |a| a.iter().filter_map(Value::as_u64).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_pods_answer_the_same_timeline_of_joins_through_two_gateways() {
    let env = Env::new("timeline");
    let gateways = [Pod::gateway(&env, &[]), Pod::gateway(&env, &[])];
    let apis = [Pod::api(&env, &[]), Pod::api(&env, &[])];
    let http = Http::new();
    let (admin, event) = http
        .onsale_event(&gateways[0].url, &apis[0].url, 100, 1)
        .await;
    for i in 0..6 {
        let gateway = &gateways[i % 2].url;
        let token = http.register(gateway, &format!("timeline{i:02}")).await;
        http.ticket(gateway, &token, &event).await;
    }
    let read = |api: &str| {
        let (http, admin, url) = (
            http.clone(),
            admin.clone(),
            format!("{api}/events/admin/timeline?line={event}"),
        );
        async move {
            let (s, v) = http.get(url, Some(&admin)).await;
            assert_eq!(s, 200, "timeline: {v}");
            v
        }
    };
    // Every join, from both gateways, is in the records either api pod reads.
    let first = eventually(
        "the six joins on the timeline",
        Duration::from_secs(60),
        || {
            let read = read(&apis[0].url);
            async move {
                let v = read.await;
                (sum(&v, "arrivalsPerSecond") == 6).then_some(v)
            }
        },
    )
    .await;
    let second = read(&apis[1].url).await;
    assert_eq!(sum(&second, "arrivalsPerSecond"), 6, "{second}");
    let (a, b) = (by_second(&first), by_second(&second));
    let common: Vec<u64> = a.keys().filter(|s| b.contains_key(s)).copied().collect();
    assert!(!common.is_empty());
    for s in common {
        assert_eq!(a[&s], b[&s], "second {s} differs between the api pods");
    }
    // Both pods' requests are added up: the gateways' joins are counted beside the api's reads.
    assert!(sum(&second, "requestsPerSecond") >= 6 + 6, "{second}");
    // Not an admin: refused on every pod.
    let buyer = http.login(&gateways[0].url, "timeline00").await;
    let (s, _) = http
        .get(
            format!("{}/events/admin/timeline", apis[1].url),
            Some(&buyer),
        )
        .await;
    assert_eq!(s, 403);
}
