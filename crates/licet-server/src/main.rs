//! `licet-server`: parse the command line and run it.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    licet_server::cli::run(licet_server::cli::Cli::parse())
}
