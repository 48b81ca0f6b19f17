//! One integration-test binary: every test starts the real Herald (in-process on port 0, or
//! the built binary as a child process) and talks HTTP to it.
//!
//! The suite (`suite/*.rs`) runs once per database backend: the same files are compiled twice,
//! as `sqlite::<area>::<test>` and `postgres::<area>::<test>`. Each backend module has its own
//! `BACKEND` and its own instance of `support/`, whose constructors (`TestApp::spawn*`,
//! `process::Server::start`, `process::run_cli`) read `super::BACKEND` to make the database.
//! The PostgreSQL half uses a throwaway cluster that the tests start themselves
//! (`support/postgres.rs`); where PostgreSQL is not installed it is skipped, loudly.

#![allow(
    clippy::duplicate_mod,
    reason = "suite/ and support/ are compiled once per backend on purpose"
)]

/// The database a copy of the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The first line of every test in `suite/`: returns at once (the test passes) when this
/// copy's backend cannot run here, after saying so once per process on stderr. With
/// `HERALD_TEST_REQUIRE_POSTGRES=1` it panics instead, so CI cannot skip silently.
macro_rules! skip_if_backend_unavailable {
    () => {
        if !super::support::backend_available() {
            return;
        }
    };
}

/// One throwaway PostgreSQL cluster per test process, shared by every `postgres::` test (so
/// it is declared here, once, not inside the per-backend `support`).
#[path = "support/postgres.rs"]
mod pg_cluster;

#[path = "suite"]
mod sqlite {
    const BACKEND: crate::Backend = crate::Backend::Sqlite;

    #[path = "../support/mod.rs"]
    mod support;

    mod auth;
    mod backup;
    mod batch;
    mod catalog;
    mod cli;
    mod connections;
    mod crash;
    mod dashboard;
    mod dashboard_browser;
    mod delivery;
    mod erasure;
    mod errors;
    mod fifo;
    mod filters;
    mod full_disk;
    mod headers;
    mod idempotency;
    mod keys;
    mod leases;
    mod openapi_client;
    mod operational_events;
    mod ops;
    mod pagination;
    mod portal;
    mod portal_browser;
    mod rate_limits;
    mod retention;
    mod secrets;
    mod ssrf;
    mod upgrade;
    mod webhooks;
}

#[path = "suite"]
mod postgres {
    const BACKEND: crate::Backend = crate::Backend::Postgres;

    // The same list as in `sqlite` above. (Written out, not made by a macro: rustfmt does not
    // see modules declared inside a macro, and `cargo fmt --check` must cover suite/.)
    #[path = "../support/mod.rs"]
    mod support;

    mod auth;
    mod backup;
    mod batch;
    mod catalog;
    mod cli;
    mod connections;
    mod crash;
    mod dashboard;
    mod dashboard_browser;
    mod delivery;
    mod erasure;
    mod errors;
    mod fifo;
    mod filters;
    mod full_disk;
    mod headers;
    mod idempotency;
    mod keys;
    mod leases;
    /// PostgreSQL only: several nodes, and the database going away.
    mod multinode;
    mod openapi_client;
    mod operational_events;
    mod ops;
    mod pagination;
    mod portal;
    mod portal_browser;
    mod rate_limits;
    mod retention;
    mod secrets;
    mod ssrf;
    mod upgrade;
    mod webhooks;
}
