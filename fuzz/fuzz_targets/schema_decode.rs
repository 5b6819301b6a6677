//! `tickbridge_model::schema::decode`, what every broker reader runs on a
//! message body: any bytes must give `Ok` or a `DecodeError` with a kind,
//! never a panic; whatever decodes must serialize back to a body that
//! decodes to the same message (the schema and the types agree); and
//! `validate` must hold on any JSON value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickbridge_model::schema::{decode, validate};

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(msg) => {
            let again = serde_json::to_vec(&msg).expect("a decoded message serializes");
            let back = decode(&again)
                .unwrap_or_else(|e| panic!("re-serialized message fails to decode: {e}"));
            assert_eq!(back, msg, "round trip changed the message");
        }
        Err(e) => {
            assert!(!e.kind().is_empty());
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = validate(&value);
    }
});
