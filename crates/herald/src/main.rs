use clap::Parser as _;

/// jemalloc serves every allocation in the process, Rust's and SQLite's (the crate's
/// `unprefixed_malloc_on_supported_platforms` feature replaces `malloc` itself). glibc's
/// `malloc` and `free` were a fifth of the tokio workers' instructions; with jemalloc Herald
/// ran 8 % fewer instructions (callgrind, `herald-bench throughput`), used 19–28 % less CPU
/// in fan-out and held less memory there (docs/PERFORMANCE.md, eighth round).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    herald::cli::run(herald::cli::Cli::parse()).await
}
