//! `--help` of `chaos`, checked by [`tickbridge_model::help_test!`].

#[allow(dead_code)]
#[path = "../src/bin/chaos.rs"]
mod chaos_bin;

tickbridge_model::help_test!(
    chaos_help_starts_with_purpose_and_example: "chaos" => chaos_bin::Cli,
);
