// The host embeds the generated sets: regenerate and rebuild together.
fn main() {
    println!("cargo:rerun-if-changed=../target/bench/sets");
}
