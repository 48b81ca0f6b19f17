//! One integration-test binary: every test starts the real Herald (in-process on port 0, or
//! the built binary as a child process) and talks HTTP to it.

mod support;

mod auth;
mod cli;
mod crash;
mod delivery;
mod errors;
mod idempotency;
mod ops;
mod pagination;
mod secrets;
mod ssrf;
mod webhooks;
