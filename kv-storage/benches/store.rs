//! Benchmarks (written later in this series).
fn main() {}
