//! Coinbase adapter: any bytes as a WebSocket text frame (when UTF-8) and as a
//! REST body for each symbol (the checks are in `common`).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tickbridge_producer::exchange::Coinbase;

fuzz_target!(|data: &[u8]| {
    let symbols = ["BTC-USD".to_string(), "ETH-USD".to_string()];
    let adapter = Coinbase::new(&symbols).expect("static symbols are valid");
    common::exchange_input(&adapter, data);
});
