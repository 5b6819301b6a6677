//! The normalized message types that travel through every broker: [`Tick`]
//! (one trade) and [`GapNotice`] (a statement that trades are missing).
//!
//! `schemas/tick.v1.json` and `schemas/gap.v1.json` are the contract; these
//! types are its Rust mirror, and `tests/schema.rs` checks that what they
//! serialize validates against the schema files.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Exchange a trade came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Binance spot.
    Binance,
    /// Coinbase Exchange.
    Coinbase,
    /// Kraken (WebSocket v2).
    Kraken,
}

impl Source {
    /// Every supported exchange, in a stable order.
    pub const ALL: [Source; 3] = [Source::Binance, Source::Coinbase, Source::Kraken];

    /// Lower-case name, as used in ids, routing keys and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Binance => "binance",
            Source::Coinbase => "coinbase",
            Source::Kraken => "kraken",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "binance" => Ok(Source::Binance),
            "coinbase" => Ok(Source::Coinbase),
            "kraken" => Ok(Source::Kraken),
            other => Err(format!(
                "unknown exchange {other:?}: expected binance, coinbase or kraken"
            )),
        }
    }
}

/// Taker (aggressor) side of a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The taker bought, lifting the ask.
    Buy,
    /// The taker sold, hitting the bid.
    Sell,
}

impl Side {
    /// Lower-case name as it appears in the schema.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// How the producer obtained a trade, so streaming and polling can be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A WebSocket stream.
    Ws,
    /// REST polling.
    Poll,
}

impl Via {
    /// Lower-case name as it appears in the schema.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Ws => "ws",
            Via::Poll => "poll",
        }
    }
}

/// Why a producer knows ticks are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The exchange's per-symbol trade ids jumped.
    TradeIdJump,
    /// The exchange's own feed sequence (Coinbase `sequence`) jumped.
    SequenceJump,
    /// The connection dropped and continuity across it could not be proven.
    Reconnect,
    /// The producer dropped ticks under its drop-oldest backpressure policy.
    BufferOverflow,
    /// A broker refused ticks after every retry.
    PublishFailed,
}

impl GapReason {
    /// Snake-case name, used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::TradeIdJump => "trade_id_jump",
            GapReason::SequenceJump => "sequence_jump",
            GapReason::Reconnect => "reconnect",
            GapReason::BufferOverflow => "buffer_overflow",
            GapReason::PublishFailed => "publish_failed",
        }
    }
}

/// Serde helpers for UTC timestamps with exactly microsecond precision
/// (`2026-11-23T18:00:00.123456Z`), as the schema requires.
pub mod ts_micros {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// Formats a timestamp the way every tickbridge message carries it:
    /// microseconds, or nanoseconds when the value has them, so nothing a
    /// source provided is rounded away.
    pub fn format(ts: &DateTime<Utc>) -> String {
        with_text(ts, str::to_string)
    }

    /// Hands the formatted timestamp to `f`: from a stack buffer in the
    /// common case, from chrono's formatter otherwise.
    fn with_text<R>(ts: &DateTime<Utc>, f: impl FnOnce(&str) -> R) -> R {
        let mut buf = [0u8; MAX_LEN];
        match write(ts, &mut buf) {
            Some(text) => f(text),
            None => f(&slow(ts)),
        }
    }

    /// Appends the formatted timestamp (without quotes) to `out`.
    pub(super) fn append(ts: &DateTime<Utc>, out: &mut Vec<u8>) {
        with_text(ts, |text| out.extend_from_slice(text.as_bytes()));
    }

    /// `YYYY-MM-DDTHH:MM:SS.fffffffffZ`.
    const MAX_LEN: usize = 30;

