//! RabbitMQ connection and topology, shared by producer, workers, consumers
//! and the bridge.
//!
//! The topology (exchange `ticks`, work queue, dead-letter exchange and queue,
//! stream queue, bindings) lives in `stack/definitions.json`. The setup script
//! loads that file into the broker, the compose stack mounts it, and
//! [`Topology::declare`] declares the very same resources from the very same
//! file, so the three can never disagree. A `prefix` renames every resource,
//! which is how tests get private, random names.

use crate::error::{BrokerReply, Error, Result};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use tickbridge_model::telemetry::mask_url;

/// Text of `stack/definitions.json`, compiled in.
pub const DEFINITIONS_JSON: &str = include_str!("../../stack/definitions.json");

/// The prefix every resource in `stack/definitions.json` carries.
pub const DEFAULT_PREFIX: &str = "ticks";

/// Longest one AMQP step (an ack, a publish and its confirm, a passive
/// declare, opening or closing a channel) may take. On a live connection
/// each takes milliseconds. When the broker goes away at an unlucky moment
/// (a node stopping while a request is in flight), lapin can leave the
/// step's future pending for good; a client stuck in one would neither
/// notice the loss nor hear its shutdown signal. Past this limit the
/// connection counts as lost and the caller rebuilds it: unacked deliveries
/// return to their queue, unconfirmed publishes are sent again.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Closes a connection at the end of a session, waiting at most
/// [`STEP_TIMEOUT`] for the broker's answer: a node that went away must not
/// hold a shutdown up, and nothing is lost by not waiting (what is unacked
/// returns to its queue).
pub async fn close_connection(conn: &Connection, reason: &str) {
    let _ = tokio::time::timeout(STEP_TIMEOUT, conn.close(200, reason.into())).await;
}

/// Runs one AMQP step under `limit`; past it the step is abandoned with
/// [`Error::Timeout`], which every crate treats as a lost connection
/// (recoverable, so the caller reconnects).
pub async fn bounded<T, E: From<Error>>(
    what: &str,
    limit: Duration,
    step: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, E> {
    match tokio::time::timeout(limit, step).await {
        Ok(r) => r,
        Err(_) => Err(E::from(Error::Timeout {
            what: format!("RabbitMQ ({what})"),
            secs: limit.as_secs().max(1),
        })),
    }
}

/// Connection settings shared by every AMQP client in tickbridge.
#[derive(Debug, Clone, clap::Args)]
pub struct AmqpConfig {
    /// AMQP URL of the RabbitMQ broker (`amqps://` for TLS). The password is
    /// masked in every log line.
    #[arg(
        id = "amqp_url",
        long = "amqp-url",
        env = "AMQP_URL",
        default_value = "amqp://127.0.0.1:5672/%2f"
    )]
    pub url: String,
    /// Prefix of the exchange and queue names (`ticks` gives exchange `ticks`,
    /// queues `ticks.work`, `ticks.dlq`, `ticks.stream`). Lets several
    /// pipelines share a broker.
    #[arg(id = "amqp_prefix", long = "amqp-prefix", env = "AMQP_PREFIX", default_value = DEFAULT_PREFIX)]
    pub prefix: String,
    /// Seconds to wait for the TCP connect and AMQP handshake before the
    /// attempt counts as failed.
    #[arg(
        id = "amqp_connect_timeout",
        long = "amqp-connect-timeout",
        env = "AMQP_CONNECT_TIMEOUT",
        default_value_t = 10
    )]
    pub connect_timeout_secs: u64,
    /// PEM file of a private certificate authority that signed the broker's
    /// TLS certificate, for `amqps://` URLs; trusted in addition to Mozilla's
    /// public roots. A certificate neither vouches for fails the handshake
    /// with a certificate error, which is never retried.
    #[arg(id = "amqp_ca_file", long = "amqp-ca-file", env = "AMQP_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

