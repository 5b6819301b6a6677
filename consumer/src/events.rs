//! Everything a worker or consumer logs *and* counts, one struct per event.
//!
//! Following Vector's `internal_events`, each struct's `emit()` writes one
//! structured log line and bumps one labelled counter, so the log and the
//! Prometheus series can never disagree. Per-message events log at `trace`
//! or `debug` (a busy feed would drown the log); anything an operator must
//! act on logs at `warn`.
//!
//! Every metric is named `tickbridge_consumer_*` and labelled with `role`
//! (`worker`, `kafka` or `stream`), so one Prometheus can scrape both binaries.

use metrics::counter;
use tickbridge_model::schema::DecodeError;
use tickbridge_model::telemetry::InternalEvent;

/// A message passed the handler and was written out. It happens for every
/// message, so its counter is registered once ([`MessageHandled::counter`])
/// and carried in, instead of looked up in the registry each time.
pub struct MessageHandled<'a> {
    /// `tick.v1` or `gap.v1`.
    pub schema: &'static str,
    /// Message id.
    pub id: &'a str,
    /// `tickbridge_consumer_messages_handled_total` for this role and schema.
    pub counter: &'a metrics::Counter,
}
impl MessageHandled<'_> {
    /// The counter for `role` (`worker`, `kafka` or `stream`) and `schema`.
    pub fn counter(role: &'static str, schema: &'static str) -> metrics::Counter {
        counter!("tickbridge_consumer_messages_handled_total", "role" => role, "schema" => schema)
    }
}
impl InternalEvent for MessageHandled<'_> {
    fn emit(self) {
        tracing::trace!(id = self.id, schema = self.schema, "handled");
        self.counter.increment(1);
    }
}

/// A body that does not parse or fails the schema. On the work queue it goes
/// straight to the DLQ; on a log it is skipped (and its offset stored), so
/// one poison message never blocks a partition.
pub struct DecodeFailed<'a> {
    /// Role label.
    pub role: &'static str,
    /// Why.
    pub error: &'a DecodeError,
    /// Broker position (`delivery_tag=..`, `p0@17`), for finding it again.
    pub position: &'a str,
}
impl InternalEvent for DecodeFailed<'_> {
    fn emit(self) {
        tracing::warn!(reason = self.error.kind(), error = %self.error, position = self.position, "rejected a message that is not a valid tick or gap notice");
        counter!("tickbridge_consumer_decode_errors_total", "role" => self.role, "reason" => self.error.kind())
            .increment(1);
    }
}

/// The handler failed on a message (for real, or on purpose with
/// `--fail-every` / `--fail-rate`).
pub struct HandlerFailed<'a> {
    /// Role label.
    pub role: &'static str,
    /// Message id.
    pub id: &'a str,
    /// 1 for the first delivery, 2 for the first retry, ...
    pub attempt: u32,
    /// Why.
    pub error: &'a str,
}
impl InternalEvent for HandlerFailed<'_> {
    fn emit(self) {
        tracing::debug!(
            id = self.id,
            attempt = self.attempt,
            error = self.error,
            "handler failed"
        );
        counter!("tickbridge_consumer_handler_failures_total", "role" => self.role).increment(1);
    }
}

/// A failed message was re-published to the work queue with its retry
/// count incremented.
pub struct MessageRetried<'a> {
    /// Message id.
    pub id: &'a str,
    /// Retry number now carried in `tb-retries`.
    pub retry: u32,
    /// `--max-retries`.
    pub max_retries: u32,
}
impl InternalEvent for MessageRetried<'_> {
    fn emit(self) {
        tracing::debug!(
            id = self.id,
            retry = self.retry,
            max_retries = self.max_retries,
            "scheduled a retry"
        );
        counter!("tickbridge_consumer_retries_total", "role" => "worker").increment(1);
    }
}

/// A message whose id this instance has already handled.
pub struct DuplicateSeen<'a> {
    /// Role label.
    pub role: &'static str,
    /// Message id.
    pub id: &'a str,
}
impl InternalEvent for DuplicateSeen<'_> {
    fn emit(self) {
        tracing::debug!(id = self.id, "duplicate");
        counter!("tickbridge_consumer_duplicates_total", "role" => self.role).increment(1);
    }
}

/// The producer's per-symbol sequence jumped: messages between are missing
/// here (lost, not yet arrived, or, on a work queue, handled by a sibling).
pub struct SeqGap<'a> {
    /// Role label.
    pub role: &'static str,
    /// Producer id.
    pub producer: &'a str,
    /// Symbol.
    pub symbol: &'a str,
    /// Sequence expected next.
    pub expected: u64,
    /// Sequence seen.
    pub got: u64,
}
impl InternalEvent for SeqGap<'_> {
    fn emit(self) {
        tracing::debug!(
            producer = self.producer,
            symbol = self.symbol,
            expected = self.expected,
            got = self.got,
            "producer sequence gap"
        );
        counter!("tickbridge_consumer_seq_gaps_total", "role" => self.role).increment(1);
        counter!("tickbridge_consumer_seq_missing_total", "role" => self.role)
            .increment(self.got - self.expected);
    }
}