    /// Where the separators of `YYYY-MM-DDTHH:MM:SS.f…Z` sit, for the
    /// writer here and the readers' fast path.
    pub(crate) const SEPARATORS: [(usize, u8); 6] = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ];

    /// chrono's general formatter, for what [`write`] leaves to it.
    fn slow(ts: &DateTime<Utc>) -> String {
        use chrono::Timelike;
        let precision = if ts.nanosecond().is_multiple_of(1000) {
            SecondsFormat::Micros
        } else {
            SecondsFormat::Nanos
        };
        ts.to_rfc3339_opts(precision, true)
    }

    /// Writes the common case (years 0000-9999, no leap second) into `buf`
    /// without allocating: every message carries two timestamps, and this
    /// runs for each on the producer's hot path. `None` for the rest.
    fn write<'b>(ts: &DateTime<Utc>, buf: &'b mut [u8; MAX_LEN]) -> Option<&'b str> {
        use chrono::{Datelike, Timelike};
        // One conversion to the calendar, instead of one per field through
        // the `DateTime` accessors.
        let naive = ts.naive_utc();
        let (date, time) = (naive.date(), naive.time());
        let (year, nanos) = (date.year(), time.nanosecond());
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            return None;
        }
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year as u32);
        put(5, 2, date.month());
        put(8, 2, date.day());
        put(11, 2, time.hour());
        put(14, 2, time.minute());
        put(17, 2, time.second());
        let len = if nanos.is_multiple_of(1000) {
            put(20, 6, nanos / 1000);
            27
        } else {
            put(20, 9, nanos);
            30
        };
        for (at, c) in SEPARATORS {
            buf[at] = c;
        }
        buf[len - 1] = b'Z';
        std::str::from_utf8(&buf[..len]).ok()
    }

    /// Serde `serialize_with` target.
    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        with_text(ts, |text| s.serialize_str(text))
    }

    /// Serde `deserialize_with` target; accepts any RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// One normalized trade.
///
/// The text fields a producer repeats in every tick of a symbol (`symbol`,
/// `raw_symbol`, `producer`) are `Arc<str>`: building a tick clones a
/// pointer instead of allocating three strings, which matters at hundreds of
/// thousands of ticks per second. They serialize as plain JSON strings.
///
/// ```json
/// {"schema":"tick.v1","id":"binance:BTC-USDT:12345","source":"binance",
///  "symbol":"BTC-USDT","raw_symbol":"BTCUSDT","trade_id":12345,
///  "price":"0.00100000","qty":"100.00000000","side":"sell",
///  "exchange_ts":"2026-11-23T18:00:00.123000Z",
///  "received_ts":"2026-11-23T18:00:00.125431Z",
///  "producer":"host-4242-1","seq":1,"via":"ws"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tick {
    /// `source:symbol:trade_id`, the idempotency key used for dedup everywhere.
    pub id: String,
    /// Exchange.
    pub source: Source,
    /// Normalized `BASE-QUOTE`.
    pub symbol: Arc<str>,
    /// As the exchange spells it.
    pub raw_symbol: Arc<str>,
    /// Exchange trade id.
    pub trade_id: u64,
    /// Exact price; `Decimal` keeps the exchange's scale, so `"0.00100000"`
    /// round-trips byte for byte.
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
    /// Exact base quantity.
    #[serde(with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    /// Taker side.
    pub side: Side,
    /// Exchange's trade time.
    #[serde(with = "ts_micros")]
    pub exchange_ts: DateTime<Utc>,
    /// When the producer read it.
    #[serde(with = "ts_micros")]
    pub received_ts: DateTime<Utc>,
    /// Producer instance id, scoping `seq`.
    pub producer: Arc<str>,
    /// Per producer and symbol message sequence, starting at 1.
    pub seq: u64,
    /// Stream or poll.
    pub via: Via,
}

impl Tick {
    /// Builds the deterministic idempotency key.
    ///
    /// Built for every tick, so the trade id's digits are written directly
    /// rather than through `fmt` (3.8% of the producer's runtime-worker
    /// samples in `perf`).
    pub fn make_id(source: Source, symbol: &str, trade_id: u64) -> String {
        let source = source.as_str();
        let mut buf = itoa::Buffer::new();
        let digits = buf.format(trade_id);
        let mut id = String::with_capacity(source.len() + symbol.len() + 2 + digits.len());
        id.push_str(source);
        id.push(':');
        id.push_str(symbol);
        id.push(':');
        id.push_str(digits);
        id
    }
}

/// A producer's statement that ticks are missing.
///
/// ```json
/// {"schema":"gap.v1","id":"gap:p1:BTC-USDT:17","source":"binance",
///  "symbol":"BTC-USDT","reason":"trade_id_jump","missing_from":101,
///  "missing_to":105,"missing_count":5,
///  "detected_ts":"2026-11-23T18:00:01.000000Z","producer":"p1","seq":17,"via":"ws"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GapNotice {
    /// `gap:producer:symbol:seq`.
    pub id: String,
    /// Exchange.
    pub source: Source,
    /// Normalized `BASE-QUOTE`.
    pub symbol: Arc<str>,
    /// Why the producer knows ticks are missing.
    pub reason: GapReason,
    /// First missing trade id, inclusive, when known.
    pub missing_from: Option<u64>,
    /// Last missing trade id, inclusive, when known.
    pub missing_to: Option<u64>,
    /// Number of missing trades, when known.
    pub missing_count: Option<u64>,
    /// When the producer noticed.
    #[serde(with = "ts_micros")]
    pub detected_ts: DateTime<Utc>,
    /// Producer instance id.
    pub producer: Arc<str>,
    /// Takes a number in the same per-symbol sequence as ticks.
    pub seq: u64,
    /// Stream or poll.
    pub via: Via,
}

