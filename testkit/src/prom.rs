//! Reading Prometheus text in tests: a `/metrics` endpoint scraped over
//! plain HTTP/1.1, and one series' value picked out of the text, the way
//! the metrics tests of the bridge and the consumer check their series.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The whole HTTP response of `GET /metrics` at `addr` (status line and
/// headers included, so a test can check the status), or `None` while
/// nothing answers there.
pub async fn scrape(addr: SocketAddr) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    Some(body)
}

/// The value on the first line of `text` that starts with `series` (a
/// metric name with its labels), or `None` when there is no such line: a
/// counter only appears with its first increment.
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
