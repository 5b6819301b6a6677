//! Consumer groups as the brokers see them: which groups exist (ListGroups),
//! who is in one and which partitions the coordinator gave each member
//! (DescribeGroups), where the group stands (OffsetFetch, the committed
//! offsets) and how far behind the log that is (ListOffsets, the watermarks).
//!
//! Lag here is the group's, not a reader's: `high watermark - committed
//! offset` per partition. A member that has read a message but not yet
//! committed it still counts it as lag, because that is what a restart of
//! the group would read again. With a commit interval of one second a busy
//! group therefore shows about a second's worth of messages even when it
//! keeps up.
//!
//! Everything goes through librdkafka with a bounded wait per call and one
//! deadline per operation: a broker that is down or does not answer yields
//! [`Error::Timeout`] (or, from the one-shot functions, the "unreachable"
//! error of [`KafkaConfig::ping`]) within the timeout, never a hang. The
//! committed offsets are read through a consumer that carries the group's
//! `group.id` but never subscribes, so asking does not join the group or
//! trigger a rebalance.

use super::KafkaConfig;
use crate::error::{Error, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tickbridge_model::Shutdown;

/// One member of a group, as the group coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    /// Member id the coordinator assigned at join.
    pub member_id: String,
    /// The member's `client.id` (tickbridge sets it to the instance name).
    pub client_id: String,
    /// Where the member connects from, as the broker saw it (`/127.0.0.1`).
    pub client_host: String,
    /// Partitions the coordinator's last assignment gave this member, by
    /// topic. Empty while the group rebalances, and for groups that do not
    /// use the consumer protocol (their assignment is not in that format).
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// A group, as DescribeGroups answers for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupDescription {
    /// Group id.
    pub group: String,
    /// Coordinator state: `Stable`, `PreparingRebalance`,
    /// `CompletingRebalance`, `Empty` (no members, offsets kept) or `Dead`.
    pub state: String,
    /// `consumer` for Kafka consumer groups.
    pub protocol_type: String,
    /// The partition assignor the members agreed on (`range`,
    /// `cooperative-sticky`, ...); empty when the group has no members.
    pub protocol: String,
    /// Current members.
    pub members: Vec<GroupMember>,
}

impl GroupDescription {
    /// Partitions of `topic` the coordinator has assigned, by member client
    /// id; members without any are left out.
    pub fn assigned(&self, topic: &str) -> BTreeMap<String, Vec<i32>> {
        self.members
            .iter()
            .filter_map(|m| {
                m.assignment
                    .get(topic)
                    .filter(|p| !p.is_empty())
                    .map(|p| (m.client_id.clone(), p.clone()))
            })
            .collect()
    }
}

/// One partition's lag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    /// Partition.
    pub partition: i32,
    /// Oldest offset still in the log (the low watermark).
    pub log_start: i64,
    /// Offset the next message will get (the high watermark).
    pub high_watermark: i64,
    /// The group's committed offset (the next offset it will read), or
    /// `None` when it never committed on this partition.
    pub committed: Option<i64>,
    /// `high_watermark - committed`, never negative. A partition the group
    /// has not committed on yet counts from the log start offset: all that
    /// is retained is still unread. (A group with `auto.offset.reset =
    /// latest` would skip it instead, but until it commits the broker
    /// cannot tell, and counting it is the safe side.)
    pub lag: i64,
}

/// A group's lag on one topic, with the coordinator's view of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupLag {
    /// Group id.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// DescribeGroups' answer, or `None` when no broker lists the group (it
    /// never had a member or a commit, or its offsets expired).
    pub description: Option<GroupDescription>,
    /// Every partition of the topic, in order.
    pub partitions: Vec<PartitionLag>,
    /// Sum of the partitions' lag.
    pub total: i64,
}

impl GroupLag {
    /// The coordinator's state, `Unknown` when the group is not listed.
    pub fn state(&self) -> &str {
        self.description
            .as_ref()
            .map_or("Unknown", |d| d.state.as_str())
    }

    /// Members of the group right now.
    pub fn member_count(&self) -> usize {
        self.description.as_ref().map_or(0, |d| d.members.len())
    }

    /// Lag by partition.
    pub fn by_partition(&self) -> BTreeMap<i32, i64> {
        self.partitions
            .iter()
            .map(|p| (p.partition, p.lag))
            .collect()
    }
}

/// Lag of one partition from its watermarks and the committed offset; see
/// [`PartitionLag::lag`].
pub fn partition_lag(log_start: i64, high_watermark: i64, committed: Option<i64>) -> i64 {
    let from = committed.unwrap_or(log_start).max(log_start);
    (high_watermark - from).max(0)
}

