//! Bookkeeping that turns out-of-order completions into in-order progress.
//!
//! * [`AckTracker`]: AMQP delivery tags on one channel are 1, 2, 3, ...;
//!   Kafka delivery reports for them arrive in any order across partitions.
//!   A `multiple` ack of tag *n* acks every tag up to *n*, so it is only
//!   correct once every one of them is done: the tracker releases the
//!   highest tag below which everything is done.
//! * [`OffsetTracker`]: per Kafka partition, the offsets read and not yet
//!   confirmed by RabbitMQ. An offset may be stored only when it and every
//!   earlier offset of its partition are confirmed, since storing *n* means
//!   "everything before *n* + 1 is done" to the next reader of the group.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// Completed AMQP delivery tags → the next `multiple` ack.
#[derive(Debug, Default)]
pub struct AckTracker {
    /// Every tag up to here is done (and acked, once released).
    floor: u64,
    done: BTreeSet<u64>,
    released: u64,
}

impl AckTracker {
    /// Marks a delivery done (bridged, skipped or dead-lettered).
    pub fn complete(&mut self, tag: u64) {
        if tag > self.floor {
            self.done.insert(tag);
        }
        while self.done.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
    }

    /// The tag to ack with `multiple = true`, if the floor moved since the
    /// last call.
    pub fn take_ack(&mut self) -> Option<u64> {
        (self.floor > self.released).then(|| {
            self.released = self.floor;
            self.floor
        })
    }

    /// Tags done but waiting for an earlier one.
    pub fn waiting(&self) -> usize {
        self.done.len()
    }
}

/// Per-partition confirmed offsets → offsets safe to store.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    parts: HashMap<i32, VecDeque<(i64, bool)>>,
}

impl OffsetTracker {
    /// Records an offset just read. An offset not above the partition's last
    /// one means the partition was rewound (rebalance, restart): earlier
    /// entries are forgotten, since the group re-reads them anyway.
    pub fn track(&mut self, partition: i32, offset: i64) {
        let q = self.parts.entry(partition).or_default();
        if q.back().is_some_and(|(o, _)| *o >= offset) {
            q.clear();
        }
        q.push_back((offset, false));
    }

    /// Marks an offset confirmed. Unknown offsets (forgotten by a rewind)
    /// are ignored.
    pub fn confirm(&mut self, partition: i32, offset: i64) {
        if let Some(q) = self.parts.get_mut(&partition) {
            // Entries are sorted, so find it by binary search.
            if let Ok(i) = q.binary_search_by_key(&offset, |(o, _)| *o) {
                q[i].1 = true;
            }
        }
    }

    /// For each partition whose oldest entries are confirmed, pops them and
    /// returns the last confirmed offset (store `offset + 1` as "next").
    pub fn advance(&mut self) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        for (p, q) in self.parts.iter_mut() {
            let mut last = None;
            while let Some((o, true)) = q.front().copied() {
                last = Some(o);
                q.pop_front();
            }
            if let Some(o) = last {
                out.push((*p, o));
            }
        }
        out
    }

    /// Offsets read and not yet released.
    pub fn pending(&self) -> usize {
        self.parts.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_wait_for_the_gap() {
        let mut t = AckTracker::default();
        // TC0: 2 and 3 done before 1: nothing may be acked yet.
        t.complete(2);
        t.complete(3);
        assert_eq!(t.take_ack(), None);
        assert_eq!(t.waiting(), 2);
        // TC1: 1 arrives: one multiple ack covers 1..=3.
        t.complete(1);
        assert_eq!(t.take_ack(), Some(3));
        assert_eq!(t.take_ack(), None);
        // TC2: 5 waits for 4.
        t.complete(5);
        assert_eq!(t.take_ack(), None);
        t.complete(4);
        assert_eq!(t.take_ack(), Some(5));
        // TC3: a late duplicate completion changes nothing.
        t.complete(2);
        assert_eq!(t.take_ack(), None);
    }

    #[test]
    fn offsets_store_in_order_per_partition() {
        let mut t = OffsetTracker::default();
        for o in 10..14 {
            t.track(0, o);
        }
        t.track(1, 100);
        t.track(1, 101);
        // TC0: confirms out of order within and across partitions.
        t.confirm(0, 12);
        t.confirm(1, 101);
        assert!(t.advance().is_empty());
        t.confirm(0, 10);
        t.confirm(1, 100);
        let mut a = t.advance();
        a.sort();
        assert_eq!(a, vec![(0, 10), (1, 101)]);
        // TC1: 11 closes the gap up to 12; 13 still open.
        t.confirm(0, 11);
        assert_eq!(t.advance(), vec![(0, 12)]);
        assert_eq!(t.pending(), 1);
        // TC2: a rewind forgets the old entries; late confirms are ignored.
        t.track(0, 11);
        t.confirm(0, 13);
        assert!(t.advance().is_empty());
        t.confirm(0, 11);
        assert_eq!(t.advance(), vec![(0, 11)]);
    }
}
