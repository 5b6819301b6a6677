//! `--help` of `worker` and `consumer`: each one's first line says what the
//! binary is for, the next paragraph is one example, and the example parses
//! with the binary's own flags ([`tickbridge_model::cli::check_help`]), so
//! the help never shows a flag that no longer exists.

use clap::CommandFactory;
use std::path::Path;
use tickbridge_model::cli::check_help;

// The binaries' own sources, for their `Cli`; their `main`s go unused here.
#[allow(dead_code)]
#[path = "../src/bin/consumer.rs"]
mod consumer_bin;
#[allow(dead_code)]
#[path = "../src/bin/worker.rs"]
mod worker_bin;

#[test]
fn worker_help_starts_with_purpose_and_example() {
    check_help(
        Path::new(env!("CARGO_BIN_EXE_worker")),
        worker_bin::Cli::command(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn consumer_help_starts_with_purpose_and_example() {
    check_help(
        Path::new(env!("CARGO_BIN_EXE_consumer")),
        consumer_bin::Cli::command(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}
