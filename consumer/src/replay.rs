//! `--replay-from`: where a broadcast reader starts, in one syntax for Kafka
//! and the RabbitMQ stream.
//!
//! | value | Kafka | RabbitMQ stream (`x-stream-offset`) |
//! | --- | --- | --- |
//! | `0`, `1500` | that offset on every partition | that offset |
//! | `0:100,2:5` | those offsets on those partitions, committed offsets elsewhere | only partition `0` exists |
//! | `earliest` | `Offset::Beginning` | `first` |
//! | `latest` | `Offset::End` (only new messages) | `next` (only new messages; `last` would replay the last chunk) |
//! | `2026-11-23T18:00:00Z` | `offsets_for_times` | timestamp (whole seconds) |
//! | `15m`, `1h30m` | `offsets_for_times(now - 15m)` | timestamp `now - 15m` |
//!
//! Durations are turned into timestamps once, when the reader starts, so
//! every partition is sought to the same instant.

use chrono::{DateTime, Utc};
use lapin::types::{AMQPValue, LongString};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A parsed `--replay-from` value: a start the broker can be told as it is,
/// or a duration that becomes one once the reader knows the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayFrom {
    /// Earliest, latest, an offset, partition offsets or a timestamp.
    At(StartAt),
    /// First message written at most this long before the reader started.
    Ago(Duration),
}

/// Where a reader starts, once durations are resolved against the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// Oldest retained message.
    Earliest,
    /// Only messages written after the reader starts.
    Latest,
    /// The same offset on every partition.
    Offset(i64),
    /// Offsets per partition; partitions not listed keep their committed offset.
    Partitions(BTreeMap<i32, i64>),
    /// First message written at or after this instant.
    Timestamp(DateTime<Utc>),
}

const EXPECTED: &str = "expected an offset (0), partition offsets (0:100,1:250), earliest, latest, an RFC 3339 timestamp (2026-11-23T18:00:00Z) or a duration ago (15m)";

impl FromStr for ReplayFrom {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let s = raw.trim();
        let bad = |why: &str| format!("invalid --replay-from {raw:?}: {why}; {EXPECTED}");
        match s.to_ascii_lowercase().as_str() {
            "" => return Err(bad("empty")),
            "earliest" | "beginning" | "first" => return Ok(ReplayFrom::At(StartAt::Earliest)),
            "latest" | "end" | "next" => return Ok(ReplayFrom::At(StartAt::Latest)),
            _ => {}
        }
        if let Ok(n) = s.parse::<i64>() {
            return if n < 0 {
                Err(bad("offsets are not negative"))
            } else {
                Ok(ReplayFrom::At(StartAt::Offset(n)))
            };
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(ReplayFrom::At(StartAt::Timestamp(t.with_timezone(&Utc))));
        }
        if s.contains(':')
            && s.split(',').all(|p| {
                p.split_once(':')
                    .is_some_and(|(a, b)| is_digits(a) && is_digits(b))
            })
        {
            let mut map = BTreeMap::new();
            for part in s.split(',') {
                let (p, o) = part.split_once(':').unwrap_or_default();
                let p: i32 = p
                    .trim()
                    .parse()
                    .map_err(|_| bad("partition number too large"))?;
                let o: i64 = o.trim().parse().map_err(|_| bad("offset too large"))?;
                if map.insert(p, o).is_some() {
                    return Err(bad(&format!("partition {p} given twice")));
                }
            }
            return Ok(ReplayFrom::At(StartAt::Partitions(map)));
        }
        if s.starts_with(|c: char| c.is_ascii_digit()) {
            // humantime panics when a sum of parts carries past `u64::MAX`
            // seconds (`18446744073709551615.5s0.5s`), so it only sees
            // durations that cannot come near: at most 64 characters, each
            // number at most 9 digits (999,999,999 years is ~3e16 s).
            if s.len() > MAX_DURATION_TEXT
                || s.split(|c: char| !c.is_ascii_digit())
                    .any(|run| run.len() > MAX_DURATION_DIGITS)
            {
                return Err(bad(&format!(
                    "a duration has at most {MAX_DURATION_TEXT} characters and numbers of at most {MAX_DURATION_DIGITS} digits"
                )));
            }
            if let Ok(d) = humantime::parse_duration(s) {
                // Bounded so the display form (`1000years 11months ...`)
                // stays within the limits above and parses again.
                if d > MAX_AGO {
                    return Err(bad("a duration goes back at most 1000 years"));
                }
                return Ok(ReplayFrom::Ago(d));
            }
        }
        Err(bad("not recognised"))
    }
}

