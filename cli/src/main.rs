//! The `cclog` binary: everything lives in the `cclog_cli` library; `main` only hands over.

fn main() -> std::process::ExitCode {
    cclog_cli::main()
}
