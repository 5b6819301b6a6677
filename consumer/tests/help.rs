//! `--help` of `worker`, `consumer`, checked by [`tickbridge_model::help_test!`].

#[allow(dead_code)]
#[path = "../src/bin/consumer.rs"]
mod consumer_bin;
#[allow(dead_code)]
#[path = "../src/bin/worker.rs"]
mod worker_bin;

tickbridge_model::help_test!(
    worker_help_starts_with_purpose_and_example: "worker" => worker_bin::Cli,
    consumer_help_starts_with_purpose_and_example: "consumer" => consumer_bin::Cli,
);
