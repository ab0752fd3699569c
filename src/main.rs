//! The `ordergate` binary.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
