//! The three exchanges' wire formats, one file each, written from the
//! exchanges' public docs (not from tickbridge's parsers, so the two can
//! check each other): trade frames, subscription handshakes, keepalives and
//! the REST recent-trades endpoint.

pub mod binance;
pub mod coinbase;
pub mod kraken;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A JSON response with a status code.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Trade ids a REST page returns: the last `limit` up to the head.
pub(crate) fn page(head: u64, limit: u64) -> std::ops::RangeInclusive<u64> {
    let limit = limit.max(1);
    head.saturating_sub(limit - 1).max(1)..=head
}
