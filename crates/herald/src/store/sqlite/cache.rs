//! What every publish and claim reads about webhooks, kept by the writer between changes to
//! them: each org's candidates (their event patterns parsed once, not on every publish) and
//! each webhook's sealed secrets.
//!
//! The embedded store has one writer connection in one process (`store/lock.rs`), so hooks
//! on that connection see every change to the webhook tables. Any change, and any rollback,
//! empties the cache; the next read fills it again, unless the open transaction has changed
//! a webhook table: what it reads then may still be undone (a failed job is rolled back to
//! its savepoint, which no hook reports), so it is read from the database and not kept until
//! that transaction has committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

type SecretRows = Arc<[SecretRow]>;

pub(crate) struct WebhookCache {
    /// What is kept may be out of date: empty it before the next read.
    stale: Arc<AtomicBool>,
    /// The open transaction has changed a webhook table.
    uncommitted: Arc<AtomicBool>,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    candidates: HashMap<OrgId, Arc<[Candidate]>>,
    secrets: HashMap<String, SecretRows>,
    controls: Option<Arc<Controls>>,
}

impl WebhookCache {
    /// A cache of what `writer` reads, emptied whenever `writer` changes a webhook or one of
    /// its secrets, or rolls back.
    pub(super) fn watching(writer: &mut Connection) -> Result<Arc<Self>, StoreError> {
        let cache = Self::unwatched();
        let (stale, uncommitted) = (Arc::clone(&cache.stale), Arc::clone(&cache.uncommitted));
        writer.update_hook(Some(
            move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
                if table == "webhooks" || table == "webhook_secrets" {
                    stale.store(true, Ordering::Relaxed);
                    uncommitted.store(true, Ordering::Relaxed);
                }
            },
        ))?;
        let uncommitted = Arc::clone(&cache.uncommitted);
        writer.commit_hook(Some(move || {
            uncommitted.store(false, Ordering::Relaxed);
            false
        }))?;
        let (stale, uncommitted) = (Arc::clone(&cache.stale), Arc::clone(&cache.uncommitted));
        writer.rollback_hook(Some(move || {
            stale.store(true, Ordering::Relaxed);
            uncommitted.store(false, Ordering::Relaxed);
        }))?;
        Ok(cache)
    }

    /// A cache no hook empties: for a test whose connection changes no webhook.
    pub(super) fn unwatched() -> Arc<Self> {
        Arc::new(Self {
            stale: Arc::new(AtomicBool::new(false)),
            uncommitted: Arc::new(AtomicBool::new(false)),
            kept: Mutex::new(Kept::default()),
        })
    }

    /// Whether what is read now may be kept.
    fn keeps(&self) -> bool {
        !self.uncommitted.load(Ordering::Relaxed)
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.stale.swap(false, Ordering::Relaxed) {
            *kept = Kept::default();
        }
        kept
    }

    /// The org's live webhooks, active or not.
    pub(super) fn candidates(&self, conn: &Connection, org: &OrgId) -> Result<Arc<[Candidate]>, StoreError> {
        if let Some(found) = self.kept().candidates.get(org) {
            return Ok(Arc::clone(found));
        }
        let read: Arc<[Candidate]> = conn
            .prepare_cached(&format!(
                "SELECT {CANDIDATE_COLUMNS} FROM webhooks WHERE org_id = ? AND deleted_at IS NULL"
            ))?
            .query_map([org.as_str()], candidate_from_row)?
            .collect::<Result<_, _>>()?;
        if self.keeps() {
            self.kept().candidates.insert(org.clone(), Arc::clone(&read));
        }
        Ok(read)
    }

    /// The webhooks with delivery controls, for a claim: read once per change to the webhooks,
    /// not on every claim.
    pub(super) fn controls(&self, conn: &Connection) -> Result<Arc<Controls>, StoreError> {
        if let Some(found) = &self.kept().controls {
            return Ok(Arc::clone(found));
        }
        let read = Arc::new(controls(conn)?);
        if self.keeps() {
            self.kept().controls = Some(Arc::clone(&read));
        }
        Ok(read)
    }

    /// The webhook's sealed secrets that sign at `now`, the current one first.
    pub(super) fn signing_secrets(
        &self,
        conn: &Connection,
        webhook: &str,
        now: Millis,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let cached = self.kept().secrets.get(webhook).cloned();
        let rows = match cached {
            Some(rows) => rows,
            None => {
                let read: SecretRows = secret_rows(conn, webhook)?.into();
                if self.keeps() {
                    self.kept().secrets.insert(webhook.to_owned(), Arc::clone(&read));
                }
                read
            }
        };
        Ok(live_secrets(&rows, now))
    }
}
