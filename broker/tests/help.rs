//! `--help` of `stack-check`: its first line says what the binary is for, the next
//! paragraph is one example, and the example parses with the binary's own
//! flags ([`tickbridge_model::cli::check_help`]), so the help never shows a
//! flag that no longer exists.
//!
//! The example also runs, against the local stack (`scripts/stack.sh up`).

use clap::CommandFactory;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tickbridge_model::cli::check_help;
use tickbridge_testkit::run_bounded;

// The binary's own source, for its `Args`; its `main` goes unused here.
#[allow(dead_code)]
#[path = "../src/bin/stack-check.rs"]
mod stack_check_bin;

#[test]
fn stack_check_help_starts_with_purpose_and_a_working_example() {
    let bin = env!("CARGO_BIN_EXE_stack-check");
    let example = check_help(Path::new(bin), stack_check_bin::Args::command())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = run_bounded(
        Command::new(bin).args(&example[1..]),
        Duration::from_secs(60),
    );
    assert_eq!(
        r.code,
        Some(0),
        "the example {example:?} failed (is the local stack up? scripts/stack.sh up): {r:?}"
    );
    assert!(r.stdout.contains("RabbitMQ answers"), "{r:?}");
    assert!(r.stdout.contains("Kafka answers"), "{r:?}");
}
