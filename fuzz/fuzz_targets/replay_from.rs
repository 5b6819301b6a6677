//! `--replay-from` parsing: any text must parse or give an error message,
//! never panic; whatever parses must resolve against the clock and map to a
//! stream offset (or a clear error), and its display form must parse again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickbridge_consumer::replay::ReplayFrom;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<ReplayFrom>() {
        Ok(r) => {
            let shown = r.to_string();
            if let Err(e) = shown.parse::<ReplayFrom>() {
                panic!("{text:?} parsed as {r:?}, displayed as {shown:?}, which fails: {e}");
            }
            let start = r.resolve(chrono::Utc::now());
            let _ = start.stream_offset();
        }
        Err(e) => assert!(e.contains("--replay-from"), "unclear error: {e}"),
    }
});
