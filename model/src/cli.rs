//! What every binary's `--help` starts with: one line saying what the binary
//! is for, then one example that runs as shown against the local stack
//! (RabbitMQ on 127.0.0.1:5672, Kafka on 127.0.0.1:9092, `scripts/stack.sh
//! up`) or the feed simulator.
//!
//! [`help_template`] puts the example under clap's about line, for `-h` and
//! `--help` alike. [`check_help`] is what each crate's `tests/help.rs` runs
//! on the built binary, through [`help_test!`](crate::help_test): the first line is the about line, and the example
//! parses with the binary's own [`clap::Command`], so the help never shows a
//! flag that no longer exists.

use std::path::Path;
use std::process::Command as Process;

/// The heading of the example in the help text.
const EXAMPLE: &str = "Example";

/// A clap help template: the about line (the long about under `--help`),
/// then `Example (<context>):` and the command, then clap's usual usage and
/// options. `context` says what the example needs or does, in a few words
/// ("with `feed-sim` on 127.0.0.1:9000").
pub fn help_template(context: &str, example: &str) -> String {
    format!(
        "{{about-with-newline}}\n{EXAMPLE} ({context}):\n  {example}\n\n\
         {{usage-heading}} {{usage}}\n\n{{all-args}}{{after-help}}"
    )
}

/// The example a help text shows, split into words: the line after the
/// one starting with `Example`.
pub fn example_of(help: &str) -> Option<Vec<String>> {
    let mut lines = help.lines();
    lines.find(|l| l.starts_with(EXAMPLE))?;
    split_words(lines.next()?.trim())
}

/// Splits a command line into words as a POSIX shell would for the simple
/// cases an example uses: blanks separate, single and double quotes group,
/// a backslash escapes the next character. `None` for an unclosed quote or
/// shell syntax an example has no business with (`|`, `;`, `&`, `$`, `>`).
pub fn split_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => w.push(chars.next()?),
                        '$' | '`' => return None,
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next()?),
            '|' | ';' | '&' | '$' | '`' | '>' | '<' | '(' | ')' => return None,
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

/// Checks the help of the binary at `bin` against its own clap command
/// `cmd` (the same `Parser` the binary's `main` parses with): for `-h` and
/// `--help`, the output starts with the about line, the next paragraph is
/// the example, and the example, which must call this binary, parses
/// without error. Returns the example's words.
pub fn check_help(bin: &Path, cmd: clap::Command) -> Result<Vec<String>, String> {
    let name = cmd.get_name().to_string();
    let about = cmd
        .get_about()
        .map(|a| a.to_string())
        .ok_or_else(|| format!("{name}: no about line"))?;
    if about.trim().is_empty() || about.contains('\n') {
        return Err(format!(
            "{name}: the about line must be one line: {about:?}"
        ));
    }
    let mut example = None;
    for flag in ["-h", "--help"] {
        let out = Process::new(bin)
            .arg(flag)
            .output()
            .map_err(|e| format!("running {} {flag}: {e}", bin.display()))?;
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            return Err(format!("{name} {flag} exited with {}: {help}", out.status));
        }
        let mut lines = help.lines();
        let first = lines.next().unwrap_or_default();
        if first != about {
            return Err(format!(
                "{name} {flag}: the first line is {first:?}, not the about line {about:?}"
            ));
        }
        // The rest of the about paragraph (the long about under --help),
        // then the example paragraph.
        let heading = lines
            .by_ref()
            .skip_while(|l| !l.trim().is_empty())
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        if !heading.starts_with(EXAMPLE) {
            return Err(format!(
                "{name} {flag}: the paragraph after the about line is {heading:?}, not the example"
            ));
        }
        let words = example_of(&help)
            .ok_or_else(|| format!("{name} {flag}: the example is not a plain command line"))?;
        match &example {
            None => example = Some(words),
            Some(seen) if *seen != words => {
                return Err(format!("{name}: -h and --help show different examples"));
            }
            Some(_) => {}
        }
    }
    let words = example.unwrap_or_default();
    if words.first() != Some(&name) {
        return Err(format!(
            "{name}: the example {words:?} does not call {name}"
        ));
    }
    cmd.try_get_matches_from(&words)
        .map_err(|e| format!("{name}: the example {words:?} does not parse:\n{e}"))?;
    Ok(words)
}

/// How every binary ends: success, or its error as one line on stderr
/// (`worker: error: ...`) and a non-zero exit status.
pub fn exit<T, E: std::fmt::Display>(bin: &str, result: Result<T, E>) -> std::process::ExitCode {
    match result {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{bin}: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// clap, for what [`help_test!`](crate::help_test) expands to.
#[doc(hidden)]
pub use clap as __clap;

/// One `#[test]` per binary: `--help` of the built binary (`CARGO_BIN_EXE_<bin>`)
/// passes [`check_help`] against the binary's own `Parser` type, so the help
/// never shows a flag that no longer exists.
///
/// ```ignore
/// tickbridge_model::help_test!(worker_help: "worker" => worker_bin::Cli);
/// ```
#[macro_export]
macro_rules! help_test {
    ($($test:ident: $bin:literal => $cli:ty),+ $(,)?) => {
        $(
            #[test]
            fn $test() {
                let bin = ::std::path::Path::new(env!(concat!("CARGO_BIN_EXE_", $bin)));
                let cmd = <$cli as $crate::cli::__clap::CommandFactory>::command();
                if let Err(e) = $crate::cli::check_help(bin, cmd) {
                    panic!("{e}");
                }
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        // TC0: plain words.
        assert_eq!(
            split_words("worker --exit-when-idle 5s").unwrap(),
            ["worker", "--exit-when-idle", "5s"]
        );
        // TC1: quotes group, and an empty quoted word is a word.
        assert_eq!(
            split_words(r#"report --title "Two words" --x '' a\ b"#).unwrap(),
            ["report", "--title", "Two words", "--x", "", "a b"]
        );
        // TC2: shell syntax and unclosed quotes are refused.
        for bad in [
            "a | b",
            "a; b",
            "a &",
            "echo $HOME",
            "a 'b",
            "a \"b",
            "a > f",
        ] {
            assert_eq!(split_words(bad), None, "{bad}");
        }
    }

    #[test]
    fn finds_the_example() {
        let help = "About.\n\nExample (local stack):\n  x --flag 'a b'\n\nUsage: x\n";
        assert_eq!(example_of(help).unwrap(), ["x", "--flag", "a b"]);
        assert_eq!(example_of("About.\n\nUsage: x\n"), None);
    }

    /// The template renders the about line first and the example second,
    /// and a command whose example names a flag it lacks is caught by the
    /// same parse `check_help` uses.
    #[test]
    fn template_and_parse() {
        let cmd = clap::Command::new("x")
            .about("Does x.")
            .help_template(help_template("local stack", "x --flag 1"))
            .arg(clap::Arg::new("flag").long("flag"));
        let help = cmd.clone().render_help().to_string();
        assert!(
            help.starts_with("Does x.\n\nExample (local stack):\n  x --flag 1\n\nUsage: x"),
            "{help}"
        );
        let words = example_of(&help).unwrap();
        assert!(cmd.clone().try_get_matches_from(&words).is_ok());
        assert!(cmd.try_get_matches_from(["x", "--gone", "1"]).is_err());
    }
}
