//! Helpers the tests of the `migrate` binary share.
#![allow(dead_code)]

use std::process::Output;

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A directory of the test's own under cargo's temporary directory: empty when made, removed
/// when dropped. It reads as the path it is.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `done` every 50 ms until it gives a value; fails the test with `never` once `within`
/// has passed.
pub fn wait_for<T>(
    within: std::time::Duration,
    never: &str,
    mut done: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(value) = done() {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "{never}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The `migrate` binary on the migrations in `dir` and the database at `url`.
pub fn migrate_at(dir: &std::path::Path, args: &[&str], url: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("DATABASE_URL", url)
        .env_remove("MIGRATION_DATABASE_URL")
        .output()
        .unwrap()
}
