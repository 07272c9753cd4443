//! The monitoring timeline in process: a ring of [`TIMELINE_SECONDS`] one-second records.

use crate::lock;
use async_trait::async_trait;
use flash_core::domain::{TIMELINE_SECONDS, TimelineRecord};
use flash_core::ports::{StoreResult, TimelineStore};
use std::collections::VecDeque;
use std::sync::Mutex;

/// [`TimelineStore`] in memory: records oldest first, never more than [`TIMELINE_SECONDS`]; a
/// record more than that many seconds older than the newest is dropped when a newer one is
/// written.
#[derive(Debug, Default)]
pub struct MemoryTimeline {
    records: Mutex<VecDeque<TimelineRecord>>,
}

impl MemoryTimeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records kept (tests check the bound).
    pub fn len(&self) -> usize {
        self.records.lock().map_or(0, |r| r.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl TimelineStore for MemoryTimeline {
    async fn record(
        &self,
        second: u64,
        adds: &[(String, u64)],
        levels: &[(String, u64)],
    ) -> StoreResult<()> {
        let mut records = lock(&self.records, "timeline")?;
        let newest = records.back().map_or(second, |r| r.second.max(second));
        if newest - second >= TIMELINE_SECONDS {
            // Older than anything kept: already forgotten.
            return Ok(());
        }
        // Records stay sorted by second; a late writer lands near the back.
        let at = records.partition_point(|r| r.second < second);
        if records.get(at).is_none_or(|r| r.second != second) {
            records.insert(
                at,
                TimelineRecord {
                    second,
                    ..TimelineRecord::default()
                },
            );
        }
        let Some(record) = records.get_mut(at) else {
            return Ok(());
        };
        for (name, n) in adds {
            let v = record.fields.entry(name.clone()).or_insert(0);
            *v = v.saturating_add(*n);
        }
        for (name, n) in levels {
            record.fields.insert(name.clone(), *n);
        }
        while records
            .front()
            .is_some_and(|r| newest - r.second >= TIMELINE_SECONDS)
        {
            records.pop_front();
        }
        Ok(())
    }

    async fn read(&self, from: u64, to: u64) -> StoreResult<Vec<TimelineRecord>> {
        let from = from.max(to.saturating_sub(TIMELINE_SECONDS - 1));
        let records = lock(&self.records, "timeline")?;
        Ok(records
            .iter()
            .filter(|r| r.second >= from && r.second <= to)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, n: u64) -> Vec<(String, u64)> {
        vec![(name.to_owned(), n)]
    }

    #[tokio::test]
    async fn adds_sum_levels_replace_and_the_ring_never_exceeds_its_size() {
        let t = MemoryTimeline::new();
        t.record(100, &one("site|requests", 2), &one("g|queued", 5))
            .await
            .unwrap();
        t.record(100, &one("site|requests", 3), &one("g|queued", 7))
            .await
            .unwrap();
        let r = t.read(0, 200).await.unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].fields["site|requests"], 5);
        assert_eq!(r[0].fields["g|queued"], 7);

        for s in 101..101 + 3 * TIMELINE_SECONDS {
            t.record(s, &one("site|requests", 1), &[]).await.unwrap();
            assert!(t.len() as u64 <= TIMELINE_SECONDS);
        }
        let newest = 100 + 3 * TIMELINE_SECONDS;
        assert_eq!(t.len() as u64, TIMELINE_SECONDS);
        let all = t.read(0, newest).await.unwrap();
        assert_eq!(all.len() as u64, TIMELINE_SECONDS);
        assert_eq!(all.first().unwrap().second, newest - TIMELINE_SECONDS + 1);
        assert_eq!(all.last().unwrap().second, newest);
        // A second older than the ring is not stored; a late one inside it is, in order.
        t.record(5, &one("x", 1), &[]).await.unwrap();
        assert!(t.read(0, 10).await.unwrap().is_empty());
        t.record(newest - 10, &one("late", 1), &[]).await.unwrap();
        let late = t.read(newest - 10, newest - 10).await.unwrap();
        assert_eq!(late[0].fields["late"], 1);
        assert_eq!(late[0].fields["site|requests"], 1);
        assert_eq!(t.len() as u64, TIMELINE_SECONDS);
    }
}
