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
                    "stream" if !stream_seen => {
                        stream_seen = true;
                        r.string()?;
                    }
                    "data" if event.is_none() => event = Some(r.event_object()?.event),
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

/// A decoded event plus what the raw-stream check needs to know.
struct Decoded<'a> {
    event: BinanceEvent<'a>,
    /// The object has none of the envelope's keys (`data`, `id`, `error`)
    /// and does have `e`: serde's envelope then hands the whole frame to the
    /// event struct.
    routed_as_event: bool,
}

/// One scalar value.
enum Scalar<'a> {
    Str(&'a str),
    /// The integer's text: `-?(0|[1-9][0-9]*)`, nothing after it that
    /// would make it a float.
    Int(&'a str),
    Bool(bool),
    Null,
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

    /// An object member's key and its `:`, with the whitespace around it.
    fn key(&mut self) -> Option<&'a str> {
        let k = self.string()?;
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

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.s.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        let out = &self.text[start..self.i];
        self.i += 1;
        Some(out)
    }

    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match *self.s.get(self.i)? {
            b'"' => self.string().map(Scalar::Str),
            b't' => self.word(b"true").map(|()| Scalar::Bool(true)),
            b'f' => self.word(b"false").map(|()| Scalar::Bool(false)),
            b'n' => self.word(b"null").map(|()| Scalar::Null),
            b'-' | b'0'..=b'9' => self.int().map(Scalar::Int),
            _ => None,
        }
    }

    fn word(&mut self, w: &[u8]) -> Option<()> {
        let end = self.i + w.len();
        (self.s.get(self.i..end)? == w).then(|| self.i = end)
    }

    fn int(&mut self) -> Option<&'a str> {
        let start = self.i;
        let negative = self.eat(b'-').is_some();
        match *self.s.get(self.i)? {
            // serde_json reads `-0` as a float (to keep the sign), which an
            // integer field refuses.
            b'0' if negative => return None,
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while let Some(b'0'..=b'9') = self.s.get(self.i) {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        match self.s.get(self.i) {
            Some(b'.' | b'e' | b'E' | b'0'..=b'9') => None,
            _ => Some(&self.text[start..self.i]),
        }
    }

    /// A flat event object: the fields [`BinanceEvent`] reads, each at most
    /// once and of its exact type; any other field a scalar (ignored).
    fn event_object(&mut self) -> Option<Decoded<'a>> {
        self.eat(b'{')?;
        let mut ev = BinanceEvent {
            event: None,
            symbol: None,
            trade_id: None,
            price: None,
            qty: None,
            trade_time: None,
            buyer_is_maker: None,
        };
        let mut envelope_key = false;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(Decoded {
                event: ev,
                routed_as_event: false,
            });
        }
        loop {
            let key = self.key()?;
            let v = self.scalar()?;
            match (key, v) {
                ("e", Scalar::Str(s)) if ev.event.is_none() => ev.event = Some(Cow::Borrowed(s)),
                ("s", Scalar::Str(s)) if ev.symbol.is_none() => ev.symbol = Some(Cow::Borrowed(s)),
                ("p", Scalar::Str(s)) if ev.price.is_none() => ev.price = Some(Cow::Borrowed(s)),
                ("q", Scalar::Str(s)) if ev.qty.is_none() => ev.qty = Some(Cow::Borrowed(s)),
                ("t", Scalar::Int(n)) if ev.trade_id.is_none() => {
                    ev.trade_id = Some(n.parse::<u64>().ok()?)
                }
                ("T", Scalar::Int(n)) if ev.trade_time.is_none() => {
                    ev.trade_time = Some(n.parse::<i64>().ok()?)
                }
                ("m", Scalar::Bool(b)) if ev.buyer_is_maker.is_none() => {
                    ev.buyer_is_maker = Some(b)
                }
                // A known field repeated, null or of another type: serde
                // words that error (or reads the null as absent).
                ("e" | "s" | "p" | "q" | "t" | "T" | "m", _) => return None,
                ("data" | "id" | "error", _) => envelope_key = true,
                _ => {}
            }
            if !self.more()? {
                break;
            }
        }
        let routed_as_event = !envelope_key && ev.event.is_some();
        Some(Decoded {
            event: ev,
            routed_as_event,
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
