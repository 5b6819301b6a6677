//! End-to-end tests of the simulator: each starts it on port 0 and talks to
//! it with a real WebSocket client (tokio-tungstenite) and HTTP client
//! (reqwest), checking handshakes, frame shapes, pacing, REST and every
//! fault against the report.

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::{Duration, Instant};
use tickbridge_feed_sim::{spawn, IdRange, SimConfig, SimHandle};
use tickbridge_model::Source;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn config(symbols: &[&str], rate: f64, max_count: Option<u64>) -> SimConfig {
    SimConfig {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        rate,
        max_count,
        ..SimConfig::default()
    }
}

async fn connect(sim: &SimHandle, path: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("{}{path}", sim.ws_base()))
        .await
        .unwrap();
    ws
}

/// Starts the simulator and opens one WebSocket on `path`: how most tests
/// begin.
async fn start(cfg: SimConfig, path: &str) -> (SimHandle, Ws) {
    let (_, sim) = spawn(cfg).await.unwrap();
    let ws = connect(&sim, path).await;
    (sim, ws)
}

/// The next text frame, skipping pings; None on close or after `timeout`.
async fn next_text(ws: &mut Ws, timeout: Duration) -> Option<String> {
    loop {
        match tokio::time::timeout(timeout, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(t.to_string()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    let t = next_text(ws, Duration::from_secs(5))
        .await
        .expect("a frame");
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"))
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

#[tokio::test]
async fn binance_combined_stream_frames() {
    let (sim, mut ws) = start(
        config(&["BTC-USDT", "ETH-USDT"], 0.0, Some(100)),
        "/stream?streams=btcusdt@trade/ethusdt@trade",
    )
    .await;
    let mut next = [1u64, 1u64];
    for _ in 0..200 {
        let v = next_json(&mut ws).await;
        let stream = v["stream"].as_str().unwrap();
        let d = &v["data"];
        assert_eq!(d["e"], "trade");
        let i = match stream {
            "btcusdt@trade" => 0,
            "ethusdt@trade" => 1,
            other => panic!("{other}"),
        };
        assert_eq!(d["s"], ["BTCUSDT", "ETHUSDT"][i]);
        assert_eq!(
            d["t"].as_u64().unwrap(),
            next[i],
            "ids 1, 2, 3, ... per symbol"
        );
        next[i] += 1;
        for f in ["p", "q"] {
            let s = d[f].as_str().unwrap();
            assert_eq!(
                s.split_once('.').unwrap().1.len(),
                8,
                "Binance prints 8 decimals: {s}"
            );
        }
        assert!(d["E"].is_u64() && d["T"].is_u64() && d["m"].is_boolean() && d["M"].is_boolean());
    }
    assert_eq!(next, [101, 101]);
    assert!(
        next_text(&mut ws, Duration::from_millis(200))
            .await
            .is_none(),
        "idle after max-count"
    );
    let report = sim.stop().await.unwrap();
    let btc = report.get(Source::Binance, "BTC-USDT").unwrap();
    assert_eq!(
        (btc.trades_sent, btc.first_id, btc.last_id),
        (100, Some(1), Some(100))
    );
    assert_eq!(btc.sent_ranges, vec![IdRange { from: 1, to: 100 }]);
}

#[tokio::test]
async fn binance_raw_stream_and_live_subscribe() {
    let (sim, mut raw) = start(
        config(&["BTC-USDT", "SOL-USDT"], 0.0, Some(5)),
        "/ws/btcusdt@trade",
    )
    .await;
    let v = next_json(&mut raw).await;
    assert_eq!(
        (v["e"].as_str(), v["s"].as_str(), v["t"].as_u64()),
        (Some("trade"), Some("BTCUSDT"), Some(1))
    );

    let mut live = connect(&sim, "/ws").await;
    send(
        &mut live,
        serde_json::json!({"method":"SUBSCRIBE","params":["solusdt@trade"],"id":7}),
    )
    .await;
    assert_eq!(
        next_json(&mut live).await,
        serde_json::json!({"result":null,"id":7})
    );
    let v = next_json(&mut live).await;
    assert_eq!(
        (v["s"].as_str(), v["t"].as_u64()),
        (Some("SOLUSDT"), Some(1))
    );
    send(
        &mut live,
        serde_json::json!({"method":"LIST_SUBSCRIPTIONS","id":8}),
    )
    .await;
    // The remaining SOL trades may come first.
    loop {
        let v = next_json(&mut live).await;
        if v.get("id").is_some() {
            assert_eq!(v, serde_json::json!({"result":["solusdt@trade"],"id":8}));
            break;
        }
    }
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn binance_sends_ping_frames() {
    let cfg = SimConfig {
        ping_interval: Duration::from_millis(100),
        ..config(&["BTC-USDT"], 1.0, Some(0))
    };
    let (sim, mut ws) = start(cfg, "/ws/btcusdt@trade").await;
    let got = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Some(Ok(Message::Ping(_))) = ws.next().await {
                return;
            }
        }
    })
    .await;
    assert!(got.is_ok(), "a Ping frame within 3 s");
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn coinbase_handshake_matches_and_errors() {
    let (sim, mut ws) = start(config(&["BTC-USD", "ETH-USD"], 0.0, Some(20)), "/").await;
    // Unknown product: Coinbase-style error, nothing subscribed.
    send(
        &mut ws,
        serde_json::json!({"type":"subscribe","product_ids":["DOGE-USD"],"channels":["matches"]}),
    )
    .await;
    let e = next_json(&mut ws).await;
    assert_eq!(
        (e["type"].as_str(), e["message"].as_str()),
        (Some("error"), Some("Failed to subscribe"))
    );
    assert!(e["reason"].as_str().unwrap().contains("DOGE-USD"));
    // The object channel form.
    send(&mut ws, serde_json::json!({"type":"subscribe","channels":[{"name":"matches","product_ids":["BTC-USD"]}]})).await;
    let s = next_json(&mut ws).await;
    assert_eq!(s["type"], "subscriptions");
    assert_eq!(
        s["channels"][0],
        serde_json::json!({"name":"matches","product_ids":["BTC-USD"]})
    );
    let mut last_seq = None;
    for id in 1..=20u64 {
        let m = next_json(&mut ws).await;
        assert_eq!(m["type"], "match");
        assert_eq!(m["trade_id"].as_u64(), Some(id));
        assert_eq!(m["product_id"], "BTC-USD");
        let seq = m["sequence"].as_u64().unwrap();
        if let Some(prev) = last_seq {
            assert_eq!(seq, prev + 1, "sequence +1 per message");
        }
        last_seq = Some(seq);
        let time = m["time"].as_str().unwrap();
        assert_eq!(
            time.len(),
            "2014-11-07T08:19:27.028459Z".len(),
            "microseconds: {time}"
        );
        assert!(matches!(m["side"].as_str(), Some("buy" | "sell")));
        assert!(m["maker_order_id"].is_string() && m["taker_order_id"].is_string());
    }
    // A second connection on the same market gets last_match first (the
    // market's trade 20), then nothing more (max-count reached).
    let mut ws2 = connect(&sim, "/").await;
    send(&mut ws2, serde_json::json!({"type":"subscribe","product_ids":["BTC-USD"],"channels":["matches","heartbeat"]})).await;
    assert_eq!(next_json(&mut ws2).await["type"], "subscriptions");
    let lm = next_json(&mut ws2).await;
    assert_eq!(
        (lm["type"].as_str(), lm["trade_id"].as_u64()),
        (Some("last_match"), Some(20))
    );
    let hb = next_json(&mut ws2).await;
    assert_eq!(
        (hb["type"].as_str(), hb["last_trade_id"].as_u64()),
        (Some("heartbeat"), Some(20))
    );
    assert_eq!(hb["sequence"].as_u64(), last_seq);
    let report = sim.stop().await.unwrap();
    assert_eq!(
        report.get(Source::Coinbase, "BTC-USD").unwrap().last_match,
        1
    );
}

#[tokio::test]
async fn kraken_handshake_ping_heartbeat() {
    let cfg = SimConfig {
        heartbeat_interval: Duration::from_millis(100),
        ..config(&["BTC-USD"], 0.0, Some(3))
    };
    let (sim, mut ws) = start(cfg, "/v2").await;
    let status = next_json(&mut ws).await;
    assert_eq!(
        (
            status["channel"].as_str(),
            status["data"][0]["system"].as_str()
        ),
        (Some("status"), Some("online"))
    );
    send(&mut ws, serde_json::json!({"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD","FOO/USD"],"snapshot":false},"req_id":5})).await;
    let ok = next_json(&mut ws).await;
    assert_eq!(
        (
            ok["method"].as_str(),
            ok["success"].as_bool(),
            ok["req_id"].as_u64()
        ),
        (Some("subscribe"), Some(true), Some(5))
    );
    assert_eq!(ok["result"]["symbol"], "BTC/USD");
    let err = next_json(&mut ws).await;
    assert_eq!(
        (err["success"].as_bool(), err["symbol"].as_str()),
        (Some(false), Some("FOO/USD"))
    );
    for id in 1..=3u64 {
        let text = next_text(&mut ws, Duration::from_secs(5)).await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (v["channel"].as_str(), v["type"].as_str()),
            (Some("trade"), Some("update"))
        );
        let t = &v["data"][0];
        assert_eq!(t["trade_id"].as_u64(), Some(id));
        assert!(
            t["price"].is_number() && t["qty"].is_number(),
            "numbers, not strings: {text}"
        );
        assert!(text.contains(r#""price":"#) && !text.contains(r#""price":""#));
    }
    send(&mut ws, serde_json::json!({"method":"ping","req_id":101})).await;
    let mut saw_pong = false;
    let mut saw_heartbeat = false;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && !(saw_pong && saw_heartbeat) {
        let v = next_json(&mut ws).await;
        saw_pong |= v["method"] == "pong" && v["req_id"] == 101;
        saw_heartbeat |= v["channel"] == "heartbeat";
    }
    assert!(saw_pong && saw_heartbeat);
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn rest_serves_the_trades_the_stream_sent() {
    let (_, sim) = spawn(config(&["BTC-USDT"], 0.0, Some(50))).await.unwrap();
    let http = reqwest::Client::new();
    // Stream every exchange's market to its end.
    let mut ws_trades: Vec<Vec<Value>> = Vec::new();
    let mut b = connect(&sim, "/ws/btcusdt@trade").await;
    ws_trades.push(Vec::new());
    for _ in 0..50 {
        ws_trades[0].push(next_json(&mut b).await);
    }
    let mut c = connect(&sim, "/").await;
    send(
        &mut c,
        serde_json::json!({"type":"subscribe","product_ids":["BTC-USDT"],"channels":["matches"]}),
    )
    .await;
    next_json(&mut c).await;
    ws_trades.push(Vec::new());
    for _ in 0..50 {
        ws_trades[1].push(next_json(&mut c).await);
    }
    let mut k = connect(&sim, "/v2").await;
    next_json(&mut k).await;
    send(&mut k, serde_json::json!({"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USDT"]}})).await;
    next_json(&mut k).await;
    // Kraken numbers are compared by their literal text, which Value loses.
    let mut kraken_text = Vec::new();
    ws_trades.push(Vec::new());
    for _ in 0..50 {
        let text = next_text(&mut k, Duration::from_secs(5)).await.unwrap();
        ws_trades[2].push(serde_json::from_str::<Value>(&text).unwrap()["data"][0].clone());
        kraken_text.push(text);
    }

    let get = |url: String| {
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let base = sim.http_base();
    let bin = get(format!("{base}/api/v3/trades?symbol=BTCUSDT&limit=1000")).await;
    let bin = bin.as_array().unwrap();
    assert_eq!(bin.len(), 50);
    for (r, w) in bin.iter().zip(&ws_trades[0]) {
        assert_eq!(
            (
                r["id"].clone(),
                r["price"].clone(),
                r["qty"].clone(),
                r["time"].clone()
            ),
            (
                w["t"].clone(),
                w["p"].clone(),
                w["q"].clone(),
                w["T"].clone()
            )
        );
        assert_eq!(r["isBuyerMaker"], w["m"]);
    }
    let cb = get(format!("{base}/products/BTC-USDT/trades?limit=20")).await;
    let cb = cb.as_array().unwrap();
    assert_eq!(cb.len(), 20);
    assert_eq!(cb[0]["trade_id"], 50, "newest first");
    for r in cb {
        let w = &ws_trades[1][r["trade_id"].as_u64().unwrap() as usize - 1];
        assert_eq!(
            (&r["price"], &r["size"], &r["side"], &r["time"]),
            (&w["price"], &w["size"], &w["side"], &w["time"])
        );
    }
    let kr = get(format!("{base}/0/public/Trades?pair=BTC/USDT")).await;
    assert_eq!(kr["error"], serde_json::json!([]));
    let rows = kr["result"]["BTC/USDT"].as_array().unwrap();
    assert_eq!(rows.len(), 50);
    for ((r, w), text) in rows.iter().zip(&ws_trades[2]).zip(&kraken_text) {
        assert_eq!(r[6], w["trade_id"]);
        assert!(
            text.contains(&format!(r#""price":{},"#, r[0].as_str().unwrap())),
            "{text}"
        );
        assert!(
            text.contains(&format!(r#""qty":{},"#, r[1].as_str().unwrap())),
            "{text}"
        );
        assert_eq!(r[3].as_str().unwrap(), &w["side"].as_str().unwrap()[..1]);
    }
    // Errors in each exchange's style.
    let e = http
        .get(format!("{base}/api/v3/trades?symbol=NOPE"))
        .send()
        .await
        .unwrap();
    assert_eq!(e.status(), 400);
    let e = http
        .get(format!("{base}/products/NOPE-USD/trades"))
        .send()
        .await
        .unwrap();
    assert_eq!(e.status(), 404);
    let e = get(format!("{base}/0/public/Trades?pair=NOPE")).await;
    assert_eq!(e["error"][0], "EQuery:Unknown asset pair");
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn paced_rate_and_reconnect_gap() {
    let (sim, mut ws) = start(config(&["BTC-USDT"], 50.0, None), "/ws/btcusdt@trade").await;
    let start = Instant::now();
    let mut ids = Vec::new();
    let mut times = Vec::new();
    while start.elapsed() < Duration::from_millis(1000) {
        if let Some(t) = next_text(&mut ws, Duration::from_millis(200)).await {
            let v: Value = serde_json::from_str(&t).unwrap();
            ids.push(v["t"].as_u64().unwrap());
            times.push(v["T"].as_i64().unwrap());
        }
    }
    assert!(
        (40..=60).contains(&ids.len()),
        "about 50 trades in 1 s at rate 50, got {}",
        ids.len()
    );
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(
        times.windows(2).all(|w| (19..=21).contains(&(w[1] - w[0]))),
        "trade N at t0 + N/R: {times:?}"
    );
    let last = *ids.last().unwrap();
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = connect(&sim, "/ws/btcusdt@trade").await;
    let first =
        serde_json::from_str::<Value>(&next_text(&mut ws, Duration::from_secs(2)).await.unwrap())
            .unwrap()["t"]
            .as_u64()
            .unwrap();
    assert!(
        first > last + 5,
        "a reconnect misses the trades of the meantime: {last} -> {first}"
    );
    // Two connections see the same trades.
    let mut other = connect(&sim, "/ws/btcusdt@trade").await;
    let a: Value =
        serde_json::from_str(&next_text(&mut other, Duration::from_secs(2)).await.unwrap())
            .unwrap();
    let mut b: Value =
        serde_json::from_str(&next_text(&mut ws, Duration::from_secs(2)).await.unwrap()).unwrap();
    while b["t"].as_u64() < a["t"].as_u64() {
        b = serde_json::from_str(&next_text(&mut ws, Duration::from_secs(2)).await.unwrap())
            .unwrap();
    }
    assert_eq!(a, b);
    sim.stop().await.unwrap();
}

/// Reads Binance frames until the socket closes or is quiet for 300 ms;
/// returns (trade ids in order, malformed frame count).
async fn drain_binance(ws: &mut Ws) -> (Vec<u64>, u64) {
    let (mut ids, mut bad) = (Vec::new(), 0);
    while let Some(t) = next_text(ws, Duration::from_millis(300)).await {
        match serde_json::from_str::<Value>(&t) {
            Ok(v) => ids.push(v["t"].as_u64().unwrap()),
            Err(_) => bad += 1,
        }
    }
    (ids, bad)
}

#[tokio::test]
async fn faults_dup_malformed_gap() {
    let cfg = SimConfig {
        dup_every: Some(10),
        malformed_every: Some(25),
        gap_every: Some(40),
        gap_size: 3,
        ..config(&["BTC-USDT"], 0.0, Some(100))
    };
    let (sim, mut ws) = start(cfg, "/ws/btcusdt@trade").await;
    let (ids, bad) = drain_binance(&mut ws).await;
    // 100 ids minus gaps after the 40th and 80th frames: 1..=40, 44..=83, 87..=100.
    let mut expected_unique: Vec<u64> = (1..=40).chain(44..=83).chain(87..=100).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique, expected_unique);
    let frames = expected_unique.len() as u64; // 94 first sends
    assert_eq!(
        ids.len() as u64,
        frames + frames / 10,
        "one dup per 10 frames"
    );
    assert_eq!(bad, frames / 25);
    let r = sim.stop().await.unwrap();
    let s = r.get(Source::Binance, "BTC-USDT").unwrap();
    assert_eq!(s.trades_sent, frames);
    assert_eq!(s.duplicates, frames / 10);
    assert_eq!(s.malformed, frames / 25);
    assert_eq!(
        s.skipped,
        vec![IdRange { from: 41, to: 43 }, IdRange { from: 84, to: 86 }]
    );
    expected_unique.dedup();
    assert_eq!(
        s.sent_ranges.iter().map(|r| r.len()).sum::<u64>(),
        expected_unique.len() as u64
    );
}

#[tokio::test]
async fn faults_close_and_stall() {
    let cfg = SimConfig {
        close_every: Some(30),
        stall_every: Some(10),
        stall_for: Duration::from_millis(400),
        ..config(&["BTC-USDT"], 0.0, None)
    };
    let (sim, mut ws) = start(cfg, "/ws/btcusdt@trade").await;
    let start = Instant::now();
    let mut ids = Vec::new();
    let mut pauses = 0;
    let mut last = Instant::now();
    while let Some(t) = next_text(&mut ws, Duration::from_secs(2)).await {
        if last.elapsed() >= Duration::from_millis(300) {
            pauses += 1;
        }
        last = Instant::now();
        ids.push(
            serde_json::from_str::<Value>(&t).unwrap()["t"]
                .as_u64()
                .unwrap(),
        );
    }
    assert_eq!(
        ids,
        (1..=30).collect::<Vec<_>>(),
        "closed right after the 30th frame"
    );
    assert_eq!(
        pauses, 2,
        "stalls after frames 10 and 20 (the one after 30 is cut by the close)"
    );
    assert!(start.elapsed() >= Duration::from_millis(800));
    // A reconnect at full speed continues after the highest id sent.
    let mut ws = connect(&sim, "/ws/btcusdt@trade").await;
    let first: Value =
        serde_json::from_str(&next_text(&mut ws, Duration::from_secs(2)).await.unwrap()).unwrap();
    assert_eq!(first["t"].as_u64(), Some(31));
    drop(ws);
    let r = sim.stop().await.unwrap();
    let s = r.get(Source::Binance, "BTC-USDT").unwrap();
    assert!(s.closes >= 1 && s.stalls >= 3, "{s:?}");
}

#[tokio::test]
async fn sent_log_has_one_line_per_frame() {
    let dir = std::env::temp_dir().join(format!("feed-sim-log-{}", std::process::id()));
    let cfg = SimConfig {
        sent_log: Some(dir.clone()),
        dup_every: Some(5),
        ..config(&["ETH-USDT"], 0.0, Some(20))
    };
    let (sim, mut ws) = start(cfg, "/stream?streams=ethusdt@trade").await;
    let mut n = 0;
    while next_text(&mut ws, Duration::from_millis(300))
        .await
        .is_some()
    {
        n += 1;
    }
    assert_eq!(n, 24);
    sim.stop().await.unwrap();
    let text = std::fs::read_to_string(&dir).unwrap();
    let _ = std::fs::remove_file(&dir);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 24);
    assert_eq!(lines.iter().filter(|l| l["kind"] == "dup").count(), 4);
    assert_eq!(
        lines[0],
        serde_json::json!({"conn":1,"exchange":"binance","symbol":"ETH-USDT","trade_id":1,"kind":"sent"})
    );
}
