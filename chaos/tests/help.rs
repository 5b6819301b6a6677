//! `--help` of `chaos`: its first line says what the binary is for, the next
//! paragraph is one example, and the example parses with the binary's own
//! flags ([`tickbridge_model::cli::check_help`]), so the help never shows a
//! flag that no longer exists.

use clap::CommandFactory;
use std::path::Path;
use tickbridge_model::cli::check_help;

// The binary's own source, for its `Cli`; its `main` goes unused here.
#[allow(dead_code)]
#[path = "../src/bin/chaos.rs"]
mod chaos_bin;

#[test]
fn chaos_help_starts_with_purpose_and_example() {
    check_help(
        Path::new(env!("CARGO_BIN_EXE_chaos")),
        chaos_bin::Cli::command(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}
