//! `--state-file`: the last trade id per symbol, carried from one run of a
//! producer to the next.
//!
//! Without it a restarted producer starts with no memory: the trades the
//! exchange sent while no producer was reading would be missing downstream
//! with no gap notice. With it the first trade of each symbol must follow on
//! from the previous run, or the pipeline publishes a `reconnect` notice for
//! the ids in between (`Continuity::resume`). The file is small JSON,
//! `{"BTC-USDT": 12345, ...}`, replaced atomically (write, then rename), so a
//! crash mid-write leaves the previous version.

use crate::error::ProducerError;
use std::collections::BTreeMap;
use std::path::Path;

/// Reads the state; a missing file is an empty state (first run), anything
/// unreadable is a configuration error naming the file.
pub fn load(path: &Path) -> Result<BTreeMap<String, u64>, ProducerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            ProducerError::Config(format!(
                "--state-file {}: not a JSON object of symbol -> last trade id ({e}); \
                 fix or delete it",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(ProducerError::Config(format!(
            "--state-file {}: {e}",
            path.display()
        ))),
    }
}

/// Replaces the state atomically.
pub fn save(path: &Path, state: &BTreeMap<String, u64>) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(state)?)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        assert!(load(&p).unwrap().is_empty());
        let mut s = BTreeMap::new();
        s.insert("BTC-USDT".to_string(), 42u64);
        save(&p, &s).unwrap();
        assert_eq!(load(&p).unwrap(), s);
        std::fs::write(&p, "{\"BTC-USDT\": -1").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains("--state-file") && e.contains("state.json"),
            "{e}"
        );
    }
}
