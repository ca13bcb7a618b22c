use std::process::ExitCode;

// glibc's malloc was a third of a request's CPU under load, much of it waiting on arena locks
// (bench/results/2026-11-25-3.md); mimalloc's per-thread heaps do not contend.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    mcp_server::cli::main()
}