impl GapNotice {
    /// Builds the deterministic id of a gap notice.
    pub fn make_id(producer: &str, symbol: &str, seq: u64) -> String {
        format!("gap:{producer}:{symbol}:{seq}")
    }
}

/// Either kind of message, tagged by its `schema` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "schema")]
pub enum Message {
    /// `tick.v1`
    #[serde(rename = "tick.v1")]
    Tick(Tick),
    /// `gap.v1`
    #[serde(rename = "gap.v1")]
    Gap(GapNotice),
}

/// Borrowing twin of [`Message`], so serializing does not clone.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "schema")]
pub enum MessageRef<'a> {
    /// `tick.v1`
    #[serde(rename = "tick.v1")]
    Tick(&'a Tick),
    /// `gap.v1`
    #[serde(rename = "gap.v1")]
    Gap(&'a GapNotice),
}

/// Schema name of a tick, used as AMQP `type` and the Kafka `type` header.
pub const TICK_SCHEMA: &str = "tick.v1";
/// Schema name of a gap notice.
pub const GAP_SCHEMA: &str = "gap.v1";

impl Message {
    /// Borrowing view.
    pub fn as_ref(&self) -> MessageRef<'_> {
        match self {
            Message::Tick(t) => MessageRef::Tick(t),
            Message::Gap(g) => MessageRef::Gap(g),
        }
    }
}

impl<'a> MessageRef<'a> {
    /// Schema name (`tick.v1` / `gap.v1`).
    pub fn schema(&self) -> &'static str {
        match self {
            MessageRef::Tick(_) => TICK_SCHEMA,
            MessageRef::Gap(_) => GAP_SCHEMA,
        }
    }
    /// Idempotency key.
    pub fn id(&self) -> &'a str {
        match self {
            MessageRef::Tick(t) => &t.id,
            MessageRef::Gap(g) => &g.id,
        }
    }
    /// Exchange.
    pub fn source(&self) -> Source {
        match self {
            MessageRef::Tick(t) => t.source,
            MessageRef::Gap(g) => g.source,
        }
    }
    /// Normalized symbol; also the Kafka key.
    pub fn symbol(&self) -> &'a str {
        match self {
            MessageRef::Tick(t) => &t.symbol,
            MessageRef::Gap(g) => &g.symbol,
        }
    }
    /// Producer id.
    pub fn producer(&self) -> &'a str {
        match self {
            MessageRef::Tick(t) => &t.producer,
            MessageRef::Gap(g) => &g.producer,
        }
    }
    /// Per producer and symbol sequence.
    pub fn seq(&self) -> u64 {
        match self {
            MessageRef::Tick(t) => t.seq,
            MessageRef::Gap(g) => g.seq,
        }
    }
    /// Event time carried in broker timestamps: receive time for ticks,
    /// detection time for gaps.
    pub fn timestamp(&self) -> DateTime<Utc> {
        match self {
            MessageRef::Tick(t) => t.received_ts,
            MessageRef::Gap(g) => g.detected_ts,
        }
    }
    /// Serializes to the JSON body every sink writes.
    pub fn to_json(&self) -> Vec<u8> {
        // A tick is about 330 bytes: one allocation instead of a doubling
        // series. Serializing these plain structs into a Vec cannot fail.
        let mut out = Vec::with_capacity(448);
        match self {
            MessageRef::Tick(t) => t.write_json(&mut out),
            MessageRef::Gap(_) => {
                let _ = serde_json::to_writer(&mut out, self);
            }
        }
        out
    }
}

impl Tick {
    /// Writes the tick's `tick.v1` JSON, byte for byte what serde writes for
    /// [`MessageRef::Tick`] (a test holds it to that), without serde's
    /// per-field dispatch: this runs for every tick a producer publishes.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"schema\":\"tick.v1\",\"id\":");
        json_str(out, &self.id);
        out.extend_from_slice(b",\"source\":\"");
        out.extend_from_slice(self.source.as_str().as_bytes());
        out.extend_from_slice(b"\",\"symbol\":");
        json_str(out, &self.symbol);
        out.extend_from_slice(b",\"raw_symbol\":");
        json_str(out, &self.raw_symbol);
        let mut digits = itoa::Buffer::new();
        out.extend_from_slice(b",\"trade_id\":");
        out.extend_from_slice(digits.format(self.trade_id).as_bytes());
        out.extend_from_slice(b",\"price\":\"");
        decimal_text(out, &self.price);
        out.extend_from_slice(b"\",\"qty\":\"");
        decimal_text(out, &self.qty);
        out.extend_from_slice(b"\",\"side\":\"");
        out.extend_from_slice(self.side.as_str().as_bytes());
        out.extend_from_slice(b"\",\"exchange_ts\":\"");
        ts_micros::append(&self.exchange_ts, out);
        out.extend_from_slice(b"\",\"received_ts\":\"");
        ts_micros::append(&self.received_ts, out);
        out.extend_from_slice(b"\",\"producer\":");
        json_str(out, &self.producer);
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(digits.format(self.seq).as_bytes());
        out.extend_from_slice(b",\"via\":\"");
        out.extend_from_slice(self.via.as_str().as_bytes());
        out.extend_from_slice(b"\"}");
    }
}

