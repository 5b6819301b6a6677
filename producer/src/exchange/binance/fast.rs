//! A single-pass reader for the one frame shape that makes up nearly all of
//! a Binance feed: a trade event, bare or wrapped as
//! `{"stream":"btcusdt@trade","data":{...}}`, whose fields are flat scalars.
//!
//! It accepts a frame only when it can read it exactly as serde would:
//! strings without escapes or control characters, integers without a
//! fraction or exponent, `true`/`false`, no repeated field. Anything else
//! (an escape, a float, a nested value, a request answer, an error, a
//! malformed byte) makes it return `None`, and the frame goes through the
//! serde structs in [`super::trade`], which decide and word every error.
//! A property test checks that whenever this returns an event, serde
//! returns the same one.
//!
//! Why: serde's derived visitors (field matching, `Option` wrappers, `Cow`
//! strings) were about a fifth of the producer's feed-reading CPU.

use super::trade::BinanceEvent;
use std::borrow::Cow;

/// The trade event in `text`, if the frame has the plain shape described in
/// the module docs; `None` means "ask serde".
pub(super) fn trade_event(text: &str) -> Option<BinanceEvent<'_>> {
    if let Some(event) = canonical(text) {
        return Some(event);
    }
    let mut r = Reader {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    r.ws();
    let open = r.i;
    r.eat(b'{')?;
    r.ws();
    let first_key = r.i;
    let event = match r.string()? {
        // Combined stream: `stream` (ignored) and `data`, in any order.
        "stream" | "data" => {
            r.i = first_key;
            let mut event = None;
            let mut stream_seen = false;
            loop {
                match r.key()? {
                    b"stream" if !stream_seen => {
                        stream_seen = true;
                        r.string()?;
                    }
                    b"data" if event.is_none() => event = Some(r.event_object()?.event),
                    // Repeated or other top-level keys (`id`, `error`, `e`,
                    // ...) change how serde routes the frame.
                    _ => return None,
                }
                if !r.more()? {
                    break;
                }
            }
            event?
        }
        // Raw stream: the frame is the event itself.
        _ => {
            r.i = open;
            let d = r.event_object()?;
            // Serde's envelope routes a frame with `data`, `id` or `error`
            // elsewhere, and one without `e` is not an event.
            d.routed_as_event.then_some(d.event)?
        }
    };
    r.ws();
    (r.i == r.s.len()).then_some(event)
}

