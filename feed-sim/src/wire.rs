//! A small append-only writer for the hot path: frames are built straight
//! into one shared `BytesMut` and split off as refcounted `Utf8Bytes`, so a
//! frame costs no allocation of its own (one 64 KiB block serves a few hundred
//! frames) and numbers and timestamps are printed without `format!`.

use axum::extract::ws::Utf8Bytes;
use bytes::{BufMut, BytesMut};
use chrono::{DateTime, SecondsFormat};

/// Frame and body builder.
#[derive(Debug)]
pub struct Writer {
    buf: BytesMut,
    ts_sec: i64,
    ts_text: String,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

const BLOCK: usize = 64 * 1024;

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(BLOCK),
            ts_sec: i64::MIN,
            ts_text: String::new(),
        }
    }

    /// Makes room for one more frame.
    fn room(&mut self) {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(BLOCK);
        }
    }

    /// Appends text.
    pub fn s(&mut self, s: &str) -> &mut Self {
        self.room();
        self.buf.put_slice(s.as_bytes());
        self
    }

    /// Appends an unsigned integer.
    pub fn u(&mut self, v: u64) -> &mut Self {
        let mut tmp = itoa::Buffer::new();
        let digits = tmp.format(v);
        self.room();
        self.buf.put_slice(digits.as_bytes());
        self
    }

    /// Appends a signed integer.
    pub fn i(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            self.s("-");
        }
        self.u(v.unsigned_abs())
    }

    /// Appends `ticks * 10^-scale` printed with exactly `out_scale` decimals
    /// (`out_scale >= scale`: Binance pads every price to 8 decimals).
    pub fn dec(&mut self, ticks: u64, scale: u32, out_scale: u32) -> &mut Self {
        let out_scale = out_scale.max(scale);
        let v = ticks * 10u64.pow(out_scale - scale);
        let unit = 10u64.pow(out_scale);
        self.u(v / unit);
        if out_scale > 0 {
            let frac = v % unit;
            let mut tmp = [b'0'; 20];
            let digits = out_scale as usize;
            let mut f = frac;
            for slot in tmp[..digits].iter_mut().rev() {
                *slot = b'0' + (f % 10) as u8;
                f /= 10;
            }
            self.s(".");
            self.buf.put_slice(&tmp[..digits]);
        }
        self
    }

    /// Appends an RFC 3339 UTC time with microseconds
    /// (`2014-11-07T08:19:27.028459Z`); the date part is cached per second.
    pub fn rfc3339(&mut self, micros: i64) -> &mut Self {
        let sec = micros.div_euclid(1_000_000);
        let sub = micros.rem_euclid(1_000_000) as u64;
        if sec != self.ts_sec {
            self.ts_sec = sec;
            self.ts_text = DateTime::from_timestamp(sec, 0)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
            self.ts_text.pop(); // the 'Z'
        }
        self.room();
        self.buf.put_slice(self.ts_text.as_bytes());
        self.buf.put_u8(b'.');
        self.pad6(sub);
        self.buf.put_u8(b'Z');
        self
    }

    /// Appends seconds since the epoch with six decimals (Kraken REST).
    pub fn epoch_secs(&mut self, micros: i64) -> &mut Self {
        self.i(micros.div_euclid(1_000_000));
        self.s(".");
        self.pad6(micros.rem_euclid(1_000_000) as u64);
        self
    }

    fn pad6(&mut self, mut v: u64) {
        let mut tmp = [b'0'; 6];
        for slot in tmp.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        self.buf.put_slice(&tmp);
    }

    /// Appends a JSON string literal (quotes and escapes included).
    pub fn json_str(&mut self, s: &str) -> &mut Self {
        let quoted = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        self.s(&quoted)
    }

    /// Takes what was written as one text frame.
    pub fn frame(&mut self) -> Utf8Bytes {
        let bytes = self.buf.split().freeze();
        // Only `&str` is ever written, so this cannot fail.
        Utf8Bytes::try_from(bytes).unwrap_or_else(|_| Utf8Bytes::from_static(""))
    }

    /// Takes what was written as a `String` (REST bodies, acks).
    pub fn string(&mut self) -> String {
        let bytes = self.buf.split();
        String::from_utf8(bytes.to_vec()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times() {
        let mut w = Writer::new();
        w.dec(100_000, 8, 8);
        assert_eq!(w.string(), "0.00100000");
        w.dec(9_700_012, 2, 8);
        assert_eq!(w.string(), "97000.12000000");
        w.dec(5, 0, 0);
        assert_eq!(w.string(), "5");
        w.u(0).s(",").u(u64::MAX).s(",").i(-12);
        assert_eq!(w.string(), "0,18446744073709551615,-12");
        w.rfc3339(1_415_348_367_028_459);
        assert_eq!(w.string(), "2014-11-07T08:19:27.028459Z");
        w.epoch_secs(1_688_669_597_827_736);
        assert_eq!(w.string(), "1688669597.827736");
        w.json_str("a\"b");
        assert_eq!(w.frame().as_str(), "\"a\\\"b\"");
    }
}
