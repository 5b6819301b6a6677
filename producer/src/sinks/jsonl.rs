//! JSON Lines sink: one file per UTC day, `stream_ws_YYYY-MM-DD.jsonl` (or
//! `poll_...` for polling), one message per line, so a streaming run and a
//! polling run can be diffed with ordinary tools.

use crate::buffer::Buffer;
use crate::stats::add;
use chrono::Utc;
use std::path::PathBuf;
use std::sync::Arc;
use tickbridge_model::{Shutdown, Via};
use tokio::io::AsyncWriteExt;

/// File name for a day.
pub fn file_name(via: Via, day: chrono::NaiveDate) -> String {
    match via {
        Via::Ws => format!("stream_ws_{day}.jsonl"),
        Via::Poll => format!("poll_{day}.jsonl"),
    }
}

/// Runs until the buffer is closed and written. Returns messages not written.
pub async fn run(
    dir: PathBuf,
    via: Via,
    buffer: Arc<Buffer>,
    stats: Arc<crate::stats::Stats>,
    hard_stop: Shutdown,
) -> Result<u64, std::io::Error> {
    tokio::fs::create_dir_all(&dir).await?;
    let st = &stats.jsonl;
    add(&st.connects, 1);
    let mut day = Utc::now().date_naive();
    let open = |day| {
        let path = dir.join(file_name(via, day));
        async move {
            let f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .await?;
            tracing::info!(path = %path.display(), "writing JSON Lines");
            Ok::<_, std::io::Error>(tokio::io::BufWriter::with_capacity(1 << 20, f))
        }
    };
    let mut file = open(day).await?;
    let mut batch = Vec::with_capacity(4096);
    loop {
        tokio::select! {
            _ = hard_stop.cancelled() => {
                file.flush().await?;
                return Ok(buffer.len() as u64);
            }
            _ = buffer.pop_batch(4096, &mut batch) => {}
        }
        let notices = super::dropped_notices(&buffer, st, "jsonl");
        if batch.is_empty() && notices.is_empty() {
            file.flush().await?;
            return Ok(0);
        }
        let today = Utc::now().date_naive();
        if today != day {
            file.flush().await?;
            day = today;
            file = open(day).await?;
        }
        let n = (batch.len() + notices.len()) as u64;
        for m in notices.iter().map(|p| &p.msg).chain(batch.iter()) {
            file.write_all(&m.body).await?;
            file.write_all(b"\n").await?;
        }
        file.flush().await?;
        add(&st.published, n);
        add(&st.confirmed, n);
        batch.clear();
    }
}