/// Longest duration text handed to humantime.
const MAX_DURATION_TEXT: usize = 64;
/// Most digits in one number of a duration.
const MAX_DURATION_DIGITS: usize = 9;
/// Longest duration ago: 1000 years of 365.25 days (humantime's year).
const MAX_AGO: Duration = Duration::from_secs(1000 * 31_557_600);

fn is_digits(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for ReplayFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayFrom::At(at) => at.fmt(f),
            ReplayFrom::Ago(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

/// The `--replay-from` text of a start, which parses back to it.
impl fmt::Display for StartAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartAt::Earliest => f.write_str("earliest"),
            StartAt::Latest => f.write_str("latest"),
            StartAt::Offset(n) => write!(f, "{n}"),
            StartAt::Partitions(m) => {
                let parts: Vec<String> = m.iter().map(|(p, o)| format!("{p}:{o}")).collect();
                f.write_str(&parts.join(","))
            }
            StartAt::Timestamp(t) => f.write_str(&tickbridge_model::tick::ts_micros::format(t)),
        }
    }
}

impl ReplayFrom {
    /// Resolves a duration against `now`; everything else passes through.
    pub fn resolve(&self, now: DateTime<Utc>) -> StartAt {
        match self {
            ReplayFrom::At(at) => at.clone(),
            ReplayFrom::Ago(d) => {
                let d = chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX);
                StartAt::Timestamp(
                    now.checked_sub_signed(d)
                        .unwrap_or(DateTime::<Utc>::MIN_UTC),
                )
            }
        }
    }
}

