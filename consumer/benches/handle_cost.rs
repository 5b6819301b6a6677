//! CPU per message of the readers' own work, without a broker: decode
//! (bounds, JSON Schema validation, deserialize), the dedup window and
//! statistics, the handler (quiet output, analytics, telemetry), against a
//! raw baseline that only touches the bytes. This is the part of a reader's
//! cost that `benches/throughput.rs` cannot separate from the client
//! library's, and the loop to run under `perf record`.
//!
//! `cargo bench -p tickbridge-consumer --bench handle_cost` prints ns per
//! message for each stage, best of 5 rounds of 200,000 ticks.

use std::hint::black_box;
use std::time::Instant;
use tickbridge_consumer::config::CommonArgs;
use tickbridge_consumer::handler::{FailConfig, Handler};
use tickbridge_consumer::output::Meta;
use tickbridge_model::{schema, Message};
use tickbridge_testkit::loadgen::synthetic_ticks;

/// A stage run on each body alone: filter key, label, accepted or not.
type Stage = (&'static str, &'static str, fn(&[u8]) -> bool);

fn best_ns(n: usize, rounds: usize, mut f: impl FnMut() -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(f());
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

fn main() {
    let n = std::env::var("HANDLE_COST_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rounds = 5;
    let symbols = [
        "BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "ADA-USD", "DOGE-USD",
    ];
    let bodies: Vec<Vec<u8>> = synthetic_ticks("bench-1", &symbols, n)
        .into_iter()
        .map(|t| Message::Tick(t).as_ref().to_json())
        .collect();
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let want = |s: &str| only.as_deref().is_none_or(|o| s.contains(o));

    let mut rows = Vec::new();
    if want("raw") {
        rows.push((
            "raw: sum the bytes",
            best_ns(n, rounds, || {
                bodies
                    .iter()
                    .map(|b| b.iter().map(|&x| x as usize).sum::<usize>())
                    .sum()
            }),
        ));
    }
    // Stages that look at each body on its own: how many it accepted.
    let per_body: [Stage; 3] = [
        // The floor for any reader that looks at the body at all: a JSON
        // syntax check that builds nothing.
        ("parse", "JSON syntax only (serde IgnoredAny)", |b| {
            serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok()
        }),
        ("decode", "schema::decode", |b| schema::decode(b).is_ok()),
        (
            "full",
            "schema::decode_full (JSON value, JSON Schema, deserialize)",
            |b| schema::decode_full(b).is_ok(),
        ),
    ];
    for (key, what, stage) in per_body {
        if want(key) {
            rows.push((
                what,
                best_ns(n, rounds, || bodies.iter().filter(|b| stage(b)).count()),
            ));
        }
    }
    if want("handle") {
        rows.push((
            "decode + received + handle",
            best_ns(n, rounds, || {
                let mut h = Handler::new(
                    "kafka",
                    "kafka",
                    "bench",
                    &CommonArgs::quiet(),
                    FailConfig::default(),
                )
                .expect("handler");
                let mut ok = 0;
                for b in &bodies {
                    let m = schema::decode(b).expect("valid");
                    h.stats.received(false, m.as_ref().id());
                    ok += h.handle(&m, &Meta::default()).is_ok() as usize;
                }
                ok
            }),
        ));
    }
    println!("| stage | ns per message |\n| --- | ---: |");
    for (what, ns) in rows {
        println!("| {what} | {ns:.0} |");
    }
}
