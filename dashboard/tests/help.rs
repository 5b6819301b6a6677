//! `--help` of `dashboard-fanout-bench`, `dashboard`, checked by [`tickbridge_model::help_test!`].

#[allow(dead_code)]
#[path = "../src/bin/dashboard.rs"]
mod dashboard_bin;
#[allow(dead_code)]
#[path = "../src/bin/fanout_bench.rs"]
mod fanout_bin;

tickbridge_model::help_test!(
    fanout_bench_help_starts_with_purpose_and_example: "dashboard-fanout-bench" => fanout_bin::Cli,
    dashboard_help_starts_with_purpose_and_example: "dashboard" => dashboard_bin::Cli,
);
