//! The fault catalogue and the seeded schedule.
//!
//! A schedule is a pure function of the seed: the order of the faults, the
//! pause before each one and every random choice inside a fault (which
//! worker, which group member) come from one `StdRng` seeded with it, so
//! `--seed` replays the same sequence of faults at the same offsets.
//! (What the brokers and the OS do in between is not deterministic; the
//! reconciliation must hold for every interleaving.)

use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum FaultKind {
    /// Stop the scenario's RabbitMQ node gracefully and start it again
    /// (durable queues, persistent messages).
    RabbitRestart,
    /// SIGKILL the scenario's Kafka broker and start it again on the same
    /// log directory (an unclean shutdown: the broker recovers its logs).
    KafkaRestart,
    /// Close the producer's WebSocket abruptly (no close frame).
    WsDrop,
    /// Let the WebSocket go silent for longer than the producer's idle
    /// timeout.
    SimStall,
    /// SIGTERM the producer (it drains and reports) and start a new one.
    ProducerRestart,
    /// SIGKILL one of the two workers and start it again.
    WorkerKill,
    /// SIGKILL one member of the Kafka consumer group and start it again in
    /// the same group.
    ConsumerKill,
    /// SIGKILL the bridge and start it again.
    BridgeKill,
    /// Publish a poison (not JSON) and a schema-invalid message into the
    /// work queue and into the bridge's queue.
    PoisonQueue,
    /// Produce a poison and a schema-invalid record into the Kafka topic.
    PoisonTopic,
}

impl FaultKind {
    /// Every fault, in catalogue order.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::RabbitRestart,
        FaultKind::KafkaRestart,
        FaultKind::WsDrop,
        FaultKind::SimStall,
        FaultKind::ProducerRestart,
        FaultKind::WorkerKill,
        FaultKind::ConsumerKill,
        FaultKind::BridgeKill,
        FaultKind::PoisonQueue,
        FaultKind::PoisonTopic,
    ];

    /// Name in tables and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::RabbitRestart => "rabbit-restart",
            FaultKind::KafkaRestart => "kafka-restart",
            FaultKind::WsDrop => "ws-drop",
            FaultKind::SimStall => "sim-stall",
            FaultKind::ProducerRestart => "producer-restart",
            FaultKind::WorkerKill => "worker-kill",
            FaultKind::ConsumerKill => "consumer-kill",
            FaultKind::BridgeKill => "bridge-kill",
            FaultKind::PoisonQueue => "poison-queue",
            FaultKind::PoisonTopic => "poison-topic",
        }
    }
}

/// One planned fault.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// What.
    pub kind: FaultKind,
    /// Pause after the previous fault finished (or after the pipeline
    /// started, for the first one).
    pub pause: Duration,
    /// A random choice the fault needs (which of two instances).
    pub pick: usize,
}

/// The schedule of a seed: every fault of `kinds` once, in a seeded random
/// order, each after a seeded random pause in `[min_pause, max_pause]`.
pub fn schedule(
    seed: u64,
    kinds: &[FaultKind],
    min_pause: Duration,
    max_pause: Duration,
) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order = kinds.to_vec();
    order.sort();
    order.dedup();
    order.shuffle(&mut rng);
    let (lo, hi) = (
        min_pause.as_millis() as u64,
        max_pause.as_millis().max(min_pause.as_millis()) as u64,
    );
    order
        .into_iter()
        .map(|kind| Planned {
            kind,
            pause: Duration::from_millis(rng.random_range(lo..=hi)),
            pick: rng.random_range(0..2),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule_every_fault_once() {
        let a = schedule(
            7,
            &FaultKind::ALL,
            Duration::from_secs(1),
            Duration::from_secs(3),
        );
        let b = schedule(
            7,
            &FaultKind::ALL,
            Duration::from_secs(1),
            Duration::from_secs(3),
        );
        let c = schedule(
            8,
            &FaultKind::ALL,
            Duration::from_secs(1),
            Duration::from_secs(3),
        );
        let key = |s: &[Planned]| {
            s.iter()
                .map(|p| (p.kind, p.pause, p.pick))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        let mut kinds: Vec<_> = a.iter().map(|p| p.kind).collect();
        kinds.sort();
        assert_eq!(kinds, FaultKind::ALL.to_vec());
        assert!(a
            .iter()
            .all(|p| p.pause >= Duration::from_secs(1) && p.pause <= Duration::from_secs(3)));
    }
}
