use std::process::ExitCode;

// glibc's malloc and free were ~29% of a search's CPU under load (bench/results/2026-11-25-2.md,
// "Limits now"); mimalloc's per-thread heaps made search at c=64 32% faster.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    mcp_server::cli::main()
}
