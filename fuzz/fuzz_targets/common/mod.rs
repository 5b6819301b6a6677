//! What every exchange target checks: any bytes as a WebSocket text frame
//! (when UTF-8) and as a REST body for each symbol. The parser may reject the
//! input, but must not panic, and every trade it accepts must hold a positive
//! price and quantity for a configured symbol.

use rust_decimal::Decimal;
use tickbridge_producer::exchange::{Exchange, RawTrade};

/// Runs one input through the adapter's frame and REST parsers.
pub fn exchange_input<E: Exchange>(adapter: &E, data: &[u8]) {
    let mut out = Vec::new();
    if let Ok(text) = std::str::from_utf8(data) {
        if adapter.parse_frame(text, &mut out).is_ok() {
            check(adapter, &out);
        }
    }
    for symbol in adapter.symbols() {
        out.clear();
        if adapter.parse_rest(symbol, data, &mut out).is_ok() {
            check(adapter, &out);
            assert!(
                out.iter().all(|t| *t.symbol == **symbol),
                "REST trades for {symbol} carry another symbol"
            );
        }
    }
}

fn check<E: Exchange>(adapter: &E, trades: &[RawTrade]) {
    for t in trades {
        assert!(t.price > Decimal::ZERO, "non-positive price {t:?}");
        assert!(t.qty > Decimal::ZERO, "non-positive qty {t:?}");
        assert!(adapter.symbols().iter().any(|s| **s == *t.symbol), "unconfigured symbol {t:?}");
    }
}
