//! `--help` of `bridge`, checked by [`tickbridge_model::help_test!`].

#[allow(dead_code)]
#[path = "../src/bin/bridge.rs"]
mod bridge_bin;

tickbridge_model::help_test!(
    bridge_help_starts_with_purpose_and_example: "bridge" => bridge_bin::Cli,
);