impl AmqpConfig {
    /// Config for a local broker with the given prefix (tests, benches).
    pub fn local(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_string(),
            prefix: prefix.to_string(),
            connect_timeout_secs: 10,
            ca_file: None,
        }
    }

    /// The topology these settings name.
    pub fn topology(&self) -> Topology {
        Topology::new(&self.prefix)
    }

    /// URL with the password masked, for logs.
    pub fn masked_url(&self) -> String {
        mask_url(&self.url)
    }

    /// Opens one connection, bounded by the connect timeout. `name` shows in
    /// the management UI's connection list.
    pub async fn connect(&self, name: &str) -> Result<Connection> {
        validate_amqp_url(&self.url)?;
        let tls = self.tls_config()?;
        let props = ConnectionProperties::default().with_connection_name(name.into());
        let secs = self.connect_timeout_secs.max(1);
        let runtime = lapin::runtime::default_runtime()?;
        match tokio::time::timeout(
            Duration::from_secs(secs),
            Connection::connect_with_config(&self.url, props, tls, runtime),
        )
        .await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(Error::Amqp(e)),
            Err(_) => Err(Error::Timeout {
                what: format!("RabbitMQ at {}", self.masked_url()),
                secs,
            }),
        }
    }

    /// Startup check for binaries that otherwise reconnect forever: one
    /// connection must succeed now, or the run ends with a terminal
    /// [`Error::Config`] naming the (masked) URL and what to check. After
    /// startup the same failures are retried with backoff instead.
    pub async fn preflight(&self, name: &str) -> Result<()> {
        match self.connect(name).await {
            Ok(conn) => {
                let _ = conn.close(200, "preflight".into()).await;
                Ok(())
            }
            Err(e @ Error::Config(_)) => Err(e),
            Err(e) => Err(Error::Config(self.unusable(&e))),
        }
    }

    /// One line for a broker that could not be used at startup: the masked
    /// URL, the error, and what to check (credentials for `ACCESS_REFUSED`,
    /// the vhost for `NOT_ALLOWED`, `--amqp-ca-file` for a certificate
    /// error, the host name when it does not resolve).
    pub fn unusable(&self, e: &Error) -> String {
        format!(
            "RabbitMQ at {} is not usable: {} ({})",
            self.masked_url(),
            one_line(&e.to_string()),
            amqp_hint(&self.url, e)
        )
    }

    /// The TLS settings of a connection: the `--amqp-ca-file` authority, if
    /// any. Read at each connect, so a renewed CA file is picked up on
    /// reconnect.
    fn tls_config(&self) -> Result<lapin::tcp::OwnedTLSConfig> {
        let mut tls = lapin::tcp::OwnedTLSConfig::default();
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("--amqp-ca-file {}: {e}", path.display())))?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(Error::Config(format!(
                    "--amqp-ca-file {}: no PEM certificate in the file",
                    path.display()
                )));
            }
            tls.cert_chain = Some(pem);
        }
        Ok(tls)
    }
}

/// What to check, for an error from the first connection: from the
/// broker's typed reply, the TLS library's typed error, or a look-up of the
/// URL's host name; never from the error's text.
fn amqp_hint(url: &str, e: &Error) -> &'static str {
    use crate::error::BrokerReply;
    let lapin = match e {
        Error::Amqp(l) => Some(l),
        _ => None,
    };
    match lapin.and_then(BrokerReply::of) {
        Some(BrokerReply::AccessRefused) => return "check the user and password in --amqp-url",
        Some(BrokerReply::NotAllowed) => {
            return "check the vhost in --amqp-url and the user's permissions on it"
        }
        _ => {}
    }
    if lapin.is_some_and(is_untrusted_certificate) {
        return "check --amqp-ca-file: it must hold the CA that signed the broker's certificate";
    }
    if !host_resolves(url) {
        return "check the host name in --amqp-url";
    }
    "is RabbitMQ running on that host and port?"
}

