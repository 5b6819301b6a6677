//! A TCP proxy between the producer and `feed-sim`, which the scenario
//! uses to break the WebSocket on demand, at the moment the seeded schedule
//! picks:
//!
//! * **drop**: every open connection is closed at once, without a WebSocket
//!   close frame, as when an exchange drops a client. Whatever the
//!   simulator had already written and the proxy had not yet forwarded is
//!   lost on the way, exactly as on a real network.
//! * **stall**: every open connection stops forwarding anything (trades,
//!   pings, heartbeats) for a while; connections opened meanwhile are
//!   served normally. A stall longer than the producer's `--idle-timeout`
//!   makes the producer give up on the silent connection and reconnect.
//!
//! `feed-sim`'s own `--close-every`/`--stall-every` count frames per
//! connection; the proxy lets the schedule place one fault at a random
//! point in time instead, without changing the simulator.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// What connections must do, by connection id: ids up to `drop_upto` close;
/// ids up to `stall_upto` forward nothing until `stall_until`.
#[derive(Debug, Clone, Copy)]
struct Control {
    newest: u64,
    drop_upto: u64,
    stall_upto: u64,
    stall_until: Instant,
}

/// A running proxy.
pub struct FaultProxy {
    addr: SocketAddr,
    ctl: watch::Sender<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (ctl, _) = watch::channel(Control {
            newest: 0,
            drop_upto: 0,
            stall_upto: 0,
            stall_until: Instant::now(),
        });
        let tx = ctl.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mut id = 0;
                tx.send_modify(|c| {
                    c.newest += 1;
                    id = c.newest;
                });
                let rx = tx.subscribe();
                tokio::spawn(async move {
                    if let Err(e) = pipe(client, upstream, id, rx).await {
                        tracing::debug!(conn = id, error = %e, "proxy connection ended");
                    }
                });
            }
        });
        Ok(Self { addr, ctl, task })
    }

    /// Address the producer connects to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.ctl.borrow().newest
    }

    /// Closes every open connection abruptly.
    pub fn drop_all(&self) {
        self.ctl.send_modify(|c| c.drop_upto = c.newest);
    }

    /// Stops forwarding on every open connection for `dur`.
    pub fn stall_all(&self, dur: Duration) {
        self.ctl.send_modify(|c| {
            c.stall_upto = c.newest;
            c.stall_until = Instant::now() + dur;
        });
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.drop_all();
        self.task.abort();
    }
}

async fn pipe(
    mut client: TcpStream,
    upstream: SocketAddr,
    id: u64,
    mut rx: watch::Receiver<Control>,
) -> std::io::Result<()> {
    let mut up = TcpStream::connect(upstream).await?;
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = up.split();
    let mut down_buf = vec![0u8; 64 * 1024];
    let mut up_buf = vec![0u8; 16 * 1024];
    loop {
        let c = *rx.borrow_and_update();
        if id <= c.drop_upto {
            return Ok(());
        }
        if id <= c.stall_upto && Instant::now() < c.stall_until {
            tokio::select! {
                _ = tokio::time::sleep_until(c.stall_until) => {}
                r = rx.changed() => if r.is_err() { return Ok(()) },
            }
            continue;
        }
        tokio::select! {
            r = ur.read(&mut down_buf) => {
                let n = r?;
                if n == 0 { return Ok(()); }
                cw.write_all(&down_buf[..n]).await?;
            }
            r = cr.read(&mut up_buf) => {
                let n = r?;
                if n == 0 { return Ok(()); }
                uw.write_all(&up_buf[..n]).await?;
            }
            r = rx.changed() => if r.is_err() { return Ok(()) },
        }
    }
}
