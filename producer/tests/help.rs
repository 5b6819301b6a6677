//! `--help` of `producer`, checked by [`tickbridge_model::help_test!`].

use tickbridge_producer::config::ProducerConfig;

tickbridge_model::help_test!(
    producer_help_starts_with_purpose_and_example: "producer" => ProducerConfig,
);
