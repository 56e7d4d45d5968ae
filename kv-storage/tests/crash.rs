//! Crash test (written later in this series).
fn main() {}
