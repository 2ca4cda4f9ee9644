// The package's own examples and tests embed these directories: rebuild them when a migration
// file is added or removed (the line every host crate needs for its own directory).
fn main() {
    println!("cargo:rerun-if-changed=tests/migrations");
    println!("cargo:rerun-if-changed=migrations");
}
