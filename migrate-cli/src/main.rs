//! `migrate`: every command, on a migrations directory read at run time.

fn main() -> std::process::ExitCode {
    migrate_cli::run_standalone()
}
