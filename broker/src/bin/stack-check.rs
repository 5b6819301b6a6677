//! `stack-check`: waits until RabbitMQ answers an AMQP open and Kafka answers
//! a metadata request, or says which one did not. Used by `scripts/stack.sh`
//! so "the stack is up" means the protocols answer, not just the ports.

use clap::Parser;
use std::time::{Duration, Instant};
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::cli::help_template;

/// Checks that the local brokers answer real protocol requests.
#[derive(Parser, Debug)]
#[command(
    name = "stack-check",
    version,
    help_template = help_template(
        "exits 0 once RabbitMQ on 127.0.0.1:5672 and Kafka on 127.0.0.1:9092 answer",
        "stack-check --timeout 10",
    )
)]
pub(crate) struct Args {
    /// The RabbitMQ to check.
    #[command(flatten)]
    amqp: AmqpConfig,
    /// The Kafka to check.
    #[command(flatten)]
    kafka: KafkaConfig,
    /// Seconds to keep trying before giving up.
    #[arg(long, env = "STACK_CHECK_TIMEOUT", default_value_t = 60)]
    timeout: u64,
    /// Check only RabbitMQ.
    #[arg(long, env = "STACK_CHECK_AMQP_ONLY")]
    amqp_only: bool,
    /// Check only Kafka.
    #[arg(long, env = "STACK_CHECK_KAFKA_ONLY")]
    kafka_only: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    if !args.kafka_only {
        let mut last: String;
        loop {
            match args.amqp.connect("tickbridge-stack-check").await {
                Ok(conn) => match conn.create_channel().await {
                    Ok(_) => {
                        let _ = conn.close(200, "ok".into()).await;
                        println!("RabbitMQ answers AMQP at {}", args.amqp.masked_url());
                        break;
                    }
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "RabbitMQ at {} did not answer an AMQP open within {}s: {last}",
                    args.amqp.masked_url(),
                    args.timeout
                );
                std::process::exit(1);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    if !args.amqp_only {
        let mut client = args.kafka.clone();
        client
            .options
            .push(("socket.connection.setup.timeout.ms".into(), "2000".into()));
        loop {
            match client.ping(Duration::from_secs(3)).await {
                Ok(()) => {
                    println!("Kafka answers metadata requests at {}", args.kafka.brokers);
                    break;
                }
                Err(e) if Instant::now() >= deadline => {
                    eprintln!("{e} (waited {}s)", args.timeout);
                    std::process::exit(1);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
}
