//! AMQP over TLS against a real RabbitMQ node: a private node with a TLS
//! listener whose certificate a throwaway CA signed (made with `openssl` at
//! test time, see `testkit::TestCa`). With `--amqp-ca-file` naming that CA,
//! a message makes the whole round trip over `amqps://` (publish, confirm,
//! consume, ack); without it, or with another CA, the connection fails with
//! a certificate error that is terminal and says what to check.

use lapin::options::{BasicAckOptions, ConfirmSelectOptions};
use std::time::Duration;
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_testkit::{first_delivery, publish_confirmed, rand_name, RabbitNode, TestCa};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_round_trip_only_with_the_right_ca() {
    let node = RabbitNode::start_tls().expect("a private RabbitMQ node with TLS");
    let url = node.amqps_url().unwrap();
    let prefix = rand_name("tb-tls");

    // TC0: the CA that signed the server certificate is trusted.
    let mut cfg = AmqpConfig::local(&url, &prefix);
    cfg.ca_file = node.ca_file();
    let conn = cfg
        .connect("tls-test")
        .await
        .unwrap_or_else(|e| panic!("amqps with the right CA must connect: {e}"));
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let topo = cfg.topology();
    topo.declare(&ch).await.unwrap();
    let body = br#"{"hello":"over TLS"}"#;
    let confirm = publish_confirmed(
        &ch,
        &topo.exchange,
        "binance.BTC-USDT",
        body,
        Default::default(),
    )
    .await;
    assert!(confirm.is_ack(), "not acked over TLS: {confirm:?}");
    let delivery = first_delivery(
        &ch,
        &topo.work_queue,
        "a delivery over TLS",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(delivery.data, body);
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    let _ = conn.close(200, "done".into()).await;

    // TC1: no CA given: only public roots are trusted, so the handshake
    // fails on the certificate, terminally, with a hint at the flag.
    let no_ca = AmqpConfig::local(&url, &prefix);
    let e = no_ca.connect("tls-test").await.unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    assert!(
        e.is_terminal(),
        "a certificate error must not be retried: {e}"
    );
    let e = no_ca.preflight("tls-test").await.unwrap_err().to_string();
    assert!(e.contains("--amqp-ca-file"), "{e}");
    assert!(!e.contains("guest:guest"), "password leaked: {e}");

    // TC2: another CA (one that did not sign the server certificate).
    let other_dir = std::env::temp_dir().join(rand_name("tb-other-ca"));
    let other = TestCa::generate(&other_dir).expect("second CA");
    let mut wrong = AmqpConfig::local(&url, &prefix);
    wrong.ca_file = Some(other.ca_cert.clone());
    let e = wrong.connect("tls-test").await.unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    let _ = std::fs::remove_dir_all(&other_dir);

    // TC3: a CA file that is not PEM is a configuration error naming the flag.
    let junk = other_dir.with_extension("junk");
    std::fs::write(&junk, "not a certificate").unwrap();
    let mut bad = AmqpConfig::local(&url, &prefix);
    bad.ca_file = Some(junk.clone());
    let e = bad.connect("tls-test").await.unwrap_err().to_string();
    assert!(e.contains("--amqp-ca-file") && e.contains("PEM"), "{e}");
    let _ = std::fs::remove_file(&junk);

    // TC4: plain amqp:// to the TLS port is not a hang: it fails within the
    // connect timeout.
    let plain = url
        .replace("amqps://", "amqp://")
        .replace("localhost", "127.0.0.1");
    let mut plain_cfg = AmqpConfig::local(&plain, &prefix);
    plain_cfg.connect_timeout_secs = 5;
    let t = std::time::Instant::now();
    assert!(plain_cfg.connect("tls-test").await.is_err());
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}
