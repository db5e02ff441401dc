//! The `phasegate` command line: parses arguments, calls the library, renders
//! results and errors. All the work happens in the library.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod estimate;
mod interrupt;
mod plan;
mod suggested;

use cli::{Cli, Command};

/// How long the exit waits, once a command has printed its answer, for the
/// async runtime's tasks to end (dropping a runtime waits for them without
/// bound: tokio docs, `Runtime::shutdown_timeout`).
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            match commands::usage_error(&e, &args) {
                Some(r) => return emit(r),
                None => e.exit(),
            }
        }
    };
    suggested::remember_config(cli.config.as_deref());
    if cli.database.is_some() && cli.command.works_on_no_database() {
        let f = Failure::input(format!(
            "error: --database picks one database of a fleet environment, and `phasegate {}` works on none",
            cli.command.name()
        ));
        crate::err_line(format_args!("{}", f.message));
        return ExitCode::from(f.code);
    }
    let result = match cli.command {
        Command::Plan(args) => plan::plan(args, cli.config),
        Command::Init => commands::init(cli.config),
        Command::Completions { shell } => commands::completions(shell),
        Command::Man { dir } => commands::man(dir.as_deref()),
        Command::Lint(args) => return emit(commands::lint::run(args, cli.config.as_deref())),
        Command::Convert(args) => commands::convert::run(args, cli.config.as_deref()),
        Command::Schema { document } => Ok(commands::schema_text(document)),
        Command::Estimate {
            plan,
            database_url,
            rows_per_second,
            templates,
        } => estimate::estimate(
            estimate::EstimateArgs {
                plan: &plan,
                database_url: &database_url,
                rows_per_second,
                templates: &templates,
            },
            cli.config.as_deref(),
        ),
        other => {
            let (name, format) = (other.name(), other.format());
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    return emit(commands::envelope::error_only(
                        name,
                        format,
                        "internal",
                        &format!("cannot start the async runtime: {e}"),
                    ));
                }
            };
            let invocation =
                interrupt::Invocation::of(cli.config.as_deref(), cli.database.as_deref(), &other);
            // Ctrl-C ends the run where it is (see interrupt.rs); a step
            // running outside a transaction first has its statement
            // cancelled on the server, so that its outcome is recorded.
            let (done, settled) = rt.block_on(async {
                let run = commands::run(cli.config, cli.database, other);
                tokio::pin!(run);
                tokio::select! {
                    r = &mut run => return (Some(r), false),
                    Ok(()) = tokio::signal::ctrl_c() => {}
                }
                // A backup_command still running ends with the run (here,
                // while the run, which keeps track of it, is still alive).
                phasegate::execute::end_children();
                let Some(step) = phasegate::execute::statement_running() else {
                    return (None, false);
                };
                crate::err_line(format_args!(
                    "interrupting: cancelling the statement of step {step} on the server (Ctrl-C again stops at once)"
                ));
                if phasegate::execute::cancel_running_statement(interrupt::CANCEL_WAIT).await != Ok(true) {
                    return (None, false);
                }
                tokio::select! {
                    _ = &mut run => (None, true),
                    _ = tokio::time::sleep(interrupt::SETTLE_WAIT) => (None, false),
                    Ok(()) = tokio::signal::ctrl_c() => (None, false),
                }
            });
            let Some(rendered) = done else {
                emit(invocation.report(settled));
                // Statements still waiting on a connection must not hold the exit.
                rt.shutdown_background();
                return ExitCode::from(interrupt::EXIT);
            };
            let code = emit(rendered);
            // The answer is out: a task still settling (a connection's close
            // that never answers) must not hold the exit; dropping the
            // runtime would wait for it without bound.
            rt.shutdown_timeout(EXIT_WAIT);
            return code;
        }
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

/// Prints what an environment command rendered and ends with its exit code.
fn emit(r: commands::envelope::Rendered) -> ExitCode {
    if !r.stderr.is_empty() {
        crate::err_line(format_args!("{}", r.stderr.trim_end()));
    }
    crate::out(&r.stdout);
    ExitCode::from(r.code)
}

/// Writes `text` to stdout. A closed pipe (`phasegate status | head -1`, a
/// CI log tailer that went away) must not end a run half-way, so a write
/// that fails is dropped: the exit code still tells the outcome.
pub(crate) fn out(text: &str) {
    use std::io::Write;
    let text = suggested::with_config(text);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Writes one line to stderr, dropping a failed write as [`out`] does.
pub(crate) fn err_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let line = line.to_string();
    let _ = writeln!(
        std::io::stderr().lock(),
        "{}",
        suggested::with_config(&line)
    );
}
