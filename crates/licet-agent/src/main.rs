//! `licet-agent`: parse the command line and run it.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    licet_agent::cli::run(licet_agent::cli::Cli::parse())
}
