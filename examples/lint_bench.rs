//! Lint speed: generates 1,000 migration files of realistic shapes into a temporary directory,
//! runs the whole analysis (`migrate::lint_dir`: read, parse, graph, lock lint) 5 times and
//! prints a table. Run with `cargo run --release --example lint_bench`.

use std::time::{Duration, Instant};

const FILES: usize = 1_000;
const RUNS: usize = 5;

fn body(i: usize) -> String {
    match i % 5 {
        0 => format!(
            "CREATE TABLE t{i} (id bigint PRIMARY KEY, name text NOT NULL, created_at timestamptz DEFAULT now());\nCREATE INDEX t{i}_name_idx ON t{i} (name);\n"
        ),
        1 => format!(
            "ALTER TABLE t{} ADD COLUMN note text;\nALTER TABLE t{} ALTER COLUMN note SET DEFAULT '';\n",
            i - 1,
            i - 1
        ),
        2 => format!(
            "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t{}_created_idx ON t{} (created_at);\n",
            i - 2,
            i - 2
        ),
        3 => format!(
            "ALTER TABLE t{} ADD CONSTRAINT t{}_fk FOREIGN KEY (id) REFERENCES t{} (id) NOT VALID;\n",
            i - 3,
            i - 3,
            i.saturating_sub(8)
        ),
        _ => format!(
            "ALTER TABLE t{} VALIDATE CONSTRAINT t{}_fk;\nCOMMENT ON TABLE t{} IS 'validated';\n",
            i - 4,
            i - 4,
            i - 4
        ),
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("migrate-lint-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let mut statements = 0;
    for i in 0..FILES {
        let parents = if i == 0 {
            "none".to_owned()
        } else {
            format!("r{:04}", i - 1)
        };
        let text = format!("-- revision: r{i:04}\n-- parents: {parents}\n{}", body(i));
        statements += text.lines().filter(|l| l.ends_with(';')).count();
        std::fs::write(dir.join(format!("{i:04}_step.sql")), text).expect("write a migration");
    }
    let config = migrate::LintConfig::default();
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let findings = migrate::lint_dir(&dir, &config);
        times.push(started.elapsed());
        assert!(
            findings.is_empty(),
            "the generated migrations should be clean: {}",
            findings[0]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    times.sort();
    let per_file = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6 / FILES as f64);
    let rate = |d: Duration| format!("{:.0}", statements as f64 / d.as_secs_f64());
    println!("lint_dir: {FILES} files, {statements} statements, {RUNS} runs\n");
    println!("| measure | min | median | max |");
    println!("|---|---|---|---|");
    let (min, median, max) = (times[0], times[RUNS / 2], times[RUNS - 1]);
    println!(
        "| whole directory | {:.1} ms | {:.1} ms | {:.1} ms |",
        min.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    println!(
        "| per file | {} | {} | {} |",
        per_file(min),
        per_file(median),
        per_file(max)
    );
    println!(
        "| statements per second | {} | {} | {} |",
        rate(max),
        rate(median),
        rate(min)
    );
}
