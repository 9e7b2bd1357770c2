//! The subcommands, and how their errors become exit codes: 2 for bad
//! input (the message names the field and the value), 1 for failures
//! while running.

/// `println!` for command output, except that a closed stdout (`rl-lab
/// runs | head -3`) ends the output quietly instead of panicking, as
/// [`print_json`] does; any other write error goes to stderr.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))
    };
}

pub mod bench;
pub mod bench_envs;
pub mod client;
pub mod eval;
pub mod list;
pub mod rollout;
pub mod run;
pub mod serve;
pub mod show;

use std::process::ExitCode;

/// A failed command: its message and exit code.
#[derive(Debug)]
pub struct CliError {
    /// 2 for bad input, 1 for a failure while running.
    pub code: u8,
    /// One line for stderr.
    pub message: String,
}

impl CliError {
    /// Bad input: exit code 2.
    pub fn input(message: impl Into<String>) -> Self {
        CliError {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<rl_runner::Error> for CliError {
    fn from(e: rl_runner::Error) -> Self {
        CliError {
            code: if e.is_input() { 2 } else { 1 },
            message: e.to_string(),
        }
    }
}

/// What every subcommand returns.
pub type CliResult = Result<(), CliError>;

/// Prints the error, if any, and picks the exit code.
pub fn exit(result: CliResult) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// Reads and parses a run spec file; every failure is an input error.
pub fn read_spec(path: &std::path::Path) -> Result<rl_runner::RunSpec, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::input(format!("{}: cannot read: {e}", path.display())))?;
    rl_runner::RunSpec::from_json(&text)
        .map_err(|e| CliError::input(format!("{}: {e}", path.display())))
}

/// Writes one line of command output for [`say!`].
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: stdout: {e}");
        }
        _ => {}
    }
}

/// Prints a value as one line of JSON on stdout. A closed pipe (`| head`)
/// is not an error worth a panic.
pub fn print_json<T: serde::Serialize>(value: &T) -> CliResult {
    use std::io::Write;
    let text = serde_json::to_string(value).map_err(|e| CliError {
        code: 1,
        message: e.to_string(),
    })?;
    match writeln!(std::io::stdout(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError {
            code: 1,
            message: format!("stdout: {e}"),
        }),
        _ => Ok(()),
    }
}
