//! The compose stack's RabbitMQ set-up, on a real node of the test's own:
//! the same `stack/compose/rabbitmq.conf`, the same entrypoint rendering the
//! user from the environment, the same definition files (the untouched
//! `stack/definitions.json` plus `stack/compose/definitions.compose.json`).
//! It proves that the dedicated user logs in, that guest does not exist,
//! and that the topology and the compose-only bridge queue are there with
//! their bindings. Needs `rabbitmq-server` (scripts/stack.sh installs it).

use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::ExchangeKind;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tickbridge_broker::amqp::{AmqpConfig, DEFINITIONS_JSON};
use tickbridge_testkit::{publish_confirmed, RabbitNode};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const CONF_DIR: &str = "/etc/rabbitmq/tickbridge-definitions.d";

/// Lays out the definitions directory as docker-compose.yml mounts it and
/// runs the compose entrypoint on it; returns the compose rabbitmq.conf
/// pointed at that directory.
fn compose_setup(node_dir: &Path, user: &str, pass: &str) -> Result<String, String> {
    let defs = node_dir.join("definitions.d");
    std::fs::create_dir_all(&defs).map_err(|e| e.to_string())?;
    let copy = |from: &str, to: &str| {
        std::fs::copy(repo().join(from), defs.join(to))
            .map(|_| ())
            .map_err(|e| format!("{from}: {e}"))
    };
    copy("stack/definitions.json", "10-topology.json")?;
    copy("stack/compose/definitions.compose.json", "30-compose.json")?;
    let st = std::process::Command::new("sh")
        .arg(repo().join("stack/compose/rabbitmq-entrypoint.sh"))
        .arg("true")
        .env("TICKBRIDGE_DEFINITIONS_DIR", &defs)
        .env("TICKBRIDGE_RABBITMQ_USER", user)
        .env("TICKBRIDGE_RABBITMQ_PASSWORD", pass)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("the compose entrypoint failed: {st}"));
    }
    let conf = std::fs::read_to_string(repo().join("stack/compose/rabbitmq.conf"))
        .map_err(|e| e.to_string())?;
    if !conf.contains(CONF_DIR) {
        return Err(format!(
            "stack/compose/rabbitmq.conf no longer imports {CONF_DIR}"
        ));
    }
    Ok(conf.replace(CONF_DIR, defs.to_str().unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_rabbitmq_has_the_dedicated_user_the_topology_and_no_guest() {
    let user = "tb-compose";
    let pass = format!("pw-{:016x}", rand::random::<u64>());
    let node = RabbitNode::start_with(|dir| compose_setup(dir, user, &pass))
        .expect("a RabbitMQ node with the compose configuration");
    let url = |u: &str, p: &str| format!("amqp://{u}:{p}@127.0.0.1:{}/%2f", node.port);

    // No guest: definitions imported at boot skip the default user.
    let guest = AmqpConfig::local(&url("guest", "guest"), "ticks");
    assert!(
        guest.connect("compose-test-guest").await.is_err(),
        "guest/guest logged in to the compose RabbitMQ"
    );
    let wrong = AmqpConfig::local(&url(user, "not-the-password"), "ticks");
    assert!(wrong.connect("compose-test-wrong").await.is_err());

    let cfg = AmqpConfig::local(&url(user, &pass), "ticks");
    let conn = cfg
        .connect("compose-test")
        .await
        .expect("the dedicated user logs in");
    let ch = conn.create_channel().await.unwrap();

    // Everything stack/definitions.json declares exists, as declared
    // (a passive declare fails on a missing resource).
    let defs: Value = serde_json::from_str(DEFINITIONS_JSON).unwrap();
    for ex in defs["exchanges"].as_array().unwrap() {
        let name = ex["name"].as_str().unwrap();
        let kind = match ex["type"].as_str().unwrap() {
            "topic" => ExchangeKind::Topic,
            "fanout" => ExchangeKind::Fanout,
            "direct" => ExchangeKind::Direct,
            other => ExchangeKind::Custom(other.into()),
        };
        let opts = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        ch.exchange_declare(name.into(), kind, opts, FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("exchange {name} is missing: {e}"));
    }
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let depth = |q: String| {
        let ch = ch.clone();
        async move {
            ch.queue_declare(q.as_str().into(), passive, FieldTable::default())
                .await
                .unwrap_or_else(|e| panic!("queue {q} is missing: {e}"))
                .message_count()
        }
    };
    let mut queues: Vec<String> = defs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap().to_string())
        .collect();
    queues.push("ticks.bridge".into());
    for q in &queues {
        depth(q.clone()).await;
    }

    // The bindings route: one message on `ticks` reaches the work queue and
    // the compose-only bridge queue (and the stream, which a passive declare
    // cannot count).
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm =
        publish_confirmed(&ch, "ticks", "binance.BTC-USDT", b"{}", Default::default()).await;
    assert!(confirm.is_ack(), "{confirm:?}");
    assert_eq!(depth("ticks.work".into()).await, 1);
    assert_eq!(depth("ticks.bridge".into()).await, 1);
    let _ = conn.close(200, "done".into()).await;
}