/// Appends a decimal as its `Display` text (every digit of its scale, so
/// `"0.00100000"` stays `"0.00100000"`), without `fmt` for the common case:
/// not negative and a mantissa within `u64`. Two of these run for every
/// tick a producer publishes; through `fmt` they were about two fifths of
/// the cost of its JSON body.
pub fn decimal_text(out: &mut Vec<u8>, d: &Decimal) {
    // Negative (negative zero too, which prints its sign) or wider than
    // u64: the general formatter.
    let plain = u64::try_from(d.mantissa())
        .ok()
        .filter(|_| !d.is_sign_negative());
    let Some(m) = plain else {
        use std::io::Write;
        let _ = write!(out, "{d}");
        return;
    };
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(m).as_bytes();
    let scale = d.scale() as usize;
    if scale == 0 {
        out.extend_from_slice(digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    } else {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (scale - digits.len()), b'0');
        out.extend_from_slice(digits);
    }
}

/// Index of the first byte of `s` that JSON must escape in a string (`"`,
/// `\\` or a control byte below 0x20), read eight bytes at a time.
///
/// Per 64-bit word, `(v - 0x01..01) & !v & 0x80..80` flags the bytes of `v`
/// that are zero, and `(x - 0x20..20) & !x & 0x80..80` the bytes of `x`
/// below 0x20. A borrow can flag a byte wrongly only above a byte rightly
/// flagged, so the lowest flag of either test is the first match.
pub fn json_special_byte(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(chunk) = s.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let hits = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & HIGH;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    s[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|p| at + p)
}

/// Appends `s` as a JSON string: quoted as is when nothing in it needs
/// escaping (ids, symbols and producer ids, in practice), through serde_json
/// otherwise.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if json_special_byte(s.as_bytes()).is_none() {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(out, s);
    }
}

/// Normalizes a `BASE-QUOTE` pair from its parts.
pub fn normalize_symbol(base: &str, quote: &str) -> String {
    let mut s = String::with_capacity(base.len() + quote.len() + 1);
    s.push_str(&base.to_ascii_uppercase());
    s.push('-');
    s.push_str(&quote.to_ascii_uppercase());
    s
}

