//! `--help` of `feed-sim`, checked by [`tickbridge_model::help_test!`].

#[allow(dead_code)]
#[path = "../src/bin/feed-sim.rs"]
mod feed_sim_bin;

tickbridge_model::help_test!(
    feed_sim_help_starts_with_purpose_and_example: "feed-sim" => feed_sim_bin::Cli,
);