/// The exchange's trade ids for a symbol jumped.
pub struct TradeIdGap<'a> {
    /// Role label.
    pub role: &'static str,
    /// `source:symbol`.
    pub stream: &'a str,
    /// Trade id expected next.
    pub expected: u64,
    /// Trade id seen.
    pub got: u64,
}
impl InternalEvent for TradeIdGap<'_> {
    fn emit(self) {
        tracing::debug!(
            stream = self.stream,
            expected = self.expected,
            got = self.got,
            "trade id gap"
        );
        counter!("tickbridge_consumer_trade_id_gaps_total", "role" => self.role).increment(1);
    }
}

/// A producer's gap notice arrived: it knows ticks are missing upstream.
pub struct GapNoticeReceived<'a> {
    /// Role label.
    pub role: &'static str,
    /// The notice.
    pub notice: &'a tickbridge_model::GapNotice,
}
impl InternalEvent for GapNoticeReceived<'_> {
    fn emit(self) {
        let n = self.notice;
        tracing::warn!(id = %n.id, symbol = %n.symbol, reason = n.reason.as_str(), missing_from = ?n.missing_from, missing_to = ?n.missing_to, missing_count = ?n.missing_count, "producer reported missing trades");
        counter!("tickbridge_consumer_gap_notices_total", "role" => self.role, "reason" => n.reason.as_str())
            .increment(1);
    }
}

/// A symbol's price crossed an `--alert-above` / `--alert-below` threshold.
pub struct PriceAlert<'a> {
    /// Symbol.
    pub symbol: &'a str,
    /// `above` or `below`.
    pub direction: &'static str,
    /// Trade price that crossed.
    pub price: &'a rust_decimal::Decimal,
    /// Threshold crossed.
    pub threshold: &'a rust_decimal::Decimal,
    /// Rolling mean price at that moment.
    pub mean: f64,
    /// Rolling VWAP at that moment.
    pub vwap: f64,
}
impl InternalEvent for PriceAlert<'_> {
    fn emit(self) {
        tracing::warn!(symbol = self.symbol, direction = self.direction, price = %self.price, threshold = %self.threshold, mean = self.mean, vwap = self.vwap, "price alert");
        counter!("tickbridge_consumer_price_alerts_total", "symbol" => self.symbol.to_string(), "direction" => self.direction)
            .increment(1);
    }
}

/// Acking, nacking or re-publishing on RabbitMQ failed; the message stays
/// unacked and the broker redelivers it when the channel closes.
pub struct AckFailed<'a> {
    /// Role label.
    pub role: &'static str,
    /// Which operation.
    pub op: &'static str,
    /// Why.
    pub error: &'a str,
}
impl InternalEvent for AckFailed<'_> {
    fn emit(self) {
        tracing::error!(op = self.op, error = self.error, "acknowledgement failed");
        counter!("tickbridge_consumer_ack_errors_total", "role" => self.role, "op" => self.op)
            .increment(1);
    }
}

/// At shutdown, deliveries received but not handled were handed back.
pub struct InFlightReturned {
    /// Role label.
    pub role: &'static str,
    /// How many.
    pub count: u64,
}
impl InternalEvent for InFlightReturned {
    fn emit(self) {
        tracing::info!(
            count = self.count,
            "returned unhandled in-flight messages to the broker"
        );
        counter!("tickbridge_consumer_inflight_returned_total", "role" => self.role)
            .increment(self.count);
    }
}

/// The group's lag was measured from the brokers (see [`crate::lag`]):
/// sets the group gauges. Logged at `debug`; the stats line shows it.
pub struct GroupLagSampled<'a> {
    /// The measurement.
    pub lag: &'a tickbridge_broker::kafka::groups::GroupLag,
    /// State at the previous sample, whose gauge drops to 0.
    pub previous_state: &'a str,
}
impl InternalEvent for GroupLagSampled<'_> {
    fn emit(self) {
        let l = self.lag;
        let (group, topic) = (l.group.clone(), l.topic.clone());
        tracing::debug!(group = %group, topic = %topic, total = l.total, state = l.state(), members = l.member_count(), "group lag sampled");
        for p in &l.partitions {
            metrics::gauge!("tickbridge_consumer_group_lag", "group" => group.clone(), "topic" => topic.clone(), "partition" => p.partition.to_string())
                .set(p.lag as f64);
        }
        metrics::gauge!("tickbridge_consumer_group_lag_total", "group" => group.clone(), "topic" => topic.clone())
            .set(l.total as f64);
        metrics::gauge!("tickbridge_consumer_group_members", "group" => group.clone())
            .set(l.member_count() as f64);
        if self.previous_state != l.state() {
            metrics::gauge!("tickbridge_consumer_group_state", "group" => group.clone(), "state" => self.previous_state.to_string())
                .set(0.0);
        }
        metrics::gauge!("tickbridge_consumer_group_state", "group" => group.clone(), "state" => l.state().to_string())
            .set(1.0);
        counter!("tickbridge_consumer_group_lag_samples_total", "group" => group, "result" => "ok")
            .increment(1);
    }
}

/// Measuring the group's lag failed (a broker silent past the sample's
/// timeout, the topic gone); the next interval tries again.
pub struct GroupLagSampleFailed<'a> {
    /// Group id.
    pub group: &'a str,
    /// Why.
    pub error: &'a tickbridge_broker::Error,
}
impl InternalEvent for GroupLagSampleFailed<'_> {
    fn emit(self) {
        tracing::warn!(group = self.group, error = %self.error, "cannot measure the group's lag");
        counter!("tickbridge_consumer_group_lag_samples_total", "group" => self.group.to_string(), "result" => "error")
            .increment(1);
    }
}
