//! `--help` of `dashboard`: its first line says what the binary is for, the
//! next paragraph is one example, and the example parses with the binary's
//! own flags ([`tickbridge_model::cli::check_help`]), so the help never shows
//! a flag that no longer exists.

use clap::CommandFactory;
use std::path::Path;
use tickbridge_model::cli::check_help;

// The binary's own source, for its `Cli`; its `main` goes unused here.
#[allow(dead_code)]
#[path = "../src/bin/dashboard.rs"]
mod dashboard_bin;

#[allow(dead_code)]
#[path = "../src/bin/fanout_bench.rs"]
mod fanout_bin;

#[test]
fn fanout_bench_help_starts_with_purpose_and_example() {
    check_help(
        Path::new(env!("CARGO_BIN_EXE_dashboard-fanout-bench")),
        fanout_bin::Cli::command(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn dashboard_help_starts_with_purpose_and_example() {
    check_help(
        Path::new(env!("CARGO_BIN_EXE_dashboard")),
        dashboard_bin::Cli::command(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}
