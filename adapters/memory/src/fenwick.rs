//! A growable Fenwick (binary indexed) tree over a queue's sequence numbers, so that a
//! position ("QUEUED tickets up to mine") is a prefix sum in O(log n) instead of a range scan.

/// Counts per sequence number in `[base, base + len)`. Sequence numbers are appended in order
/// (the queue hands them out), and the prefix before the oldest waiting ticket is cut away by
/// [`Fenwick::rebuild`] once it is at least half the tree, which keeps memory proportional to the
/// live part of the line at O(1) amortised cost per ticket.
#[derive(Debug, Clone)]
pub(crate) struct Fenwick {
    base: u64,
    /// 1-based; `tree[0]` is unused.
    tree: Vec<i64>,
}

fn lowbit(i: usize) -> usize {
    i & i.wrapping_neg()
}

impl Fenwick {
    pub(crate) fn new(base: u64) -> Self {
        Fenwick {
            base,
            tree: vec![0],
        }
    }

    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    pub(crate) fn len(&self) -> usize {
        self.tree.len() - 1
    }

    /// The sequence number the next [`Fenwick::push`] stands for.
    pub(crate) fn end(&self) -> u64 {
        self.base + self.len() as u64
    }

    fn prefix_index(&self, mut i: usize) -> i64 {
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i];
            i &= i - 1;
        }
        sum
    }

    /// Appends the count of sequence number `end()`.
    pub(crate) fn push(&mut self, value: i64) {
        let i = self.tree.len();
        // tree[i] covers (i - lowbit(i), i]: the new value plus the existing part of that range.
        let covered = self.prefix_index(i - 1) - self.prefix_index(i - lowbit(i));
        self.tree.push(value + covered);
    }

    /// Adds `delta` at `seq`; a sequence number outside the tree is ignored.
    pub(crate) fn add(&mut self, seq: u64, delta: i64) {
        if seq < self.base || seq >= self.end() {
            return;
        }
        let n = self.len();
        let mut i = (seq - self.base) as usize + 1;
        while i <= n {
            self.tree[i] += delta;
            i += lowbit(i);
        }
    }

    /// Sum of the counts of every sequence number `<= seq`.
    pub(crate) fn count_through(&self, seq: u64) -> i64 {
        if seq < self.base {
            return 0;
        }
        let i = usize::try_from(seq - self.base + 1)
            .unwrap_or(usize::MAX)
            .min(self.len());
        self.prefix_index(i)
    }

    /// A tree for `[base, end)` with count 1 at each of `ones` (ascending, within the range), in
    /// O(end - base).
    pub(crate) fn rebuild(base: u64, end: u64, ones: impl Iterator<Item = u64>) -> Self {
        let n = usize::try_from(end.saturating_sub(base)).unwrap_or(0);
        let mut tree = vec![0i64; n + 1];
        for seq in ones {
            if seq >= base && seq < end {
                tree[(seq - base) as usize + 1] += 1;
            }
        }
        for i in 1..=n {
            let j = i + lowbit(i);
            if j <= n {
                tree[j] += tree[i];
            }
        }
        Fenwick { base, tree }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn prefix_sums_match_a_naive_count_through_pushes_removals_and_rebuilds() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut f = Fenwick::new(1);
        let mut naive: Vec<(u64, i64)> = Vec::new();
        for round in 0..3000u64 {
            let seq = f.end();
            f.push(1);
            naive.push((seq, 1));
            if rng.random_bool(0.4) {
                let k = rng.random_range(0..naive.len());
                if naive[k].1 == 1 {
                    naive[k].1 = 0;
                    f.add(naive[k].0, -1);
                }
            }
            if round % 500 == 499 {
                let head = naive
                    .iter()
                    .find(|(_, v)| *v == 1)
                    .map_or(f.end(), |(s, _)| *s);
                let ones: Vec<u64> = naive
                    .iter()
                    .filter(|(_, v)| *v == 1)
                    .map(|(s, _)| *s)
                    .collect();
                f = Fenwick::rebuild(head, f.end(), ones.into_iter());
                naive.retain(|(s, _)| *s >= head);
            }
            if naive.is_empty() {
                continue;
            }
            let probe = naive[rng.random_range(0..naive.len())].0;
            let expected: i64 = naive
                .iter()
                .filter(|(s, _)| *s <= probe)
                .map(|(_, v)| v)
                .sum();
            assert_eq!(
                f.count_through(probe),
                expected,
                "round {round}, seq {probe}"
            );
        }
        assert_eq!(f.count_through(0), 0);
    }
}
