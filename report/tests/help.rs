//! `--help` of `report`, checked by [`tickbridge_model::help_test!`].

#[allow(dead_code)]
#[path = "../src/bin/report.rs"]
mod report_bin;

tickbridge_model::help_test!(
    report_help_starts_with_purpose_and_example: "report" => report_bin::Cli,
);
