//! Proves the local stack is real: an AMQP round trip with publisher
//! confirms, and a Kafka round trip read back from offset 0 by a consumer
//! group. Needs the brokers from `scripts/stack.sh up`; fails loudly (never
//! skips) when they are missing.

use lapin::options::{
    BasicAckOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message as _;
use std::time::Duration;
use tickbridge_broker::amqp::{AmqpConfig, Topology};
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_testkit::{
    amqp_url, declare_queue, first_delivery, kafka_brokers, publish_confirmed, rand_name,
};

#[tokio::test(flavor = "multi_thread")]
async fn amqp_publish_with_confirm_and_read_back() {
    let cfg = AmqpConfig::local(&amqp_url(), "unused");
    let conn = cfg.connect("core-test").await.unwrap_or_else(|e| {
        panic!(
            "RabbitMQ is required at {} (run scripts/stack.sh up): {e}",
            cfg.masked_url()
        )
    });
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = rand_name("tb-core-test");
    declare_queue(&ch, &q, QueueDeclareOptions::default()).await;
    let confirm = publish_confirmed(&ch, "", &q, b"hello tickbridge", Default::default()).await;
    assert!(confirm.is_ack(), "broker did not ack: {confirm:?}");
    let d = first_delivery(&ch, &q, "the message back", Duration::from_secs(10)).await;
    assert_eq!(d.data, b"hello tickbridge");
    d.ack(BasicAckOptions::default()).await.unwrap();
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn topology_declares_idempotently() {
    let prefix = rand_name("tb-topo");
    let cfg = AmqpConfig::local(&amqp_url(), &prefix);
    let conn = cfg
        .connect("core-test")
        .await
        .expect("RabbitMQ is required (scripts/stack.sh up)");
    let ch = conn.create_channel().await.unwrap();
    let topo: Topology = cfg.topology();
    topo.declare(&ch).await.unwrap();
    topo.declare(&ch).await.expect("second declare is a no-op");
    topo.delete(&ch).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_produce_and_consume_from_zero_with_a_group() {
    let topic = rand_name("tb-core-test");
    let cfg = KafkaConfig::local(&kafka_brokers(), &topic, 1);
    cfg.ping(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("Kafka is required (run scripts/stack.sh up): {e}"));
    cfg.ensure_topic(&topic, 1).await.unwrap();
    let producer: FutureProducer = {
        let mut c = cfg.client_config();
        c.set("enable.idempotence", "true").set("acks", "all");
        cfg.finish(c).create().unwrap()
    };
    for i in 0..10 {
        let payload = format!("m{i}");
        producer
            .send(
                FutureRecord::to(&topic).key("BTC-USD").payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
    }
    let consumer: StreamConsumer = {
        let mut c = cfg.client_config();
        c.set("group.id", rand_name("tb-core-group"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false");
        cfg.finish(c).create().unwrap()
    };
    consumer.subscribe(&[&topic]).unwrap();
    let mut got = Vec::new();
    while got.len() < 10 {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("messages within 30s")
            .unwrap();
        if got.is_empty() {
            assert_eq!(
                m.offset(),
                0,
                "a new group with earliest starts at offset 0"
            );
        }
        got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
    }
    let want: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
}

/// The private RabbitMQ and Kafka nodes keep their data across a restart
/// (what the restart-fault tests rely on).
///
/// Long (~120 lines) on purpose: the same write, restart, read-back
/// sequence once per broker, each half a scenario read top to bottom.
#[tokio::test(flavor = "multi_thread")]
async fn private_brokers_survive_restarts_with_their_data() {
    use tickbridge_testkit::{KafkaNode, RabbitNode};
    // RabbitMQ: a durable queue with a persistent message survives a restart.
    let node = tokio::task::spawn_blocking(RabbitNode::start)
        .await
        .unwrap()
        .expect("own RabbitMQ node");
    let cfg = AmqpConfig::local(&node.url(), "unused");
    let q = rand_name("tb-durable");
    {
        let conn = cfg.connect("t").await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        declare_queue(&ch, &q, durable).await;
        let persistent = lapin::BasicProperties::default().with_delivery_mode(2);
        let c = publish_confirmed(&ch, "", &q, b"kept", persistent).await;
        assert!(c.is_ack());
    }
    let node = tokio::task::spawn_blocking(move || {
        node.restart().unwrap();
        node
    })
    .await
    .unwrap();
    assert_eq!(
        node.queue_depth(&q),
        Some(1),
        "persistent message survived the restart"
    );

    // Kafka: acknowledged records (acks=all) survive a SIGKILL of the broker
    // and a restart on the same log directory, at the same offsets; the
    // restarted broker appends after them.
    let mut broker = tokio::task::spawn_blocking(KafkaNode::start)
        .await
        .unwrap()
        .expect("own Kafka node (scripts/kafka.sh install)");
    let topic = rand_name("tb-durable");
    let k = KafkaConfig::local(&broker.brokers(), &topic, 1);
    k.ensure_topic(&topic, 1).await.unwrap();
    let send = |payload: &'static str| {
        let producer: FutureProducer = {
            let mut c = k.client_config();
            c.set("acks", "all");
            k.finish(c).create().unwrap()
        };
        let topic = topic.clone();
        async move {
            let d = producer
                .send(
                    FutureRecord::to(&topic).key("k").payload(payload),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
            (d.partition, d.offset)
        }
    };
    assert_eq!(send("durable-0").await, (0, 0));
    assert_eq!(send("durable-1").await, (0, 1));
    let broker = tokio::task::spawn_blocking(move || {
        broker.restart().unwrap();
        broker
    })
    .await
    .unwrap();
    assert_eq!(
        send("after-restart").await,
        (0, 2),
        "the restarted broker appends after the records it acknowledged"
    );
    let consumer: StreamConsumer = {
        let mut c = k.client_config();
        c.set("group.id", rand_name("g"))
            .set("auto.offset.reset", "earliest");
        k.finish(c).create().unwrap()
    };
    consumer.subscribe(&[&topic]).unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("records after restart")
            .unwrap();
        got.push((
            m.offset(),
            String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
        ));
    }
    assert_eq!(
        got,
        vec![
            (0, "durable-0".to_string()),
            (1, "durable-1".to_string()),
            (2, "after-restart".to_string())
        ]
    );
    drop(consumer);
    drop(broker);
}
