//! The `cft` binary: parses the command line and reports errors with their whole chain.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cft_cli::parse();
    match cft_cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cft_cli::error_message(&e));
            ExitCode::from(1)
        }
    }
}
