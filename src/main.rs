use std::process::ExitCode;

// Under concurrent load glibc's malloc and free took a large share of a search's CPU; mimalloc's
// per-thread heaps avoid their arena locks (docs/architecture.md, "Measured choices").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    mcp_server::cli::main()
}
