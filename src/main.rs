//! The `ordergate` binary.

#[cfg(not(feature = "loom"))]
mod cli;

#[cfg(not(feature = "loom"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

/// The `loom` feature swaps the rings' atomics for model-checked ones that
/// only work inside a loom model: such a build is for `tests/loom.rs` only.
#[cfg(feature = "loom")]
fn main() {
    eprintln!("ordergate: built with the `loom` feature, which is for model checking only");
    std::process::exit(2);
}
