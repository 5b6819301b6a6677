//! Cross-check: the adapters parse what tickbridge-feed-sim sends.
//!
//! The simulator writes each exchange's wire format from the exchanges' docs
//! and the adapters read it from the same docs; these tests connect each
//! adapter to a simulator on port 0 exactly as the producer does (its
//! `ws_url`, its `subscribe_messages`, its `rest_trades_url`) and check that
//! every trade arrives with the simulator's id, price (scale included),
//! quantity, taker side and time, with no parse errors, over WebSocket and
//! REST alike.

use super::{adapter, Exchange, FrameKind, ParseError, RawTrade};
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tickbridge_feed_sim::{spawn, SimConfig, SimHandle};
use tickbridge_model::{Side, Source};
use tokio_tungstenite::tungstenite::Message;

const N: u64 = 300;

fn symbols() -> Vec<String> {
    vec!["BTC-USDT".into(), "ETH-USDT".into()]
}

/// Streams with the adapter until `want` trades arrived (or 10 s passed);
/// returns trades, frame kinds and parse errors.
async fn stream(
    ex: &dyn Exchange,
    sim: &SimHandle,
    want: usize,
) -> (Vec<RawTrade>, Vec<FrameKind>, Vec<ParseError>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(ex.ws_url(&sim.ws_base_for(ex.source())))
        .await
        .unwrap();
    for m in ex.subscribe_messages() {
        ws.send(Message::Text(m.into())).await.unwrap();
    }
    if let Some((_, ping)) = ex.app_ping() {
        ws.send(Message::Text(ping.into())).await.unwrap();
    }
    let (mut trades, mut kinds, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while trades.len() < want {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await;
        let Ok(Some(Ok(msg))) = msg else { break };
        if let Message::Text(t) = msg {
            match ex.parse_frame(&t, &mut trades) {
                Ok(k) => kinds.push(k),
                Err(e) => errors.push(e),
            }
        }
    }
    (trades, kinds, errors)
}

/// The trade the simulator's market model says `id` is, at this exchange's
/// time precision (Binance: milliseconds).
fn assert_matches_market(sim: &SimHandle, source: Source, t: &RawTrade) {
    let market = sim.market(source, &t.symbol).expect("market");
    let s = market.trade(t.trade_id);
    assert_eq!(
        t.price,
        s.price(),
        "{source} {} #{} price",
        t.symbol,
        t.trade_id
    );
    assert_eq!(t.qty, s.qty(), "{source} {} #{} qty", t.symbol, t.trade_id);
    assert_eq!(
        t.side, s.taker,
        "{source} {} #{} taker side",
        t.symbol, t.trade_id
    );
    let micros = t.exchange_ts.timestamp_micros();
    let expected = if source == Source::Binance {
        s.ts_micros.div_euclid(1000) * 1000
    } else {
        s.ts_micros
    };
    assert_eq!(
        micros, expected,
        "{source} {} #{} time",
        t.symbol, t.trade_id
    );
    if source == Source::Binance {
        assert_eq!(t.price.scale(), 8, "Binance prints 8 decimals");
    } else {
        assert_eq!(t.price.scale(), s.price_scale, "scale kept");
    }
}

async fn cross_check(source: Source) {
    let cfg = SimConfig {
        symbols: symbols(),
        rate: 0.0,
        max_count: Some(N),
        ..SimConfig::default()
    };
    let (_, sim) = spawn(cfg).await.unwrap();
    let ex = adapter(source, &symbols()).unwrap();
    let (trades, kinds, errors) = stream(ex.as_ref(), &sim, 2 * N as usize).await;
    assert!(errors.is_empty(), "{source}: {errors:?}");
    assert_eq!(trades.len(), 2 * N as usize, "{source}");
    if source != Source::Binance {
        assert!(
            kinds.contains(&FrameKind::Subscribed),
            "{source}: {kinds:?}"
        );
    }
    for sym in symbols() {
        let ids: Vec<u64> = trades
            .iter()
            .filter(|t| *t.symbol == *sym)
            .map(|t| t.trade_id)
            .collect();
        assert_eq!(ids, (1..=N).collect::<Vec<_>>(), "{source} {sym}");
    }
    for t in &trades {
        assert_matches_market(&sim, source, t);
        if source == Source::Coinbase {
            let seq = t.feed_seq.expect("Coinbase sequence");
            let first = trades.iter().find(|x| x.symbol == t.symbol).unwrap();
            assert_eq!(seq - first.feed_seq.unwrap(), t.trade_id - first.trade_id);
        }
    }
    // REST returns the very same trades.
    let http = reqwest::Client::new();
    for sym in symbols() {
        let url = ex.rest_trades_url(&sim.http_base(), &sym, 1000);
        let body = http.get(&url).send().await.unwrap().bytes().await.unwrap();
        let mut polled = Vec::new();
        ex.parse_rest(&sym, &body, &mut polled)
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let streamed: Vec<RawTrade> = trades
            .iter()
            .filter(|t| *t.symbol == *sym)
            .map(|t| RawTrade {
                feed_seq: None,
                ..t.clone()
            })
            .collect();
        assert_eq!(polled, streamed, "{source} {sym}: REST = WS");
    }
    let report = sim.stop().await.unwrap();
    assert_eq!(report.get(source, "BTC-USDT").unwrap().trades_sent, N);
}

#[tokio::test]
async fn binance_adapter_reads_the_simulator() {
    cross_check(Source::Binance).await;
}

#[tokio::test]
async fn coinbase_adapter_reads_the_simulator() {
    cross_check(Source::Coinbase).await;
}

#[tokio::test]
async fn kraken_adapter_reads_the_simulator() {
    cross_check(Source::Kraken).await;
}

/// Faults look to the adapters the way they should: a duplicate parses to
/// the same trade again, a broken frame is `Malformed`, a gap is a jump in
/// trade ids (and in Coinbase's sequence).
#[tokio::test]
async fn faults_as_the_adapters_see_them() {
    for source in Source::ALL {
        let cfg = SimConfig {
            symbols: vec!["BTC-USDT".into()],
            rate: 0.0,
            max_count: Some(100),
            dup_every: Some(10),
            malformed_every: Some(20),
            gap_every: Some(50),
            gap_size: 5,
            ..SimConfig::default()
        };
        let (_, sim) = spawn(cfg).await.unwrap();
        let ex = adapter(source, &["BTC-USDT".to_string()]).unwrap();
        // 95 distinct trades (ids 51..=55 skipped) + 9 duplicates.
        let (trades, _, errors) = stream(ex.as_ref(), &sim, 95 + 9).await;
        let report = sim.stop().await.unwrap();
        let r = report.get(source, "BTC-USDT").unwrap();
        assert_eq!(
            trades.len() as u64,
            r.trades_sent + r.duplicates,
            "{source}"
        );
        assert_eq!(errors.len() as u64, r.malformed, "{source}: {errors:?}");
        assert!(
            errors.iter().all(|e| e.kind() == "malformed"),
            "{source}: {errors:?}"
        );
        let mut ids: Vec<u64> = trades.iter().map(|t| t.trade_id).collect();
        ids.dedup();
        let expected: Vec<u64> = (1..=50).chain(56..=100).collect();
        assert_eq!(ids, expected, "{source}");
        if source == Source::Coinbase {
            let jump = trades.windows(2).find(|w| w[1].trade_id == 56).unwrap();
            assert_eq!(
                jump[1].feed_seq.unwrap() - jump[0].feed_seq.unwrap(),
                6,
                "sequence jumps too"
            );
        }
        let sides: std::collections::HashSet<Side> = trades.iter().map(|t| t.side).collect();
        assert_eq!(sides.len(), 2, "{source}: both taker sides occur");
    }
}