/// Every group the brokers know, each described (one DescribeGroups per
/// broker). Fails with the "unreachable" error when no broker answers.
pub async fn list_groups(cfg: &KafkaConfig, timeout: Duration) -> Result<Vec<GroupDescription>> {
    cfg.ping(timeout).await?;
    let cfg = cfg.clone();
    blocking(move || {
        let c: BaseConsumer = cfg.finish(cfg.client_config()).create()?;
        let deadline = Deadline::new(&cfg.brokers, timeout);
        fetch_groups(&c, None, &deadline)
    })
    .await
}

/// One group as its coordinator describes it: state, assignor, members and
/// the partitions each was given. [`Error::UnknownGroup`] when no broker
/// lists it.
pub async fn describe_group(
    cfg: &KafkaConfig,
    group: &str,
    timeout: Duration,
) -> Result<GroupDescription> {
    cfg.ping(timeout).await?;
    let (cfg, group) = (cfg.clone(), group.to_string());
    blocking(move || {
        let c: BaseConsumer = cfg.finish(cfg.client_config()).create()?;
        let deadline = Deadline::new(&cfg.brokers, timeout);
        fetch_groups(&c, Some(&group), &deadline)?
            .pop()
            .ok_or_else(|| unknown_group(&group, &cfg.brokers))
    })
    .await
}

/// One measurement of `group`'s lag on `topic`, for a look from outside the
/// group (a script, a test). [`Error::UnknownGroup`] when no broker lists
/// the group; a reader that watches its own group uses a [`LagProbe`].
pub async fn group_lag(
    cfg: &KafkaConfig,
    group: &str,
    topic: &str,
    timeout: Duration,
) -> Result<GroupLag> {
    cfg.ping(timeout).await?;
    let lag = LagProbe::new(cfg, group, topic, timeout)?.sample().await?;
    if lag.description.is_none() {
        return Err(unknown_group(group, &cfg.brokers));
    }
    Ok(lag)
}

/// Measures one group's lag on one topic again and again with one client,
/// for a reader that reports its own group's lag on an interval.
///
/// The client carries the group's `group.id` (OffsetFetch needs it) and
/// never subscribes, so it does not join the group. Cheap to clone; clones
/// share the client.
#[derive(Clone)]
pub struct LagProbe {
    inner: Arc<ProbeInner>,
}

struct ProbeInner {
    consumer: BaseConsumer,
    brokers: String,
    group: String,
    topic: String,
    timeout: Duration,
}

impl LagProbe {
    /// A probe for `group` on `topic`; each [`LagProbe::sample`] takes at
    /// most about `timeout`. Creating it does not contact the brokers.
    pub fn new(cfg: &KafkaConfig, group: &str, topic: &str, timeout: Duration) -> Result<Self> {
        let mut c = cfg.client_config();
        c.set("group.id", group)
            .set("client.id", format!("{group}-lag-probe"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let consumer: BaseConsumer = cfg.finish(c).create()?;
        Ok(Self {
            inner: Arc::new(ProbeInner {
                consumer,
                brokers: cfg.brokers.clone(),
                group: group.to_string(),
                topic: topic.to_string(),
                timeout,
            }),
        })
    }

    /// The group this probe measures.
    pub fn group(&self) -> &str {
        &self.inner.group
    }

    /// The topic this probe measures.
    pub fn topic(&self) -> &str {
        &self.inner.topic
    }

    /// One measurement, on a blocking thread: DescribeGroups, the topic's
    /// partitions, the committed offsets and every partition's watermarks.
    /// An unlisted group is not an error here (its `description` is `None`
    /// and every partition counts from its log start); a topic that does
    /// not exist is [`Error::Config`], a silent broker [`Error::Timeout`].
    pub async fn sample(&self) -> Result<GroupLag> {
        let inner = self.inner.clone();
        blocking(move || inner.sample()).await
    }

    /// Samples at once and then once per `every` until `stop` fires, handing
    /// each result to `record`: the one loop of every reader that reports
    /// its own group's lag (the consumer's stats line, the dashboard's lag
    /// gauge). A late tick is delayed rather than bunched; a sample in flight
    /// when `stop` fires is abandoned (its blocking call is bounded by the
    /// probe's timeout, so only the wait for it ends).
    pub async fn sample_every(
        &self,
        every: Duration,
        stop: &Shutdown,
        mut record: impl FnMut(Result<GroupLag>),
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let r = tokio::select! {
                _ = stop.cancelled() => return,
                r = self.sample() => r,
            };
            record(r);
        }
    }
}

impl ProbeInner {
    fn sample(&self) -> Result<GroupLag> {
        let deadline = Deadline::new(&self.brokers, self.timeout);
        let c = &self.consumer;
        let description = fetch_groups(c, Some(&self.group), &deadline)?.pop();

        let metadata = deadline.call("metadata", |t| c.fetch_metadata(Some(&self.topic), t))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.topic && t.error().is_none())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        if partitions.is_empty() {
            return Err(Error::Config(format!(
                "Kafka topic {:?} does not exist on {}",
                self.topic, self.brokers
            )));
        }

        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(&self.topic, *p, Offset::Invalid)?;
        }
        let committed = deadline.call("OffsetFetch", |t| c.committed_offsets(tpl.clone(), t))?;
        let mut by_partition = BTreeMap::new();
        for e in committed.elements_for_topic(&self.topic) {
            e.error()?;
            if let Offset::Offset(n) = e.offset() {
                by_partition.insert(e.partition(), n);
            }
        }

