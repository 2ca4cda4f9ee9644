//! `migrate`: the commands of `migrate::cli` on a migrations directory read at run time.

fn main() -> std::process::ExitCode {
    migrate::cli::run_standalone()
}
