use clap::Parser as _;

/// jemalloc serves every allocation in the process, Rust's and SQLite's (the crate's
/// `unprefixed_malloc_on_supported_platforms` feature replaces `malloc` itself). glibc's
/// `malloc` and `free` were a fifth of the tokio workers' instructions; with jemalloc Herald
/// ran 8 % fewer instructions (callgrind, `herald-bench throughput`), used 19–28 % less CPU
/// in fan-out and held less memory there (docs/PERFORMANCE.md, changelog, round 8; the measurements are in `git show ba57ba0:docs/PERFORMANCE.md`).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// An error is printed with its causes, one line, and no backtrace: what fails here is the
/// user's input or environment (a typo, a busy port, a database that is not there), and a
/// stack of Herald's frames would only bury the message, even with `RUST_BACKTRACE=1` set.
/// Bugs panic, and a panic still prints its backtrace.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match herald::cli::run(herald::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(herald::cli::Exit::status_of(&e))
        }
    }
}