        let mut out = Vec::with_capacity(partitions.len());
        for p in partitions {
            let (lo, hi) =
                deadline.call("ListOffsets", |t| c.fetch_watermarks(&self.topic, p, t))?;
            let committed = by_partition.get(&p).copied();
            out.push(PartitionLag {
                partition: p,
                log_start: lo,
                high_watermark: hi,
                committed,
                lag: partition_lag(lo, hi, committed),
            });
        }
        out.sort_by_key(|p| p.partition);
        // Error events of a silent broker queue up on a client nobody polls.
        for _ in 0..64 {
            if c.poll(Duration::ZERO).is_none() {
                break;
            }
        }
        Ok(GroupLag {
            group: self.group.clone(),
            topic: self.topic.clone(),
            description,
            total: out.iter().map(|p| p.lag).sum(),
            partitions: out,
        })
    }
}

/// ListGroups then DescribeGroups on every broker (librdkafka's
/// `rd_kafka_list_groups`), filtered to `group` when given. A group the
/// coordinator reports as `Dead` does not exist any more and is left out.
fn fetch_groups(
    c: &BaseConsumer,
    group: Option<&str>,
    deadline: &Deadline,
) -> Result<Vec<GroupDescription>> {
    let list = deadline.call("ListGroups/DescribeGroups", |t| {
        c.fetch_group_list(group, t)
    })?;
    Ok(list
        .groups()
        .iter()
        .filter(|g| g.state() != "Dead")
        .map(|g| GroupDescription {
            group: g.name().to_string(),
            state: g.state().to_string(),
            protocol_type: g.protocol_type().to_string(),
            protocol: g.protocol().to_string(),
            members: g
                .members()
                .iter()
                .map(|m| GroupMember {
                    member_id: m.id().to_string(),
                    client_id: m.client_id().to_string(),
                    client_host: m.client_host().to_string(),
                    assignment: match (g.protocol_type(), m.assignment()) {
                        ("consumer", Some(bytes)) => {
                            parse_assignment(bytes).unwrap_or_else(|why| {
                                tracing::warn!(group = g.name(), member = m.id(), %why, "cannot read a member's assignment");
                                BTreeMap::new()
                            })
                        }
                        _ => BTreeMap::new(),
                    },
                })
                .collect(),
        })
        .collect())
}

/// Decodes a consumer-protocol member assignment (versions 0 to 3 share the
/// layout): `version: i16`, then `[topic: string16, [partition: i32]]`, then
/// user data, which is ignored.
pub fn parse_assignment(bytes: &[u8]) -> std::result::Result<BTreeMap<String, Vec<i32>>, String> {
    struct Reader<'a>(&'a [u8]);
    impl Reader<'_> {
        fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
            if self.0.len() < n {
                return Err(format!(
                    "truncated: wanted {n} more bytes, {} left",
                    self.0.len()
                ));
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }
        fn i16(&mut self) -> std::result::Result<i16, String> {
            let b = self.take(2)?;
            Ok(i16::from_be_bytes([b[0], b[1]]))
        }
        fn i32(&mut self) -> std::result::Result<i32, String> {
            let b = self.take(4)?;
            Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
        /// An array length; -1 (null) reads as empty, anything that cannot
        /// fit in what is left is malformed (no allocation from a bad count).
        fn len(&mut self, min_item: usize) -> std::result::Result<usize, String> {
            let n = self.i32()?;
            if n < 0 {
                return Ok(0);
            }
            let n = n as usize;
            if n.saturating_mul(min_item) > self.0.len() {
                return Err(format!(
                    "array of {n} does not fit in {} bytes",
                    self.0.len()
                ));
            }
            Ok(n)
        }
    }
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if version < 0 {
        return Err(format!("version {version}"));
    }
    let mut out = BTreeMap::new();
    for _ in 0..r.len(6)? {
        let name_len = r.i16()?;
        let name = if name_len < 0 {
            String::new()
        } else {
            String::from_utf8(r.take(name_len as usize)?.to_vec())
                .map_err(|_| "topic name is not UTF-8".to_string())?
        };
        let mut parts = Vec::new();
        for _ in 0..r.len(4)? {
            parts.push(r.i32()?);
        }
        parts.sort_unstable();
        out.entry(name).or_insert_with(Vec::new).extend(parts);
    }
    Ok(out)
}

