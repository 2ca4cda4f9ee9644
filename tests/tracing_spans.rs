//! The `tracing` feature: a run's spans, collected by a `tracing-subscriber` layer, nest as run →
//! migration → statement and carry the fields an operator filters on.

use std::sync::{Arc, Mutex};

use pg_harness::test_database;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

static INDEX: migrate::Migrations = migrate::embed_migrations!("tests/migrations/index");

/// One span as the layer saw it open: its name, its fields, and its parent's name.
#[derive(Debug, Clone)]
struct Opened {
    name: &'static str,
    fields: Vec<(String, String)>,
    parent: Option<&'static str>,
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Opened>>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        ));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Collect {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Vec::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|p| p.name());
        self.0.lock().unwrap().push(Opened {
            name: attrs.metadata().name(),
            fields,
            parent,
        });
    }
}

#[test]
fn a_run_opens_nested_spans_with_the_fields_operators_filter_on() {
    let db = test_database();
    let collect = Collect::default();
    let subscriber = tracing_subscriber::registry().with(collect.clone());
    let report = tracing::subscriber::with_default(subscriber, || {
        migrate::Migrator::new(&INDEX).run_url(db.url())
    })
    .unwrap();
    assert_eq!(report.applied.len(), INDEX.len());
    let opened = collect.0.lock().unwrap().clone();
    let field = |o: &Opened, name: &str| {
        o.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let runs: Vec<&Opened> = opened.iter().filter(|o| o.name == "migrate.run").collect();
    assert_eq!(runs.len(), 1, "{opened:#?}");
    assert_eq!(field(runs[0], "schema"), "public");
    assert_eq!(field(runs[0], "migrations"), INDEX.len().to_string());
    assert_eq!(field(runs[0], "head"), INDEX.head().unwrap().revision());
    let migrations: Vec<&Opened> = opened
        .iter()
        .filter(|o| o.name == "migrate.migration")
        .collect();
    assert!(!migrations.is_empty(), "{opened:#?}");
    assert!(
        migrations.iter().all(|m| m.parent == Some("migrate.run")),
        "{migrations:#?}"
    );
    // The index is built outside a transaction, statement by statement.
    let index = INDEX.iter().find(|m| m.no_transaction()).unwrap();
    let built = migrations
        .iter()
        .find(|m| field(m, "revision") == index.revision())
        .unwrap();
    assert_eq!(field(built, "transaction"), "false");
    assert_eq!(field(built, "path"), index.path());
    let statements: Vec<&Opened> = opened
        .iter()
        .filter(|o| o.name == "migrate.statement")
        .collect();
    assert_eq!(statements.len(), index.statements().len(), "{opened:#?}");
    assert!(
        statements
            .iter()
            .all(|s| s.parent == Some("migrate.migration")
                && field(s, "revision") == index.revision())
    );
    assert_eq!(
        field(statements[0], "line"),
        index.statements()[0].line.to_string()
    );
}
