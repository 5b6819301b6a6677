//! Telemetry events of the producer: each one logs and counts in one place.

use crate::stats::{add, Stats};
use tickbridge_model::tick::GapNotice;

/// A gap was detected in the feed.
pub struct GapDetected<'a> {
    /// The notice about to be published.
    pub gap: &'a GapNotice,
}

impl GapDetected<'_> {
    /// Logs, bumps `tickbridge_producer_gaps_total{reason}` and the run stats.
    pub fn emit_to(self, stats: &Stats) {
        let g = self.gap;
        tracing::warn!(
            symbol = %g.symbol, reason = g.reason.as_str(),
            missing_from = ?g.missing_from, missing_to = ?g.missing_to,
            missing_count = ?g.missing_count, seq = g.seq,
            "gap detected; publishing gap notice"
        );
        add(&stats.gaps, 1);
        add(&stats.gap_trades, g.missing_count.unwrap_or(0));
        metrics::counter!("tickbridge_producer_gaps_total", "reason" => g.reason.as_str())
            .increment(1);
    }
}

/// A frame could not be parsed. Logged at WARN once per kind, then at DEBUG,
/// so a storm of garbage cannot flood the log; always counted.
pub struct FrameRejected<'a> {
    /// Metric label of the reason.
    pub kind: &'static str,
    /// Detail.
    pub error: &'a dyn std::fmt::Display,
    /// Whether this kind was already logged at WARN.
    pub first_of_kind: bool,
}

impl FrameRejected<'_> {
    /// Logs and counts.
    pub fn emit_to(self, stats: &Stats) {
        if self.first_of_kind {
            tracing::warn!(kind = self.kind, error = %self.error, "frame rejected (further ones of this kind are logged at debug)");
        } else {
            tracing::debug!(kind = self.kind, error = %self.error, "frame rejected");
        }
        add(&stats.malformed, 1);
        metrics::counter!("tickbridge_producer_malformed_total", "kind" => self.kind).increment(1);
    }
}
