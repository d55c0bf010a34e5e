//! Compile errors of `#[shylock::locked]`, checked against the messages in
//! tests/ui/*.stderr.

#[test]
fn misuse_is_a_compile_error_with_a_clear_message() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