/// `false` when the URL's host name does not resolve (a typo, a container
/// name outside its network).
fn host_resolves(url: &str) -> bool {
    use std::net::ToSocketAddrs;
    let Ok(u) = url::Url::parse(url) else {
        return true;
    };
    let Some(host) = u.host_str() else {
        return true;
    };
    let port = u.port().unwrap_or(5672);
    (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .is_ok_and(|mut a| a.next().is_some())
}

/// `true` when the TLS handshake failed on the broker's certificate (not
/// signed by a trusted CA, expired, wrong name): rustls's typed error
/// somewhere in the I/O error's chain.
pub(crate) fn is_untrusted_certificate(e: &lapin::Error) -> bool {
    let lapin::ErrorKind::IOError(io) = e.kind() else {
        return false;
    };
    let mut cur: Option<&(dyn std::error::Error + 'static)> = io
        .get_ref()
        .map(|x| x as &(dyn std::error::Error + 'static));
    while let Some(err) = cur {
        if matches!(
            err.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidCertificate(_))
        ) {
            return true;
        }
        cur = err.source();
    }
    false
}

/// A channel in confirm mode: every publish on it is confirmed (or
/// returned, or nacked) by the broker. The one place tickbridge opens one.
pub async fn confirm_channel(conn: &Connection) -> Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await?;
    Ok(ch)
}

/// Messages ready in `queue`, by a passive declare on a throwaway channel
/// (a missing queue closes the channel it was asked on). `None` when the
/// queue does not exist; each caller turns that into its own error naming
/// the flag to fix.
pub async fn queue_depth(conn: &Connection, queue: &str) -> Result<Option<u32>> {
    let ch = conn.create_channel().await?;
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch
        .queue_declare(queue.into(), opts, FieldTable::default())
        .await
    {
        Ok(q) => {
            let _ = ch.close(200, "depth".into()).await;
            Ok(Some(q.message_count()))
        }
        Err(e) if BrokerReply::of(&e) == Some(BrokerReply::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `false` when the topic exchange `exchange` does not exist, by a passive
/// declare on a throwaway channel. The default exchange (`""`) always does.
pub async fn exchange_exists(conn: &Connection, exchange: &str) -> Result<bool> {
    if exchange.is_empty() {
        return Ok(true);
    }
    let ch = conn.create_channel().await?;
    let opts = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            opts,
            FieldTable::default(),
        )
        .await
    {
        Ok(()) => {
            let _ = ch.close(200, "check".into()).await;
            Ok(true)
        }
        Err(e) if BrokerReply::of(&e) == Some(BrokerReply::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Collapses an error text to one line, so a binary's failure message stays
/// one line whatever a library put in it.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Rejects URLs lapin would misread, with a message that says what to write.
pub fn validate_amqp_url(raw: &str) -> Result<()> {
    let u = url::Url::parse(raw).map_err(|e| {
        Error::Config(format!(
            "bad AMQP URL {}: {e} (expected amqp://user:pass@host:5672/vhost)",
            mask_url(raw)
        ))
    })?;
    match u.scheme() {
        "amqp" | "amqps" => Ok(()),
        other => Err(Error::Config(format!(
            "bad AMQP URL {}: scheme {other:?}, expected amqp:// or amqps://",
            mask_url(raw)
        ))),
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Definitions {
    exchanges: Vec<ExchangeDef>,
    queues: Vec<QueueDef>,
    bindings: Vec<BindingDef>,
}

/// One exchange from the definitions file.
#[derive(Debug, Clone, Deserialize)]
pub struct ExchangeDef {
    /// Name after prefixing.
    pub name: String,
    /// `topic`, `fanout`, `direct` or `headers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when the last binding goes.
    #[serde(default)]
    pub auto_delete: bool,
    /// x-arguments.
    #[serde(default)]
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// One queue from the definitions file.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueDef {
    /// Name after prefixing.
    pub name: String,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when the last consumer goes.
    #[serde(default)]
    pub auto_delete: bool,
    /// x-arguments (queue type, dead-letter exchange, stream retention).
    #[serde(default)]
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// One binding from the definitions file.
#[derive(Debug, Clone, Deserialize)]
pub struct BindingDef {
    /// Exchange.
    pub source: String,
    /// Queue.
    pub destination: String,
    /// Binding key.
    pub routing_key: String,
}

/// The RabbitMQ resources of one pipeline, named from a prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Prefix in use.
    pub prefix: String,
    /// Topic exchange ticks are published to, routing key `source.symbol`.
    pub exchange: String,
    /// Dead-letter exchange.
    pub dlx: String,
    /// Work queue (one-to-one delivery).
    pub work_queue: String,
    /// Dead-letter queue.
    pub dlq: String,
    /// Stream queue (broadcast with replay).
    pub stream_queue: String,
    exchanges: Vec<ExchangeDef>,
    queues: Vec<QueueDef>,
    bindings: Vec<BindingDef>,
}

fn rename(name: &str, prefix: &str) -> String {
    match name.strip_prefix(DEFAULT_PREFIX) {
        Some(rest) if rest.is_empty() || rest.starts_with('.') => format!("{prefix}{rest}"),
        _ => name.to_string(),
    }
}

impl Topology {
    /// The topology of `stack/definitions.json` with `ticks` replaced by `prefix`.
    pub fn new(prefix: &str) -> Self {
        let defs: Definitions =
            serde_json::from_str(DEFINITIONS_JSON).expect("stack/definitions.json is valid");
        let r = |n: &str| rename(n, prefix);
        Topology {
            prefix: prefix.to_string(),
            exchange: r("ticks"),
            dlx: r("ticks.dlx"),
            work_queue: r("ticks.work"),
            dlq: r("ticks.dlq"),
            stream_queue: r("ticks.stream"),
            exchanges: defs
                .exchanges
                .into_iter()
                .map(|mut e| {
                    e.name = r(&e.name);
                    e
                })
                .collect(),
            queues: defs
                .queues
                .into_iter()
                .map(|mut q| {
                    q.name = r(&q.name);
                    for v in q.arguments.values_mut() {
                        if let Some(s) = v.as_str() {
                            *v = serde_json::Value::String(r(s));
                        }
                    }
                    q
                })
                .collect(),
            bindings: defs
                .bindings
                .into_iter()
                .map(|mut b| {
                    b.source = r(&b.source);
                    b.destination = r(&b.destination);
                    b
                })
                .collect(),
        }
    }

    /// Exchanges to declare.
    pub fn exchanges(&self) -> &[ExchangeDef] {
        &self.exchanges
    }
    /// Queues to declare.
    pub fn queues(&self) -> &[QueueDef] {
        &self.queues
    }
    /// Bindings to declare.
    pub fn bindings(&self) -> &[BindingDef] {
        &self.bindings
    }

    /// Routing key of a message: `source.symbol`.
    pub fn routing_key(source: &str, symbol: &str) -> String {
        let mut key = String::with_capacity(source.len() + 1 + symbol.len());
        key.push_str(source);
        key.push('.');
        key.push_str(symbol);
        key
    }

    /// Declares every exchange, queue and binding. Idempotent: declaring what
    /// exists with the same arguments is a no-op on the broker.
    pub async fn declare(&self, channel: &Channel) -> Result<()> {
        for e in &self.exchanges {
            let kind = match e.kind.as_str() {
                "topic" => ExchangeKind::Topic,
                "fanout" => ExchangeKind::Fanout,
                "direct" => ExchangeKind::Direct,
                "headers" => ExchangeKind::Headers,
                other => ExchangeKind::Custom(other.into()),
            };
            channel
                .exchange_declare(
                    e.name.as_str().into(),
                    kind,
                    ExchangeDeclareOptions {
                        durable: e.durable,
                        auto_delete: e.auto_delete,
                        ..Default::default()
                    },
                    to_field_table(&e.arguments),
                )
                .await?;
        }
        for q in &self.queues {
            channel
                .queue_declare(
                    q.name.as_str().into(),
                    QueueDeclareOptions {
                        durable: q.durable,
                        auto_delete: q.auto_delete,
                        ..Default::default()
                    },
                    to_field_table(&q.arguments),
                )
                .await?;
        }
        for b in &self.bindings {
            channel
                .queue_bind(
                    b.destination.as_str().into(),
                    b.source.as_str().into(),
                    b.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Deletes every queue and exchange (test cleanup).
    pub async fn delete(&self, channel: &Channel) -> Result<()> {
        for q in &self.queues {
            channel
                .queue_delete(q.name.as_str().into(), Default::default())
                .await?;
        }
        for e in &self.exchanges {
            channel
                .exchange_delete(e.name.as_str().into(), Default::default())
                .await?;
        }
        Ok(())
    }
}

/// Converts JSON x-arguments to an AMQP field table.
pub fn to_field_table(args: &serde_json::Map<String, serde_json::Value>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in args {
        let value = match v {
            serde_json::Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
            serde_json::Value::Bool(b) => AMQPValue::Boolean(*b),
            serde_json::Value::Number(n) if n.is_i64() => {
                AMQPValue::LongLongInt(n.as_i64().unwrap_or_default())
            }
            serde_json::Value::Number(n) => AMQPValue::Double(n.as_f64().unwrap_or_default()),
            _ => continue,
        };
        t.insert(ShortString::from(k.as_str()), value);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_renames_everything() {
        let t = Topology::new("t-42");
        assert_eq!(t.exchange, "t-42");
        assert_eq!(t.work_queue, "t-42.work");
        assert_eq!(t.stream_queue, "t-42.stream");
        let work = t.queues().iter().find(|q| q.name == "t-42.work").unwrap();
        assert_eq!(work.arguments["x-dead-letter-exchange"], "t-42.dlx");
        assert!(t.bindings().iter().all(|b| b.source.starts_with("t-42")));
        assert!(t.exchanges().iter().all(|e| e.name.starts_with("t-42")));
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(validate_amqp_url("amqp://127.0.0.1:5672/%2f").is_ok());
        let e = validate_amqp_url("http://guest:secret@host")
            .unwrap_err()
            .to_string();
        assert!(e.contains("scheme") && !e.contains("secret"), "{e}");
        assert!(validate_amqp_url("nonsense").is_err());
    }
}
