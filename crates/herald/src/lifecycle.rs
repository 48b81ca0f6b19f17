//! Keeping the data bounded: retention deletes what has aged past its org's retention once
//! every delivery of it has ended, and erasure deletes an erased org's data. Both run here,
//! in a background task on every node, as small batches of the store's ([`Store::purge_events`]),
//! so that publishing and delivery never wait long behind them. The rules (whose events, which
//! cutoff, in which order, how fast) live here, once for both backends; on PostgreSQL the
//! store's row locks let several nodes share the work.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::domain::ids::{EventId, OrgId};
use crate::domain::time::{Millis, now_ms};
use crate::store::{OrgLifecycle, PurgeStep, Purged, Store, StoreError, rollup};

/// Events looked at per batch: a batch is one short transaction (on SQLite, one turn of the
/// writer that publishes also wait for). 256 took the writer 2–7 ms a turn, and an org that
/// had rested caught up in a burst of them; 64 spreads the same work over more, shorter
/// turns (a 2,000/s soak's publish p99 while purging: docs/PERFORMANCE.md).
const BATCH: u32 = 64;
/// Between two batches while work is left: room for the writes that matter more.
const PAUSE: Duration = Duration::from_millis(10);
/// How often to look again when nothing was left to delete.
const TICK: Duration = Duration::from_secs(1);
/// A walk through an org's events goes on from where it stopped, so each batch looks at new
/// events only; it starts over from the oldest this often, for the events it kept because a
/// delivery was pending then. Well inside the contract's minute.
const ROUND: Duration = Duration::from_secs(20);
/// After a batch that reached the cutoff, an org rests this long: with many orgs, most have
/// nothing aged each second, and each look is a query.
const REST: Duration = Duration::from_secs(5);

/// What the janitor needs from the config.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `HERALD_RETENTION`: for orgs without their own.
    pub retention: Duration,
    /// How long an attempt may still be recorded after its delivery was canceled (the
    /// engine's lease): an erased org's deliveries are deleted only after that, so no late
    /// record writes an attempt of a delivery that is gone.
    pub settle: Duration,
}

/// Where a walk through one org's events is.
#[derive(Debug)]
struct Walk {
    after: String,
    started: Instant,
    resting_until: Option<Instant>,
}

impl Walk {
    fn new() -> Self {
        Self {
            after: String::new(),
            started: Instant::now(),
            resting_until: None,
        }
    }
}

pub struct Janitor {
    store: Arc<dyn Store>,
    settings: Settings,
    walks: HashMap<OrgId, Walk>,
    /// The dashboard's rollups are deleted up to this epoch minute: a time-ordered delete,
    /// once a minute.
    rollups_purged_to: i64,
}

impl Janitor {
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> Self {
        Self {
            store,
            settings,
            walks: HashMap::new(),
            rollups_purged_to: 0,
        }
    }

    /// Purges until `shutdown` turns true. A failure (the database away, the disk full) is
    /// logged and tried again on the next tick.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let wait = match self.pass().await {
                Ok(true) => PAUSE,
                Ok(false) => TICK,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot purge old data; trying again shortly");
                    TICK
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One batch for each org with something to do; whether any has more.
    pub async fn pass(&mut self) -> Result<bool, StoreError> {
        self.purge_rollups().await?;
        let orgs = self.store.org_lifecycles().await?;
        let known: std::collections::HashSet<&OrgId> = orgs.iter().map(|org| &org.id).collect();
        self.walks.retain(|id, _| known.contains(id));
        let mut more = false;
        for org in orgs {
            more |= match org.erased_at {
                Some(at) => self.erase(&org, at).await?,
                None => self.expire(&org).await?,
            };
        }
        Ok(more)
    }

    /// The dashboard's rollups older than any page shows, when a minute has passed since the
    /// last time.
    async fn purge_rollups(&mut self) -> Result<(), StoreError> {
        let before = now_ms() - rollup::KEEP_MS;
        if rollup::minute_of(before) > self.rollups_purged_to {
            let rows = self.store.purge_rollups(before).await?;
            tracing::debug!(rows, "old dashboard rollups deleted");
            self.rollups_purged_to = rollup::minute_of(before);
        }
        Ok(())
    }

    /// The next batch of `org`'s events past its retention; whether more may be left.
    async fn expire(&mut self, org: &OrgLifecycle) -> Result<bool, StoreError> {
        let retention = org
            .retention_ms
            .unwrap_or_else(|| millis(self.settings.retention));
        let resting = self
            .walks
            .get(&org.id)
            .and_then(|walk| walk.resting_until)
            .is_some_and(|until| Instant::now() < until);
        if resting {
            return Ok(false);
        }
        let before = EventId::floor_at(now_ms().saturating_sub(retention));
        let purged = self.step(&org.id, before, true).await?;
        let walk = self.walks.entry(org.id.clone()).or_insert_with(Walk::new);
        let done = purged.examined < BATCH as usize;
        if done {
            if walk.started.elapsed() >= ROUND {
                *walk = Walk::new();
            }
            walk.resting_until = Some(Instant::now() + REST);
        }
        Ok(!done)
    }

    /// The next step of erasing `org`: its pending deliveries canceled at once (and again on
    /// every pass, for a publish that raced the erasure), its events deleted batch by batch
    /// once attempts in flight can no longer be recorded, and then the rest of it.
    async fn erase(&mut self, org: &OrgLifecycle, erased_at: Millis) -> Result<bool, StoreError> {
        let now = now_ms();
        self.store.cancel_org_deliveries(org.id.clone(), now).await?;
        if now < erased_at.saturating_add(millis(self.settings.settle)) {
            return Ok(false);
        }
        // Every event so far (ids compare as text, in the database's collation too).
        let purged = self.step(&org.id, EventId::floor_at(now + 1), false).await?;
        if purged.examined == BATCH as usize {
            return Ok(true);
        }
        self.store.forget_org(org.id.clone()).await?;
        self.walks.remove(&org.id);
        metrics::counter!("herald_purged_total", "kind" => "orgs").increment(1);
        tracing::info!(org.id = %org.id, "an erased org's data is deleted");
        Ok(false)
    }

    /// The next batch of `org`'s walk, before `before`; counted, and the walk moved on.
    async fn step(&mut self, org: &OrgId, before: String, keep_pending: bool) -> Result<Purged, StoreError> {
        let walk = self.walks.entry(org.clone()).or_insert_with(Walk::new);
        let purged = self
            .store
            .purge_events(PurgeStep {
                org: org.clone(),
                after: walk.after.clone(),
                before,
                limit: BATCH,
                keep_pending,
            })
            .await?;
        count(&purged);
        if let Some(last) = &purged.last {
            walk.after.clone_from(last);
        }
        Ok(purged)
    }
}

fn count(purged: &Purged) {
    for (kind, n) in [
        ("events", purged.events),
        ("deliveries", purged.deliveries),
        ("attempts", purged.attempts),
    ] {
        if n > 0 {
            metrics::counter!("herald_purged_total", "kind" => kind).increment(n);
        }
    }
}

fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}
