//! The `importprobe` binary: parse the command line, run, map errors to exit
//! codes. Everything else lives in the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = importprobe::cli::Cli::parse();
    importprobe::cli::init_logging(cli.verbose);
    match importprobe::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("importprobe: {err:#}");
            if err.downcast_ref::<importprobe::UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