/// Checks a normalized symbol (`BASE-QUOTE`, upper-case alphanumerics).
pub fn is_normalized_symbol(s: &str) -> bool {
    let Some((b, q)) = s.split_once('-') else {
        return false;
    };
    let ok = |p: &str| {
        (1..=20).contains(&p.len())
            && p.bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    };
    ok(b) && ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_keeps_exchange_scale() {
        for s in ["0.00100000", "123456789.123456789", "0.00000001", "97000.5"] {
            let d = Decimal::from_str(s).unwrap();
            assert_eq!(d.to_string(), s);
        }
    }

    /// Deterministic xorshift64 stream, so the spread-of-values tests are
    /// reproducible.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// The hand-written `tick.v1` writer produces exactly serde's bytes,
    /// including for strings that need escaping.
    #[test]
    fn hand_written_tick_json_is_what_serde_writes() {
        use chrono::TimeZone;
        let producers = [
            "host-4242-1",
            "quote\"d",
            "back\\slash",
            "tab\tand\nnewline\u{1}",
            "ünïcödé-€",
            "del\u{7f}",
            "",
        ];
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        for i in 0..3000u64 {
            let r = next();
            let symbol = ["BTC-USDT", "ETH-USD", "X\"Y-Z"][(r % 3) as usize];
            let source = Source::ALL[(r >> 8) as usize % 3];
            let t = Tick {
                id: Tick::make_id(source, symbol, r >> 20),
                source,
                symbol: symbol.into(),
                raw_symbol: symbol.replace('-', "/").into(),
                trade_id: r >> 20,
                price: Decimal::new((r >> 3) as i64 % 10_000_000_000, (r % 12) as u32),
                qty: Decimal::new(((r >> 5) as i64 % 1_000_000).max(1), ((r >> 9) % 9) as u32),
                side: if r & 1 == 0 { Side::Buy } else { Side::Sell },
                exchange_ts: Utc
                    .timestamp_opt(
                        (r % 4_000_000_000) as i64,
                        ((r >> 32) % 1_000_000_000) as u32,
                    )
                    .unwrap(),
                received_ts: Utc.timestamp_opt(1_795_000_000, (i * 1000) as u32).unwrap(),
                producer: producers[i as usize % producers.len()].into(),
                seq: next(),
                via: if r & 2 == 0 { Via::Ws } else { Via::Poll },
            };
            let m = MessageRef::Tick(&t);
            let serde = serde_json::to_vec(&m).unwrap();
            assert_eq!(
                String::from_utf8(m.to_json()).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }

    /// The decimal writer prints what `Display` prints: zero, small values
    /// with leading zeros, trailing zeros kept, every scale, mantissas at
    /// and past `u64::MAX`, negatives and negative zero.
    #[test]
    fn decimal_text_is_display() {
        let mut cases = vec![
            Decimal::ZERO,
            Decimal::new(0, 2),
            Decimal::new(-0, 3),
            Decimal::new(1, 28),
            Decimal::new(100_000, 8),
            Decimal::new(12_345, 2),
            Decimal::new(-12_345, 2),
            Decimal::new(5, 0),
            Decimal::MAX,
            Decimal::MIN,
            Decimal::from_i128_with_scale(u64::MAX as i128, 7),
            Decimal::from_i128_with_scale(u64::MAX as i128 + 1, 7),
        ];
        let mut negative_zero = Decimal::new(0, 4);
        negative_zero.set_sign_negative(true);
        cases.push(negative_zero);
        let mut next = xorshift(0x51_7c_c1_b7_27_22_0a_95);
        for _ in 0..20_000 {
            let r = next();
            let m = r >> (r % 64);
            let d = Decimal::from_i128_with_scale(m as i128, (r % 29) as u32);
            cases.push(if r & 1 == 0 { d } else { -d });
        }
        for d in cases {
            let mut out = Vec::new();
            decimal_text(&mut out, &d);
            assert_eq!(String::from_utf8(out).unwrap(), d.to_string(), "{d:?}");
        }
    }

    /// The allocation-free timestamp writer agrees with chrono's RFC 3339
    /// output on every kind of value, including the ones it hands back to
    /// chrono (years past 9999, leap seconds).
    #[test]
    fn timestamps_match_chrono() {
        use chrono::{NaiveDate, TimeZone, Timelike};
        let mut cases = vec![
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(1_795_000_000, 123_456_000).unwrap(),
            Utc.timestamp_opt(1_795_000_000, 123_456_789).unwrap(),
            Utc.timestamp_opt(1_795_000_000, 1_000).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            NaiveDate::from_ymd_opt(2016, 12, 31)
                .unwrap()
                .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                .unwrap()
                .and_utc(),
        ];
        // A spread of ordinary values, deterministic.
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let x = next();
            let secs = (x % 4_000_000_000) as i64;
            let nanos = ((x >> 32) % 1_000_000_000) as u32;
            let nanos = if x & 1 == 0 {
                nanos / 1000 * 1000
            } else {
                nanos
            };
            cases.push(Utc.timestamp_opt(secs, nanos).unwrap());
        }
        for ts in cases {
            let precision = if ts.nanosecond().is_multiple_of(1000) {
                SecondsFormat::Micros
            } else {
                SecondsFormat::Nanos
            };
            let want = ts.to_rfc3339_opts(precision, true);
            assert_eq!(ts_micros::format(&ts), want);
            let json = serde_json::to_string(&Wrapped(ts)).unwrap();
            assert_eq!(json, format!("\"{want}\""));
        }
    }

    #[derive(Serialize)]
    struct Wrapped(#[serde(with = "ts_micros")] DateTime<Utc>);

    #[test]
    fn ids_are_source_symbol_trade_id() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            12_345,
            1 << 40,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(
                Tick::make_id(Source::Coinbase, "BTC-USD", n),
                format!("coinbase:BTC-USD:{n}")
            );
        }
    }

    #[test]
    fn symbols() {
        assert_eq!(normalize_symbol("btc", "usdt"), "BTC-USDT");
        assert!(is_normalized_symbol("BTC-USDT"));
        assert!(!is_normalized_symbol("BTCUSDT"));
        assert!(!is_normalized_symbol("btc-usdt"));
        assert!(!is_normalized_symbol("-USD"));
    }
}
