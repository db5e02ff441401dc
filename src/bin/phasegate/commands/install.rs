//! `phasegate completions SHELL` and `phasegate man [--dir D]`: the files an
//! installation wants beside the binary, generated from the command line's
//! own grammar (src/bin/phasegate/cli.rs) so they never fall behind it.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::Failure;
use crate::cli::Cli;

/// The completion script for `shell`, to be sourced by it (see README.md, "Install").
pub fn completions(shell: Shell) -> Result<String, Failure> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "phasegate", &mut buf);
    String::from_utf8(buf).map_err(|e| {
        Failure::input(format!(
            "error: the {shell} completion script is not UTF-8: {e}"
        ))
    })
}

/// The top-level man page (roff) when `dir` is `None`; otherwise one page per
/// command and subcommand (`phasegate.1`, `phasegate-apply.1`, …) written
/// into `dir`, which is created if missing, and a line saying where they went.
pub fn man(dir: Option<&Path>) -> Result<String, Failure> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut buf)
            .map_err(|e| Failure::input(format!("error: rendering the man page: {e}")))?;
        return String::from_utf8(buf)
            .map_err(|e| Failure::input(format!("error: the man page is not UTF-8: {e}")));
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::input(format!("error: cannot create {}: {e}", dir.display())))?;
    clap_mangen::generate_to(cmd, dir).map_err(|e| {
        Failure::input(format!(
            "error: cannot write the man pages into {}: {e}",
            dir.display()
        ))
    })?;
    let pages = count_pages(&Cli::command());
    Ok(format!(
        "wrote {pages} man pages into {} (try: man -l {}/phasegate.1)\n",
        dir.display(),
        dir.display()
    ))
}

/// How many pages `generate_to` writes: the command and every visible
/// subcommand, recursively.
fn count_pages(cmd: &clap::Command) -> usize {
    1 + cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(count_pages)
        .sum::<usize>()
}
