//! `--help` of `chaos` and of its subcommands, checked by
//! [`tickbridge_model::help_test!`] and the same rules for `chaos run` and
//! `chaos soak`; and the old invocation (flags, no subcommand) still
//! parsing as a scenario.

#[allow(dead_code)]
#[path = "../src/bin/chaos.rs"]
mod chaos_bin;

use clap::CommandFactory;

tickbridge_model::help_test!(
    chaos_help_starts_with_purpose_and_example: "chaos" => chaos_bin::Cli,
);

/// `chaos <sub> -h` and `--help` start with the subcommand's about line,
/// then an example that calls that subcommand and parses.
#[test]
fn subcommand_help_starts_with_purpose_and_example() {
    let bin = env!("CARGO_BIN_EXE_chaos");
    let cmd = chaos_bin::Cli::command();
    for sub in ["run", "soak"] {
        let about = cmd
            .find_subcommand(sub)
            .and_then(|c| c.get_about())
            .map(|a| a.to_string())
            .unwrap_or_else(|| panic!("chaos {sub} has an about line"));
        assert!(!about.contains('\n'), "{sub}: one line: {about:?}");
        for flag in ["-h", "--help"] {
            let out = std::process::Command::new(bin)
                .args([sub, flag])
                .output()
                .expect("chaos runs");
            let help = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "chaos {sub} {flag}: {help}");
            assert_eq!(help.lines().next(), Some(about.as_str()), "{help}");
            let words = tickbridge_model::cli::example_of(&help)
                .unwrap_or_else(|| panic!("chaos {sub} {flag}: no example in {help}"));
            assert_eq!(words[..2], ["chaos", sub], "{words:?}");
            let m = chaos_bin::Cli::command()
                .try_get_matches_from(&words)
                .unwrap_or_else(|e| panic!("the example {words:?} does not parse: {e}"));
            assert_eq!(m.subcommand_name(), Some(sub));
        }
    }
}

/// `chaos --seed 7 ...` (the invocation docs/chaos.md and scripts use) is
/// still a scenario; flags of the scenario before `soak` are refused
/// instead of being silently ignored.
#[test]
fn flags_alone_still_run_a_scenario() {
    let parse = |args: &[&str]| chaos_bin::Cli::command().try_get_matches_from(args);
    let m = parse(&["chaos", "--seed", "3867494154", "--keep"]).expect("parses");
    assert_eq!(m.subcommand_name(), None);
    assert_eq!(m.get_one::<u64>("seed"), Some(&3867494154));
    let m = parse(&["chaos", "soak", "--ticks", "200000"]).expect("parses");
    assert_eq!(m.subcommand_name(), Some("soak"));
    assert!(parse(&["chaos", "--seed", "7", "soak"]).is_err());
}