/// A trade frame byte for byte as Binance writes it today: compact, the
/// fields in the documented order (`e`, `E`, `s`, `t`, `p`, `q`, `T`, `m`,
/// `M`), bare or wrapped in `{"stream":..,"data":..}`. The fixed parts are
/// compared as they stand and only the values are scanned, so a frame costs
/// about one pass over its bytes. Any other layout (another order, an extra
/// or missing field, whitespace, an escape) returns `None` and goes through
/// the general reader below, which accepts the same frames, so this changes
/// the speed only; the property test covers both.
fn canonical(text: &str) -> Option<BinanceEvent<'_>> {
    let mut r = Reader {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    let combined = r.lit(br#"{"stream":""#).is_some();
    if combined {
        r.rest_of_string()?;
        r.lit(br#","data":{"e":""#)?;
    } else {
        r.lit(br#"{"e":""#)?;
    }
    let event = r.rest_of_string()?;
    r.lit(br#","E":"#)?;
    r.int()?;
    r.lit(br#","s":""#)?;
    let symbol = r.rest_of_string()?;
    r.lit(br#","t":"#)?;
    let trade_id = match r.int()? {
        (false, id) => id,
        // A negative id is serde's error to word.
        (true, _) => return None,
    };
    r.lit(br#","p":""#)?;
    let price = r.rest_of_string()?;
    r.lit(br#","q":""#)?;
    let qty = r.rest_of_string()?;
    r.lit(br#","T":"#)?;
    let trade_time = match r.int()? {
        (false, ms) => i64::try_from(ms).ok()?,
        (true, ms) => 0i64.checked_sub_unsigned(ms)?,
    };
    r.lit(br#","m":"#)?;
    let buyer_is_maker = r.bool()?;
    r.lit(br#","M":"#)?;
    r.bool()?;
    r.lit(if combined { b"}}" } else { b"}" })?;
    (r.i == r.s.len()).then_some(BinanceEvent {
        event: Some(Cow::Borrowed(event)),
        symbol: Some(Cow::Borrowed(symbol)),
        trade_id: Some(trade_id),
        price: Some(Cow::Borrowed(price)),
        qty: Some(Cow::Borrowed(qty)),
        trade_time: Some(trade_time),
        buyer_is_maker: Some(buyer_is_maker),
    })
}

/// A decoded event plus what the raw-stream check needs to know.
struct Decoded<'a> {
    event: BinanceEvent<'a>,
    /// The object has none of the envelope's keys (`data`, `id`, `error`)
    /// and does have `e`: serde's envelope then hands the whole frame to the
    /// event struct.
    routed_as_event: bool,
}

struct Reader<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.s.get(self.i) == Some(&b)).then(|| self.i += 1)
    }

    /// An object member's key and its `:`, with the whitespace around it,
    /// as bytes (matched with slice patterns: a length switch, then a byte
    /// switch, where `&str` arms would compare one after another).
    fn key(&mut self) -> Option<&'a [u8]> {
        let s = self.s;
        let i = self.i;
        // Most of Binance's keys are one letter (`"e":`): no scan needed.
        let k = match s.get(i..i + 3) {
            Some(&[b'"', c, b'"']) if c.is_ascii() && c >= 0x20 && c != b'"' && c != b'\\' => {
                self.i = i + 3;
                &s[i + 1..i + 2]
            }
            _ => self.string()?.as_bytes(),
        };
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(k)
    }

    /// After a member's value: `true` at a `,` (another member follows),
    /// `false` at the closing `}`.
    fn more(&mut self) -> Option<bool> {
        self.ws();
        if self.eat(b',').is_some() {
            self.ws();
            return Some(true);
        }
        self.eat(b'}').map(|()| false)
    }

    /// These exact bytes.
    fn lit(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.i + bytes.len();
        (self.s.get(self.i..end)? == bytes).then(|| self.i = end)
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        self.rest_of_string()
    }

    /// The rest of a string whose opening `"` was read: its text up to the
    /// closing `"`, which is read too.
    fn rest_of_string(&mut self) -> Option<&'a str> {
        let start = self.i;
        let len = tickbridge_model::tick::json_special_byte(&self.s[start..])?;
        if self.s[start + len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        Some(&self.text[start..start + len])
    }

    /// Any scalar value (an ignored field): a string, an integer, `true`,
    /// `false` or `null`. Anything else (a float, an object, an array) is
    /// left to serde.
    fn skip_scalar(&mut self) -> Option<()> {
        match *self.s.get(self.i)? {
            b'"' => self.string().map(drop),
            b't' => self.lit(b"true"),
            b'f' => self.lit(b"false"),
            b'n' => self.lit(b"null"),
            b'-' | b'0'..=b'9' => self.int().map(drop),
            _ => None,
        }
    }

    /// A field's string value, unless the field was seen already (serde
    /// refuses a duplicate field) or the value is not a plain string.
    fn str_once(&mut self, seen: Option<&str>) -> Option<&'a str> {
        if seen.is_some() || self.s.get(self.i) != Some(&b'"') {
            return None;
        }
        self.string()
    }

    /// A boolean value, `None` for anything else.
    fn bool(&mut self) -> Option<bool> {
        match *self.s.get(self.i)? {
            b't' => self.lit(b"true").map(|()| true),
            b'f' => self.lit(b"false").map(|()| false),
            _ => None,
        }
    }

    /// An integer `-?(0|[1-9][0-9]*)` whose magnitude fits a `u64`, with
    /// nothing after it that would make it a float, read and converted in
    /// one pass: `(negative, magnitude)`. A magnitude beyond `u64` is left
    /// to serde (which reads it as a float).
    fn int(&mut self) -> Option<(bool, u64)> {
        let negative = self.eat(b'-').is_some();
        let mut magnitude: u64 = 0;
        match *self.s.get(self.i)? {
            // serde_json reads `-0` as a float (to keep the sign), which an
            // integer field refuses.
            b'0' if negative => return None,
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while let Some(&d @ b'0'..=b'9') = self.s.get(self.i) {
                    magnitude = magnitude
                        .checked_mul(10)?
                        .checked_add(u64::from(d - b'0'))?;
                    self.i += 1;
                }
            }
            _ => return None,
        }
        match self.s.get(self.i) {
            Some(b'.' | b'e' | b'E' | b'0'..=b'9') => None,
            _ => Some((negative, magnitude)),
        }
    }

    /// A flat event object: the fields [`BinanceEvent`] reads, each at most
    /// once and of its exact type; any other field a scalar (ignored).
    fn event_object(&mut self) -> Option<Decoded<'a>> {
        self.eat(b'{')?;
        let mut event = None;
        let mut symbol = None;
        let mut price = None;
        let mut qty = None;
        let mut trade_id = None;
        let mut trade_time = None;
        let mut buyer_is_maker = None;
        let mut envelope_key = false;
        self.ws();
        if self.eat(b'}').is_none() {
            loop {
                // A known field repeated, null or of another type: serde
                // words that error (or reads the null as absent), so each
                // arm declines it.
                match self.key()? {
                    [b'e'] => event = Some(self.str_once(event)?),
                    [b's'] => symbol = Some(self.str_once(symbol)?),
                    [b'p'] => price = Some(self.str_once(price)?),
                    [b'q'] => qty = Some(self.str_once(qty)?),
                    [b't'] if trade_id.is_none() => {
                        // A negative id is serde's error to word.
                        let (negative, magnitude) = self.int()?;
                        trade_id = Some((!negative).then_some(magnitude)?);
                    }
                    [b'T'] if trade_time.is_none() => {
                        let (negative, magnitude) = self.int()?;
                        trade_time = Some(if negative {
                            0i64.checked_sub_unsigned(magnitude)?
                        } else {
                            i64::try_from(magnitude).ok()?
                        });
                    }
                    [b'm'] if buyer_is_maker.is_none() => buyer_is_maker = Some(self.bool()?),
                    [b't' | b'T' | b'm'] => return None,
                    b"data" | b"id" | b"error" => {
                        envelope_key = true;
                        self.skip_scalar()?;
                    }
                    _ => self.skip_scalar()?,
                }
                if !self.more()? {
                    break;
                }
            }
        }
        Some(Decoded {
            routed_as_event: !envelope_key && event.is_some(),
            event: BinanceEvent {
                event: event.map(Cow::Borrowed),
                symbol: symbol.map(Cow::Borrowed),
                trade_id,
                price: price.map(Cow::Borrowed),
                qty: qty.map(Cow::Borrowed),
                trade_time,
                buyer_is_maker,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::trade::BinanceEnvelope;
    use super::*;
    use proptest::prelude::*;

    /// What `parse_frame`'s serde route hands to `parse_event`, if anything.
    fn serde_event(text: &str) -> Option<BinanceEvent<'_>> {
        let env: BinanceEnvelope = serde_json::from_str(text).ok()?;
        if env.error.is_some() {
            return None;
        }
        if let Some(ev) = env.data {
            return Some(ev);
        }
        if env.event.is_some() {
            return serde_json::from_str(text).ok();
        }
        None
    }

    proptest! {
        /// The word-at-a-time scan finds what a byte-at-a-time one finds.
        #[test]
        fn special_byte_agrees_with_a_byte_scan(
            s in prop::collection::vec(
                prop_oneof![
                    4 => 0x20u8..0x7f,
                    1 => Just(b'"'),
                    1 => Just(b'\\'),
                    1 => 0u8..0x20,
                    1 => 0x80u8..=0xff,
                    // Each test's edges: 0x1f/0x20, and the neighbours of
                    // `"` and `\\`.
                    2 => prop::sample::select(vec![0x1fu8, 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80]),
                ],
                0..40,
            )
        ) {
            let expected = s.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(tickbridge_model::tick::json_special_byte(&s), expected);
        }
    }

    #[test]
    fn plain_trade_frames_take_the_fast_path() {
        let ev = r#"{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}"#;
        let frames = [
            ev.to_string(),
            format!(r#"{{"stream":"bnbbtc@trade","data":{ev}}}"#),
            format!(r#"{{"data":{ev},"stream":"bnbbtc@trade"}}"#),
            format!(" {{ \"stream\" : \"bnbbtc@trade\" ,\n\"data\" : {} }}\n", ev.replace(',', " ,\t")),
            r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1579481530911,"s":"BTCUSDT","t":158410082,"p":"0.01914100","q":"0.00700000","b":4110671841,"a":4110671533,"T":1579481530910,"m":false,"M":true}}"#.to_string(),
        ];
        for f in &frames {
            let fast = trade_event(f);
            assert!(fast.is_some(), "fast path declined {f}");
            assert_eq!(fast, serde_event(f), "{f}");
        }
        // Binance's own layout, bare or wrapped, takes the canonical reader;
        // another order, whitespace or extra fields the general one.
        for f in &frames[..2] {
            assert_eq!(canonical(f), serde_event(f), "{f}");
        }
        for f in &frames[2..] {
            assert_eq!(canonical(f), None, "{f}");
        }
        let ev = trade_event(&frames[1]).unwrap();
        assert_eq!(
            (
                ev.symbol.as_deref(),
                ev.trade_id,
                ev.price.as_deref(),
                ev.trade_time,
                ev.buyer_is_maker
            ),
            (
                Some("BNBBTC"),
                Some(12345),
                Some("0.001"),
                Some(1672515782136),
                Some(true)
            )
        );
    }

    #[test]
    fn everything_else_goes_to_serde() {
        for f in [
            r#"{"result":null,"id":1}"#,
            r#"{"error":{"code":2,"msg":"Invalid request"},"id":1}"#,
            r#"{"e":"trade","s":"BNB\u0042TC","t":1,"p":"1","q":"1","T":1,"m":true}"#,
            r#"{"e":"trade","s":"BNBBTC","t":1.0,"p":"1","q":"1","T":1,"m":true}"#,
            r#"{"e":"trade","s":"BNBBTC","t":1,"t":2,"p":"1","q":"1","T":1,"m":true}"#,
            r#"{"e":"trade","s":"BNBBTC","t":-1,"p":"1","q":"1","T":1,"m":true}"#,
            r#"{"e":"trade","s":"BNBBTC","t":18446744073709551616,"p":"1","q":"1","T":1,"m":true}"#,
            r#"{"e":"trade","s":"BNBBTC","t":01,"p":"1","q":"1","T":1,"m":true}"#,
            r#"{"e":"trade","s":"BNBBTC","t":1,"p":"1","q":"1","T":-0,"m":true}"#,
            r#"{"e":"trade","s":null,"t":1,"p":"1","q":"1","T":1,"m":true}"#,
            r#"{"e":"trade","s":"BNBBTC","t":1,"p":"1","q":"1","T":1,"m":true,"x":{}}"#,
            r#"{"e":"trade","s":"BNBBTC","t":1,"p":"1","q":"1","T":1,"m":true,"id":1}"#,
            r#"{"stream":"x","data":{"e":"trade"},"id":1}"#,
            r#"{"stream":"x","data":{"e":"trade"},"data":{"e":"trade"}}"#,
            r#"{"stream":"x","data":{"e":"trade"}} x"#,
            r#"{"stream":"x","data":{"e":"trade"}"#,
        ] {
            assert_eq!(trade_event(f), None, "{f}");
        }
    }

    /// A JSON value as text, mostly the plain kinds a trade frame holds and
    /// sometimes one the fast path must decline.
    fn arb_value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[A-Za-z0-9@.]{0,8}".prop_map(|s| format!("\"{s}\"")),
            1 => "[A-Za-z]{0,3}".prop_map(|s| format!("\"{s}\\\"{s}\"")),
            1 => Just("\"a\\u0041\"".to_string()),
            1 => Just("\"a\u{1}b\"".to_string()),
            1 => Just("\"\u{e9}t\u{e9}\"".to_string()),
            4 => any::<u64>().prop_map(|n| n.to_string()),
            2 => any::<i64>().prop_map(|n| n.to_string()),
            1 => Just("18446744073709551616".to_string()),
            1 => Just("-9223372036854775809".to_string()),
            1 => Just("0".to_string()),
            1 => Just("-0".to_string()),
            1 => Just("007".to_string()),
            1 => Just("1.5".to_string()),
            1 => Just("1e3".to_string()),
            1 => Just("-".to_string()),
            2 => any::<bool>().prop_map(|b| b.to_string()),
            1 => Just("null".to_string()),
            1 => Just("nul".to_string()),
            1 => Just("{}".to_string()),
            1 => Just("[1]".to_string()),
        ]
    }

    fn arb_ws() -> impl Strategy<Value = &'static str> {
        prop_oneof![6 => Just(""), 1 => Just(" "), 1 => Just("\n\t "), 1 => Just("\r")]
    }

    /// An object from `(key, value)` pairs with random whitespace.
    fn object(fields: &[(String, String)], ws: &[&str]) -> String {
        let w = |i: usize| ws[i % ws.len()];
        let mut s = format!("{{{}", w(0));
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                s.push_str(&format!(",{}", w(i)));
            }
            s.push_str(&format!("\"{k}\"{}:{}{v}{}", w(i + 1), w(i + 2), w(i + 3)));
        }
        s.push('}');
        s
    }

    fn arb_event() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "e", "E", "s", "t", "p", "q", "T", "m", "M", "b", "a", "data", "id", "error", "stream",
        ]);
        let typed = |k: &'static str| -> BoxedStrategy<(String, String)> {
            let v: BoxedStrategy<String> = match k {
                "e" => prop_oneof![8 => Just("\"trade\"".to_string()), 1 => arb_value()].boxed(),
                "s" => prop_oneof![8 => Just("\"BNBBTC\"".to_string()), 1 => arb_value()].boxed(),
                "t" | "T" | "E" => prop_oneof![8 => any::<u32>().prop_map(|n| n.to_string()), 1 => arb_value()].boxed(),
                "p" | "q" => prop_oneof![8 => "[0-9]{1,4}\\.[0-9]{1,8}".prop_map(|s| format!("\"{s}\"")), 1 => arb_value()].boxed(),
                "m" | "M" => prop_oneof![8 => any::<bool>().prop_map(|b| b.to_string()), 1 => arb_value()].boxed(),
                _ => arb_value().boxed(),
            };
            v.prop_map(move |v| (k.to_string(), v)).boxed()
        };
        let canonical = ["e", "E", "s", "t", "p", "q", "T", "m", "M"];
        let fields = prop_oneof![
            // Mostly the real shape, in Binance's order...
            3 => canonical.iter().map(|k| typed(k)).collect::<Vec<_>>().prop_map(|f| f),
            // ...or any keys, repeated and shuffled.
            2 => prop::collection::vec(key.prop_flat_map(typed), 0..12),
        ];
        (fields, prop::collection::vec(arb_ws(), 1..5)).prop_map(|(f, ws)| object(&f, &ws))
    }

    fn arb_frame() -> impl Strategy<Value = String> {
        let extra = prop_oneof![
            6 => Just(None),
            1 => Just(Some(("id".to_string(), "1".to_string()))),
            1 => Just(Some(("data".to_string(), "{}".to_string()))),
            1 => Just(Some(("stream".to_string(), "\"x\"".to_string()))),
            1 => Just(Some(("e".to_string(), "\"trade\"".to_string()))),
        ];
        let tail = prop_oneof![6 => Just(""), 1 => Just(" \n"), 1 => Just("x"), 1 => Just("}")];
        (
            arb_event(),
            any::<bool>(),
            any::<bool>(),
            extra,
            tail,
            prop::collection::vec(arb_ws(), 1..4),
            0usize..4,
        )
            .prop_map(|(ev, combined, data_first, extra, tail, ws, cut)| {
                let mut s = if combined {
                    let mut f = vec![
                        ("stream".to_string(), "\"bnbbtc@trade\"".to_string()),
                        ("data".to_string(), ev),
                    ];
                    if data_first {
                        f.reverse();
                    }
                    f.extend(extra);
                    object(&f, &ws)
                } else {
                    ev
                };
                s.push_str(tail);
                // Now and then a frame cut short.
                if cut == 0 && s.len() > 2 {
                    let mut at = s.len() / 2;
                    while !s.is_char_boundary(at) {
                        at -= 1;
                    }
                    s.truncate(at);
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Whenever the fast path reads a frame, serde reads the same event
        /// from it: the fast path changes the speed, never the result.
        #[test]
        fn fast_path_agrees_with_serde(frame in arb_frame()) {
            if let Some(fast) = trade_event(&frame) {
                prop_assert_eq!(Some(fast), serde_event(&frame), "{}", frame);
            }
        }
    }
}
