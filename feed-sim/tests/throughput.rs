//! Full-speed throughput of one connection (`--rate 0`). Ignored by default;
//! run in release mode for a meaningful number:
//!
//! ```text
//! cargo test --release -p tickbridge-feed-sim --test throughput -- --ignored --nocapture
//! ```

use futures::StreamExt;
use std::time::{Duration, Instant};
use tickbridge_feed_sim::{spawn, SimConfig};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run in release mode"]
async fn one_connection_full_speed() {
    for (name, path) in [
        ("binance /ws", "/ws/btcusdt@trade"),
        ("binance /stream", "/stream?streams=btcusdt@trade"),
    ] {
        let cfg = SimConfig {
            symbols: vec!["BTC-USDT".into()],
            rate: 0.0,
            ..SimConfig::default()
        };
        let (_, sim) = spawn(cfg).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}{path}", sim.ws_base()))
            .await
            .unwrap();
        let window = Duration::from_secs(3);
        let start = Instant::now();
        let mut frames = 0u64;
        let mut last = String::new();
        while start.elapsed() < window {
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                frames += 1;
                if frames.is_multiple_of(100_000) {
                    last.clear();
                    last.push_str(&t);
                    // Every frame is a distinct trade: the id equals the count.
                    assert!(last.contains(&format!(r#""t":{frames},"#)), "{last}");
                }
            }
        }
        let rate = frames as f64 / start.elapsed().as_secs_f64();
        println!(
            "{name}: {frames} frames in {:?} = {rate:.0} frames/s",
            start.elapsed()
        );
        drop(ws);
        sim.stop().await.unwrap();
    }
}
