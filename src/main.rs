use std::process::ExitCode;

fn main() -> ExitCode {
    mcp_server::cli::main()
}
