//! A position in the topic over every partition: the id of each SSE event.
//!
//! An event's id is `topic/partition:next,partition:next,...`, where `next`
//! is the offset of the first message of that partition the client has
//! *not* been sent yet (`ticks/0:124,1:457,2:790`). Offsets of one partition
//! are contiguous and ordered, so this one line says exactly which messages
//! a client has: every message of partition `p` below `next`. A browser
//! that reconnects sends it back as `Last-Event-ID`, and the dashboard reads
//! Kafka from exactly there: nothing missed, nothing twice.
//!
//! Every partition is listed, also those with nothing sent yet, so a resume
//! never has to guess where a partition starts.

use std::collections::BTreeMap;
use std::fmt;

/// Most partitions a cursor may name; bounds the parsing of untrusted ids.
pub const MAX_PARTITIONS: usize = 4096;
/// Longest `Last-Event-ID` accepted.
pub const MAX_TEXT: usize = 64 * 1024;

/// Next offset to send, per partition, of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor {
    /// Topic the offsets belong to.
    pub topic: String,
    /// Partition → first offset not yet sent.
    pub next: BTreeMap<i32, i64>,
}

/// How a client's cursor relates to another one (the live position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Same position everywhere.
    Equal,
    /// Behind on some partitions, never ahead.
    Behind,
    /// Ahead on some partition, or naming a partition the other lacks:
    /// not a position this topic has reached.
    Ahead,
}

impl Cursor {
    /// An empty cursor of `topic`.
    pub fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            next: BTreeMap::new(),
        }
    }

    /// Records that the message at `offset` of `partition` was sent.
    pub fn advance(&mut self, partition: i32, offset: i64) {
        let n = self.next.entry(partition).or_insert(0);
        *n = (*n).max(offset + 1);
    }

    /// Compares this (a client's) cursor with `live`.
    pub fn order(&self, live: &Cursor) -> Order {
        let mut behind = false;
        for (p, n) in &self.next {
            match live.next.get(p) {
                None => return Order::Ahead,
                Some(l) if n > l => return Order::Ahead,
                Some(l) if n < l => behind = true,
                _ => {}
            }
        }
        for p in live.next.keys() {
            if !self.next.contains_key(p) {
                behind = true;
            }
        }
        if behind {
            Order::Behind
        } else {
            Order::Equal
        }
    }

    /// Parses an event id. The reason is meant for a 400 response.
    pub fn parse(text: &str) -> Result<Cursor, String> {
        if text.len() > MAX_TEXT {
            return Err(format!("event id longer than {MAX_TEXT} bytes"));
        }
        let (topic, list) = text
            .rsplit_once('/')
            .ok_or_else(|| format!("event id {text:?} is not topic/partition:offset,..."))?;
        if topic.is_empty() {
            return Err(format!("event id {text:?} has no topic"));
        }
        let mut next = BTreeMap::new();
        for part in list.split(',').filter(|s| !s.is_empty()) {
            let (p, o) = part
                .split_once(':')
                .ok_or_else(|| format!("{part:?} in event id is not partition:offset"))?;
            let p: i32 = p
                .parse()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| format!("partition {p:?} in event id is not a number from 0"))?;
            let o: i64 = o
                .parse()
                .ok()
                .filter(|o| *o >= 0)
                .ok_or_else(|| format!("offset {o:?} in event id is not a number from 0"))?;
            if next.insert(p, o).is_some() {
                return Err(format!("partition {p} named twice in event id"));
            }
            if next.len() > MAX_PARTITIONS {
                return Err(format!(
                    "event id names more than {MAX_PARTITIONS} partitions"
                ));
            }
        }
        if next.is_empty() {
            return Err(format!("event id {text:?} names no partition"));
        }
        Ok(Cursor {
            topic: topic.to_string(),
            next,
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.topic)?;
        for (i, (p, n)) in self.next.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}:{n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(topic: &str, parts: &[(i32, i64)]) -> Cursor {
        Cursor {
            topic: topic.into(),
            next: parts.iter().copied().collect(),
        }
    }

    #[test]
    fn round_trip_and_errors() {
        struct TestCase {
            input: &'static str,
            expected: Result<Cursor, &'static str>,
        }
        let cases = [
            // TC0: three partitions
            TestCase {
                input: "ticks/0:124,1:457,2:790",
                expected: Ok(c("ticks", &[(0, 124), (1, 457), (2, 790)])),
            },
            // TC1: a topic with a slash keeps it
            TestCase {
                input: "a/b/0:1",
                expected: Ok(c("a/b", &[(0, 1)])),
            },
            // TC2: no partition list
            TestCase {
                input: "ticks",
                expected: Err("not topic/partition"),
            },
            // TC3: negative offset
            TestCase {
                input: "ticks/0:-1",
                expected: Err("offset"),
            },
            // TC4: twice
            TestCase {
                input: "ticks/0:1,0:2",
                expected: Err("twice"),
            },
            // TC5: empty list
            TestCase {
                input: "ticks/",
                expected: Err("no partition"),
            },
            // TC6: garbage partition
            TestCase {
                input: "ticks/x:1",
                expected: Err("partition"),
            },
        ];
        for (i, tc) in cases.iter().enumerate() {
            match (Cursor::parse(tc.input), &tc.expected) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(&got, want, "TC{i}");
                    assert_eq!(got.to_string(), tc.input, "TC{i}");
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "TC{i}: {e}"),
                (got, _) => panic!("TC{i}: {got:?}"),
            }
        }
    }

    #[test]
    fn ordering() {
        let live = c("t", &[(0, 10), (1, 5)]);
        assert_eq!(c("t", &[(0, 10), (1, 5)]).order(&live), Order::Equal);
        assert_eq!(c("t", &[(0, 3), (1, 5)]).order(&live), Order::Behind);
        assert_eq!(c("t", &[(0, 10)]).order(&live), Order::Behind);
        assert_eq!(c("t", &[(0, 11), (1, 0)]).order(&live), Order::Ahead);
        assert_eq!(c("t", &[(0, 1), (7, 0)]).order(&live), Order::Ahead);
        let mut x = c("t", &[(0, 3)]);
        x.advance(0, 3);
        x.advance(0, 1);
        x.advance(1, 0);
        assert_eq!(x, c("t", &[(0, 4), (1, 1)]));
    }
}
