//! The Kafka reader's own group, as the brokers see it: lag per partition
//! and in total, member count and coordinator state, sampled on the stats
//! interval by a task of its own (never on the message path) and published
//! as Prometheus gauges, in the stats line and in the summary.
//!
//! Lag is the group's committed lag ([`tickbridge_broker::kafka::groups`]):
//! what a restart of the whole group would still have to read. The last
//! sample is taken after the final commit, so a reader that drained its
//! partitions reports `lag_at_end = 0`.

use crate::events::{GroupLagSampleFailed, GroupLagSampled};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickbridge_broker::kafka::groups::{GroupLag, LagProbe};
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::telemetry::InternalEvent;
use tickbridge_model::Shutdown;

/// Longest one sample may take (DescribeGroups, metadata, OffsetFetch and
/// the watermarks together).
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The data type lives in the model crate, with the rest of the summary
/// it is part of; this module fills it from the brokers' answers.
pub use tickbridge_model::report::GroupLagSummary;

/// Adds one successful sample: the last one's numbers, the largest seen.
fn add_sample(s: &mut GroupLagSummary, lag: &GroupLag) {
    s.samples += 1;
    s.state = lag.state().to_string();
    s.members = lag.member_count();
    s.lag_at_end = Some(lag.total);
    s.partitions_at_end = lag.by_partition();
    s.max_lag = s.max_lag.max(lag.total);
    for (p, l) in &s.partitions_at_end {
        let m = s.max_partition_lag.entry(*p).or_default();
        *m = (*m).max(*l);
    }
}

/// The sampling task and what it found so far.
pub struct LagSampler {
    probe: LagProbe,
    state: Arc<Mutex<GroupLagSummary>>,
    stop: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl LagSampler {
    /// Starts sampling `group` on the configured topic every `every`, until
    /// `shutdown` fires or [`LagSampler::finish`] is called. The first
    /// sample is taken at once.
    pub fn start(
        kafka: &KafkaConfig,
        group: &str,
        every: Duration,
        shutdown: &Shutdown,
    ) -> crate::Result<Self> {
        let probe = LagProbe::new(kafka, group, &kafka.topic, SAMPLE_TIMEOUT)?;
        let state = Arc::new(Mutex::new(GroupLagSummary {
            group: group.to_string(),
            topic: kafka.topic.clone(),
            state: "Unknown".to_string(),
            ..Default::default()
        }));
        let stop = shutdown.child();
        let task = tokio::spawn({
            let (probe, state, stop) = (probe.clone(), state.clone(), stop.clone());
            async move {
                probe
                    .sample_every(every, &stop, |r| record(&probe, &state, r))
                    .await
            }
        });
        Ok(Self {
            probe,
            state,
            stop,
            task,
        })
    }

    /// What the samples so far found.
    pub fn current(&self) -> GroupLagSummary {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the task and takes one last sample (call it after the final
    /// commit), bounded by [`SAMPLE_TIMEOUT`] like every other.
    pub async fn finish(self) -> GroupLagSummary {
        let Self {
            probe,
            state,
            stop,
            task,
        } = self;
        stop.trigger();
        let _ = task.await;
        let r = tokio::time::timeout(SAMPLE_TIMEOUT * 2, probe.sample())
            .await
            .unwrap_or_else(|_| {
                Err(tickbridge_broker::Error::Timeout {
                    what: format!("the last lag sample of group {:?}", probe.group()),
                    secs: (SAMPLE_TIMEOUT * 2).as_secs(),
                })
            });
        record(&probe, &state, r);
        let s = state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        s
    }
}

fn record(
    probe: &LagProbe,
    state: &Mutex<GroupLagSummary>,
    r: tickbridge_broker::Result<GroupLag>,
) {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    match r {
        Ok(lag) => {
            GroupLagSampled {
                lag: &lag,
                previous_state: &s.state,
            }
            .emit();
            add_sample(&mut s, &lag);
        }
        Err(e) => {
            GroupLagSampleFailed {
                group: probe.group(),
                error: &e,
            }
            .emit();
            s.failed_samples += 1;
            s.last_error = Some(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tickbridge_broker::kafka::groups::{GroupDescription, PartitionLag};

    fn sample(state: &str, members: usize, lags: &[i64]) -> GroupLag {
        let partitions: Vec<PartitionLag> = lags
            .iter()
            .enumerate()
            .map(|(p, l)| PartitionLag {
                partition: p as i32,
                log_start: 0,
                high_watermark: 100,
                committed: Some(100 - l),
                lag: *l,
            })
            .collect();
        GroupLag {
            group: "g".into(),
            topic: "t".into(),
            description: Some(GroupDescription {
                group: "g".into(),
                state: state.into(),
                protocol_type: "consumer".into(),
                protocol: "range".into(),
                members: (0..members)
                    .map(|i| tickbridge_broker::kafka::groups::GroupMember {
                        member_id: format!("m{i}"),
                        client_id: format!("c{i}"),
                        client_host: "/127.0.0.1".into(),
                        assignment: BTreeMap::new(),
                    })
                    .collect(),
            }),
            total: lags.iter().sum(),
            partitions,
        }
    }

    #[test]
    fn keeps_the_last_sample_and_the_largest_seen() {
        let mut s = GroupLagSummary::default();
        assert!(s.line().starts_with("group_lag=?"), "{}", s.line());
        // TC0: a backlog, TC1: a smaller one elsewhere, TC2: drained
        for (state, members, lags) in [
            ("Stable", 2, [40, 2, 0]),
            ("PreparingRebalance", 1, [0, 9, 1]),
            ("Stable", 1, [0, 0, 0]),
        ] {
            add_sample(&mut s, &sample(state, members, &lags));
        }
        assert_eq!(
            (s.samples, s.lag_at_end, s.max_lag),
            (3, Some(0), 42),
            "{s:?}"
        );
        assert_eq!(
            s.max_partition_lag,
            BTreeMap::from([(0, 40), (1, 9), (2, 1)])
        );
        assert_eq!(
            s.line(),
            "group_lag=0 [p0=0 p1=0 p2=0] max=42 members=1 state=Stable"
        );
    }
}
