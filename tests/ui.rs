//! Compile-time behaviour of `embed_migrations!`: every error text is pinned in a `.stderr` file.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/lint_pass/*.rs");
    cases.compile_fail("tests/ui/lint_fail/*.rs");
}
