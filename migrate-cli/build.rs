fn main() {
    // The integration tests embed tests/migrations: adding or removing a file there rebuilds them.
    println!("cargo:rerun-if-changed=tests/migrations");
}
