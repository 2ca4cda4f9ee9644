//! Spans for `tracing` subscribers (the `tracing` feature): one per run, per fleet target, per
//! migration attempt and per statement run on its own, with the fields an operator filters on,
//! and events for retries, reconnects and give-ups. Without the feature these are no-ops and
//! `log` alone reports.

#[cfg(feature = "tracing")]
mod enabled {
    pub(crate) use tracing::Instrument;
    pub(crate) use tracing::Span;

    pub(crate) fn run(schema: &str, migrations: usize, head: &str) -> Span {
        tracing::info_span!("migrate.run", schema, migrations, head)
    }

    pub(crate) fn target(target: &str) -> Span {
        tracing::info_span!("migrate.target", target)
    }

    pub(crate) fn migration(revision: &str, path: &str, transaction: bool, group: usize) -> Span {
        tracing::info_span!("migrate.migration", revision, path, transaction, group)
    }

    pub(crate) fn statement(revision: &str, statement: usize, line: usize) -> Span {
        tracing::info_span!("migrate.statement", revision, statement, line)
    }

    pub(crate) fn retry(reason: &str) {
        tracing::warn!(reason, "retry");
    }

    pub(crate) fn reconnect(reason: &str) {
        tracing::warn!(reason, "reconnect");
    }

    pub(crate) fn give_up(reason: &str) {
        tracing::error!(reason, "give up");
    }
}

#[cfg(not(feature = "tracing"))]
mod enabled {
    /// Stands for a span when nothing subscribes.
    #[derive(Clone, Copy)]
    pub(crate) struct Span;

    impl Span {
        pub(crate) fn entered(self) -> Span {
            self
        }
    }

    /// `.instrument(span)` without `tracing`: the future itself.
    pub(crate) trait Instrument: Sized {
        fn instrument(self, _span: Span) -> Self {
            self
        }
    }

    impl<T> Instrument for T {}

    pub(crate) fn run(_: &str, _: usize, _: &str) -> Span {
        Span
    }

    pub(crate) fn target(_: &str) -> Span {
        Span
    }

    pub(crate) fn migration(_: &str, _: &str, _: bool, _: usize) -> Span {
        Span
    }

    pub(crate) fn statement(_: &str, _: usize, _: usize) -> Span {
        Span
    }

    pub(crate) fn retry(_: &str) {}

    pub(crate) fn reconnect(_: &str) {}

    pub(crate) fn give_up(_: &str) {}
}

pub(crate) use enabled::*;