fn unknown_group(group: &str, brokers: &str) -> Error {
    Error::UnknownGroup {
        group: group.to_string(),
        brokers: brokers.to_string(),
    }
}

/// Runs librdkafka's blocking calls off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Config(format!("Kafka admin task failed: {e}")))?
}

/// One deadline shared by the calls of an operation, so a silent broker
/// costs the operation's timeout once, not once per call.
struct Deadline<'a> {
    brokers: &'a str,
    timeout: Duration,
    end: Instant,
}

impl<'a> Deadline<'a> {
    fn new(brokers: &'a str, timeout: Duration) -> Self {
        Self {
            brokers,
            timeout,
            end: Instant::now() + timeout,
        }
    }

    /// Runs `f` with what is left of the deadline; a timeout or a lost
    /// connection becomes [`Error::Timeout`] naming the brokers and the
    /// request.
    fn call<T>(
        &self,
        what: &str,
        f: impl FnOnce(Duration) -> std::result::Result<T, KafkaError>,
    ) -> Result<T> {
        let left = self.end.saturating_duration_since(Instant::now());
        let timed_out = || Error::Timeout {
            what: format!("Kafka at {} ({what})", self.brokers),
            secs: self.timeout.as_secs().max(1),
        };
        if left.is_zero() {
            return Err(timed_out());
        }
        f(left).map_err(|e| match e.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::NotCoordinator,
            ) => timed_out(),
            _ => Error::Kafka(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes an assignment the way the consumer protocol does.
    fn encode(version: i16, topics: &[(&str, &[i32])], user_data: &[u8]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend((topics.len() as i32).to_be_bytes());
        for (t, parts) in topics {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((parts.len() as i32).to_be_bytes());
            for p in *parts {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((user_data.len() as i32).to_be_bytes());
        b.extend(user_data);
        b
    }

    #[test]
    fn assignments_decode() {
        struct TestCase {
            input: Vec<u8>,
            expected: std::result::Result<Vec<(&'static str, Vec<i32>)>, &'static str>,
        }
        let cases = [
            // TC0: one topic, partitions out of order, version 0
            TestCase {
                input: encode(0, &[("ticks", &[2, 0])], b""),
                expected: Ok(vec![("ticks", vec![0, 2])]),
            },
            // TC1: two topics, version 3, user data ignored
            TestCase {
                input: encode(3, &[("a", &[1]), ("b", &[0, 1, 2])], b"sticky"),
                expected: Ok(vec![("a", vec![1]), ("b", vec![0, 1, 2])]),
            },
            // TC2: nothing assigned
            TestCase {
                input: encode(1, &[], b""),
                expected: Ok(vec![]),
            },
            // TC3: cut in the middle of a topic name
            TestCase {
                input: encode(0, &[("ticks", &[0, 1])], b"")[..14].to_vec(),
                expected: Err("truncated"),
            },
            // TC4: a partition count far beyond the bytes left
            TestCase {
                input: {
                    let mut b = encode(0, &[("t", &[])], b"");
                    b[9..13].copy_from_slice(&i32::MAX.to_be_bytes());
                    b
                },
                expected: Err("does not fit"),
            },
            // TC5: empty input
            TestCase {
                input: vec![],
                expected: Err("truncated"),
            },
        ];
        for (i, tc) in cases.iter().enumerate() {
            match (parse_assignment(&tc.input), &tc.expected) {
                (Ok(got), Ok(want)) => {
                    let want: BTreeMap<String, Vec<i32>> = want
                        .iter()
                        .map(|(t, p)| (t.to_string(), p.clone()))
                        .collect();
                    assert_eq!(got, want, "TC{i}");
                }
                (Err(e), Err(word)) => assert!(e.contains(word), "TC{i}: {e}"),
                (got, _) => panic!("TC{i}: {got:?}"),
            }
        }
    }

    #[test]
    fn lag_counts_from_the_commit_or_the_log_start() {
        // TC0: committed in the middle
        assert_eq!(partition_lag(0, 100, Some(60)), 40);
        // TC1: never committed: everything retained
        assert_eq!(partition_lag(20, 100, None), 80);
        // TC2: committed below a log start that retention moved past
        assert_eq!(partition_lag(50, 100, Some(10)), 50);
        // TC3: committed at the end
        assert_eq!(partition_lag(0, 100, Some(100)), 0);
        // TC4: a commit ahead of the watermark (read before the watermark
        // query answered) is no lag, not negative lag
        assert_eq!(partition_lag(0, 100, Some(105)), 0);
    }
}