impl StartAt {
    /// The `x-stream-offset` consumer argument for a RabbitMQ stream.
    ///
    /// Streams have one "partition", so per-partition offsets are only
    /// accepted for partition 0. Timestamps are whole seconds on the wire
    /// (AMQP `timestamp`), rounded down, and the broker starts at the first
    /// chunk written at or after it.
    pub fn stream_offset(&self) -> Result<AMQPValue, String> {
        Ok(match self {
            StartAt::Earliest => AMQPValue::LongString(LongString::from("first")),
            StartAt::Latest => AMQPValue::LongString(LongString::from("next")),
            StartAt::Offset(n) => AMQPValue::LongLongInt(*n),
            StartAt::Partitions(m) => match (m.len(), m.get(&0)) {
                (1, Some(n)) => AMQPValue::LongLongInt(*n),
                _ => {
                    return Err(format!(
                        "a RabbitMQ stream has a single partition: use --replay-from 0:OFFSET or OFFSET, not {}",
                        self
                    ))
                }
            },
            StartAt::Timestamp(t) => AMQPValue::Timestamp(t.timestamp().max(0) as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TestCase {
        input: &'static str,
        expected: Result<ReplayFrom, &'static str>,
    }

    #[test]
    fn parses_every_form() {
        let ts = DateTime::parse_from_rfc3339("2026-11-23T18:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let cases = [
            // TC0: offset zero on every partition
            TestCase {
                input: "0",
                expected: Ok(ReplayFrom::At(StartAt::Offset(0))),
            },
            // TC1: any offset
            TestCase {
                input: " 1500 ",
                expected: Ok(ReplayFrom::At(StartAt::Offset(1500))),
            },
            // TC2: per partition
            TestCase {
                input: "0:100,2:5",
                expected: Ok(ReplayFrom::At(StartAt::Partitions(BTreeMap::from([
                    (0, 100),
                    (2, 5),
                ])))),
            },
            // TC3: names, any case, with Kafka and stream spellings
            TestCase {
                input: "Earliest",
                expected: Ok(ReplayFrom::At(StartAt::Earliest)),
            },
            TestCase {
                input: "first",
                expected: Ok(ReplayFrom::At(StartAt::Earliest)),
            },
            TestCase {
                input: "latest",
                expected: Ok(ReplayFrom::At(StartAt::Latest)),
            },
            // TC4: RFC 3339, with and without offset
            TestCase {
                input: "2026-11-23T18:00:00Z",
                expected: Ok(ReplayFrom::At(StartAt::Timestamp(ts))),
            },
            TestCase {
                input: "2026-11-23T19:00:00+01:00",
                expected: Ok(ReplayFrom::At(StartAt::Timestamp(ts))),
            },
            // TC5: durations
            TestCase {
                input: "15m",
                expected: Ok(ReplayFrom::Ago(Duration::from_secs(900))),
            },
            TestCase {
                input: "1h30m",
                expected: Ok(ReplayFrom::Ago(Duration::from_secs(5400))),
            },
            // TC6: garbage is a clear error
            TestCase {
                input: "banana",
                expected: Err("invalid --replay-from \"banana\": not recognised"),
            },
            TestCase {
                input: "-5",
                expected: Err("not negative"),
            },
            TestCase {
                input: "",
                expected: Err("empty"),
            },
            TestCase {
                input: "0:1,0:2",
                expected: Err("given twice"),
            },
            TestCase {
                input: "15 parsecs",
                expected: Err("not recognised"),
            },
        ];
        for tc in cases {
            let got = tc.input.parse::<ReplayFrom>();
            match (&got, &tc.expected) {
                (Ok(g), Ok(e)) => assert_eq!(g, e, "{:?}", tc.input),
                (Err(g), Err(e)) => {
                    assert!(g.contains(e), "{:?}: {g}", tc.input);
                    assert!(!g.contains('\n'), "one line: {g}");
                }
                _ => panic!("{:?}: got {got:?}, expected {:?}", tc.input, tc.expected),
            }
        }
    }

    #[test]
    fn maps_to_stream_offsets() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T18:15:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| {
            s.parse::<ReplayFrom>()
                .unwrap()
                .resolve(now)
                .stream_offset()
        };
        assert_eq!(
            at("earliest").unwrap(),
            AMQPValue::LongString("first".into())
        );
        assert_eq!(at("latest").unwrap(), AMQPValue::LongString("next".into()));
        assert_eq!(at("42").unwrap(), AMQPValue::LongLongInt(42));
        assert_eq!(at("0:7").unwrap(), AMQPValue::LongLongInt(7));
        assert!(at("1:7").unwrap_err().contains("single partition"));
        let want = now.timestamp() as u64 - 900;
        assert_eq!(at("15m").unwrap(), AMQPValue::Timestamp(want));
        assert_eq!(
            at("2026-11-23T18:00:00Z").unwrap(),
            AMQPValue::Timestamp(want)
        );
    }

    /// Found by the `replay_from` fuzz target: humantime panicked ("overflow
    /// in Duration::new") on parts that sum past `u64::MAX` seconds. Such
    /// text is now an error that names the flag; the longest durations
    /// still accepted parse, display, parse again and resolve.
    #[test]
    fn huge_durations_are_errors_not_panics() {
        let fuzzed = "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000018446744073709551615.5s0.5s0.000015910.5s0.5s0.5s0.5s00.5s0.5s707989-:05s0.5s00.50s0.5.s02+s.2+s#.#";
        for text in [fuzzed, "18446744073709551615.5s0.5s", "1000000000s"] {
            let e = text.parse::<ReplayFrom>().unwrap_err();
            assert!(e.contains("--replay-from") && e.contains("at most"), "{e}");
        }
        for text in ["1001y", "999999999y 999999999w"] {
            let e = text.parse::<ReplayFrom>().unwrap_err();
            assert!(e.contains("at most 1000 years"), "{e}");
        }
        let longest = "1000years 11months 30days 23h 59m 59s 999ms 999us 999ns";
        assert!(longest.parse::<ReplayFrom>().is_err(), "over 1000 years");
        for text in [
            "1000y",
            "999y 11months 23h 59m 59s 999ms",
            "999999999s",
            "15m",
        ] {
            let r: ReplayFrom = text.parse().unwrap();
            assert_eq!(r.to_string().parse::<ReplayFrom>(), Ok(r.clone()), "{text}");
            let _ = r.resolve(Utc::now()).stream_offset();
        }
    }
}
