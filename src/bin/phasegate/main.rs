//! The `phasegate` command line: parses arguments, calls the library, renders
//! results and errors. All the work happens in the library.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod interrupt;
mod plan;

use cli::{Cli, Command};

/// An error for the person at the terminal, and the exit code it means.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn input(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 2,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan::plan(args, cli.config),
        Command::Init => commands::init(),
        Command::Completions { shell } => commands::completions(shell),
        Command::Man { dir } => commands::man(dir.as_deref()),
        other => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => {
                let invocation = interrupt::Invocation::of(cli.config.as_deref(), &other);
                // Ctrl-C ends the run where it is (see interrupt.rs).
                let done = rt.block_on(async {
                    tokio::select! {
                        r = commands::run(cli.config, other) => Some(r),
                        Ok(()) = tokio::signal::ctrl_c() => None,
                    }
                });
                let Some(result) = done else {
                    invocation.report();
                    // Statements still waiting on a connection must not hold the exit.
                    rt.shutdown_background();
                    return ExitCode::from(interrupt::EXIT);
                };
                result
            }
            Err(e) => Err(Failure::input(format!(
                "error: cannot start the async runtime: {e}"
            ))),
        },
    };
    match result {
        Ok(out) => {
            crate::out(&out);
            ExitCode::SUCCESS
        }
        Err(f) => {
            crate::err_line(format_args!("{}", f.message));
            ExitCode::from(f.code)
        }
    }
}

/// Writes `text` to stdout. A closed pipe (`phasegate status | head -1`, a
/// CI log tailer that went away) must not end a run half-way, so a write
/// that fails is dropped: the exit code still tells the outcome.
pub(crate) fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Writes one line to stderr, dropping a failed write as [`out`] does.
pub(crate) fn err_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
