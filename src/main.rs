use std::process::ExitCode;

use clap::Parser;
use starflow::cli::{Cli, run};
use starflow::error::{ErrorClass, panic_is_caught, redact};
use starflow::interrupt;

fn main() -> ExitCode {
    // A panic is a bug, never a user error: say so in one line instead of a backtrace. Panics of readers on damaged
    // files are caught and reported as data errors naming the file (error::catch_panic).
    std::panic::set_hook(Box::new(|info| {
        if !panic_is_caught() {
            eprintln!("starflow: internal error (please report): {}", redact(&info.to_string()));
        }
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help, --version, and no subcommand at all: clap's own text.
        Err(e) if !e.use_stderr() || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        // A usage error in one line, as every error: clap adds the usage and tips on further lines.
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
            eprintln!("starflow: usage error: {} (see --help)", redact(first));
            return ExitCode::from(ErrorClass::Usage as u8);
        }
    };
    // The main runtime carries network IO, progress and output; queries run on their own CPU runtime (executor.rs).
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("starflow-io").enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("starflow: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A panic outside a query (those become query errors, executor.rs) is reported by the hook; exit as a runtime
    // error (1), one of the documented codes, rather than Rust's 101.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            interrupt::install().map_err(|e| starflow::error::CliError::runtime(format!("cannot handle signals: {e}")))?;
            run(cli).await
        })
    }));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) if e.class == ErrorClass::Interrupted => interrupt::exit_interrupted(),
        Ok(Err(e)) => {
            eprintln!("starflow: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
        Err(_) => ExitCode::FAILURE,
    }
}
