//! While `migrate` applies, the long statements' progress on stderr: the readings the runtime's
//! watcher takes (`MIGRATE_PROGRESS_AFTER`), each printed once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use migrate_core::runtime::progress::current;

/// Prints new readings until dropped.
pub(crate) struct Printer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Printer {
    pub(crate) fn start() -> Printer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("migrate-progress-printer".to_owned())
            .spawn(move || {
                let mut last = Vec::new();
                while !stopped.load(Ordering::Relaxed) {
                    let now: Vec<String> = current().iter().map(ToString::to_string).collect();
                    for line in now.iter().filter(|l| !last.contains(*l)) {
                        eprintln!("{line}");
                    }
                    last = now;
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .ok();
        Printer { stop, thread }
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
