//! The writer thread and its helpers: group commit (every write waiting when the writer is
//! free, in one transaction), a failed write undone alone, the syncer that `fdatasync`s the
//! WAL before durable writes are answered, and the checkpointer (see the parent module's
//! docs for why each is where it is).

use super::*;

/// How many queued writes one transaction may take.
pub(super) const MAX_BATCH: usize = 512;

pub(super) type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A write for the next batch. `durable` writes (anything a client was or will be told is
/// stored) are answered after the syncer's fsync; bookkeeping (leases, attempt records) is
/// answered at the commit: losing it in a power cut only means a delivery is attempted
/// again, which at-least-once allows, and the next fsync covers it anyway.
pub(super) struct Job {
    pub(super) durable: bool,
    pub(super) write: Box<dyn Write>,
}

/// A queued write and its caller (see the module docs for why it may run twice).
pub(super) trait Write: Send {
    /// Runs the write, keeping its result; says whether it succeeded and what to do the
    /// moment the commit succeeds. A second run replaces the first one's result.
    fn run(&mut self, conn: &Connection) -> (bool, Option<OnCommit>);
    /// Drops the last run's result, for a write that cannot run again (its first run was
    /// rolled back): it is then answered as failed, not with what the rollback undid.
    fn discard(&mut self);
    /// Answers the caller once the batch's fate is known.
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
    /// Why the last run failed, when the database refused it for a reason a retry can cure
    /// (a full disk, say).
    fn refusal(&self) -> Option<String>;
}

pub(super) struct Pending<T, F> {
    pub(super) f: F,
    pub(super) result: Option<Result<T, StoreError>>,
    pub(super) reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Pending<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> Result<(T, Option<OnCommit>), StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> (bool, Option<OnCommit>) {
        // Whatever the last run returned (its leases, its permits) is released before this one.
        self.result = None;
        match (self.f)(conn) {
            Ok((t, hook)) => {
                self.result = Some(Ok(t));
                (true, hook)
            }
            Err(e) => {
                self.result = Some(Err(e));
                (false, None)
            }
        }
    }

    fn discard(&mut self) {
        self.result = None;
    }

    fn refusal(&self) -> Option<String> {
        match &self.result {
            Some(Err(StoreError::Unavailable(why))) => Some(why.clone()),
            _ => None,
        }
    }

    fn finish(self: Box<Self>, committed: Result<(), StoreError>) {
        // No result: the write panicked or could not run, and was rolled back.
        let result = self
            .result
            .unwrap_or_else(|| Err(StoreError::Backend("the write failed; it was rolled back".into())));
        let _ = self.reply.send(committed.and(result));
    }
}

/// Runs on the writer right after a successful commit, before the fsync (see the module docs).
pub(super) type OnCommit = Box<dyn FnOnce() + Send>;

pub(super) fn writer_gone() -> StoreError {
    StoreError::Unavailable("the database writer has stopped".into())
}

pub(super) fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs every queued job in one transaction (see the module docs), then answers the
/// bookkeeping jobs and passes the durable ones to the syncer. A batch the database refuses
/// (a full disk, an I/O error) is rolled back and each of its callers told why; the writer
/// goes on with the next batch, which succeeds once the disk takes writes again.
pub(super) fn run_batch(
    conn: &Connection,
    batch: &mut Vec<Job>,
    syncer: &std::sync::mpsc::Sender<Vec<Completion>>,
    health: &WriteHealth,
) {
    let mut ran = begin(conn).map(|()| run_jobs(conn, batch, false));
    if matches!(ran, Ok(None)) {
        // SQLite may have rolled the transaction back itself (it does on a full disk).
        let rolled_back = exec(conn, "ROLLBACK").is_ok() || conn.is_autocommit();
        ran = if rolled_back {
            begin(conn).map(|()| run_jobs(conn, batch, true))
        } else {
            Err(StoreError::Unavailable("cannot roll back a failed write".into()))
        };
    }
    let ran = match ran {
        Ok(Some(ran)) => ran,
        other => {
            let error = match other {
                Err(e) => e,
                // The database rolled the whole transaction back under a write (see `run_jobs`).
                _ => batch.iter().find_map(|job| job.write.refusal()).map_or_else(
                    || StoreError::Unavailable("the database undid the batch".into()),
                    StoreError::Unavailable,
                ),
            };
            if let StoreError::Unavailable(why) = &error {
                health.refuse(why);
            }
            if !conn.is_autocommit() {
                let _ = exec(conn, "ROLLBACK");
            }
            for job in batch.drain(..) {
                let mut write = job.write;
                write.discard();
                write.finish(Err(error.clone()));
            }
            return;
        }
    };
    let committed = exec(conn, "COMMIT").map_err(StoreError::from);
    if let Err(e) = &committed {
        tracing::error!(error = %e, "commit failed; the batch was rolled back");
        if !conn.is_autocommit() {
            let _ = exec(conn, "ROLLBACK");
        }
    } else {
        for hook in ran.on_commit {
            hook();
        }
    }
    note_health(health, batch, &ran.succeeded, &committed);
    let mut durable: Vec<Completion> = Vec::new();
    for (job, succeeded) in batch.drain(..).zip(ran.succeeded) {
        if succeeded && job.durable && committed.is_ok() {
            let write = job.write;
            durable.push(Box::new(move |synced| write.finish(synced)));
        } else {
            // Failed (rolled back: nothing of it to sync) or bookkeeping: answered now.
            job.write.finish(committed.clone());
        }
    }
    if !durable.is_empty()
        && let Err(unsent) = syncer.send(durable)
    {
        for done in unsent.0 {
            done(Err(writer_gone()));
        }
    }
}

/// What a batch says about the database's ability to write: a refusal (of the commit or of
/// any one write) is remembered; a commit with at least one write in it clears it.
fn note_health(health: &WriteHealth, batch: &[Job], succeeded: &[bool], committed: &Result<(), StoreError>) {
    if let Err(StoreError::Unavailable(why)) = committed {
        health.refuse(why);
    } else if let Some(why) = batch.iter().find_map(|job| job.write.refusal()) {
        health.refuse(&why);
    } else if committed.is_ok() && succeeded.iter().any(|&ok| ok) {
        health.accepted();
    }
}

pub(super) fn begin(conn: &Connection) -> Result<(), StoreError> {
    exec(conn, "BEGIN IMMEDIATE").map_err(|e| {
        tracing::error!(error = %e, "cannot start a write transaction");
        StoreError::from(e)
    })
}

/// What running a batch's jobs did: whether each succeeded, and the successful ones' hooks.
pub(super) struct Ran {
    succeeded: Vec<bool>,
    on_commit: Vec<OnCommit>,
}

/// Runs the jobs in the open transaction. `isolated`, each in a savepoint of its own, and a
/// failed one is rolled back alone; otherwise the first failure stops the run (`None`), and
/// the caller rolls back the whole transaction. Either way, a failure after which SQLite has
/// rolled back the transaction itself (it may on a full disk or an I/O error) stops the run:
/// the writes after it would each commit on their own, outside the batch.
pub(super) fn run_jobs(conn: &Connection, batch: &mut [Job], isolated: bool) -> Option<Ran> {
    let mut ran = Ran {
        succeeded: Vec::with_capacity(batch.len()),
        on_commit: Vec::new(),
    };
    for job in batch.iter_mut() {
        if isolated && let Err(e) = exec(conn, "SAVEPOINT job") {
            tracing::error!(error = %e, "cannot open a savepoint");
            job.write.discard();
            ran.succeeded.push(false);
            continue;
        }
        let succeeded = match std::panic::catch_unwind(AssertUnwindSafe(|| job.write.run(conn))) {
            Ok((true, hook)) => {
                ran.on_commit.extend(hook);
                true
            }
            Ok((false, _)) => false,
            Err(_) => {
                tracing::error!("a database write panicked; it was rolled back");
                false
            }
        };
        if !succeeded && conn.is_autocommit() {
            return None;
        }
        if isolated {
            if !succeeded {
                let _ = exec(conn, "ROLLBACK TO job");
            }
            let _ = exec(conn, "RELEASE job");
        } else if !succeeded {
            return None;
        }
        ran.succeeded.push(succeeded);
    }
    Some(ran)
}

pub(super) fn writer_loop(
    conn: Connection,
    jobs: std::sync::mpsc::Receiver<Job>,
    syncer: std::sync::mpsc::Sender<Vec<Completion>>,
    health: &WriteHealth,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(job) = jobs.recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, &mut batch, &syncer, health);
    }
}

/// WAL frames after which a checkpoint is asked for: SQLite's own default.
pub(super) const CHECKPOINT_FRAMES: std::ffi::c_int = 1000;

/// WAL frames (≈ 40 MB) after which the writer finishes a checkpoint itself (see the hook in
/// `open_blocking`), so the WAL stays bounded under writes that never pause.
pub(super) const WAL_FRAMES_MAX: std::ffi::c_int = 10_000;

/// The checkpointer's pause after each checkpoint: every commit past `CHECKPOINT_FRAMES`
/// asks again, and back-to-back checkpoints would keep the disk busy with their fsyncs.
pub(super) const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Copies the WAL back into the database file whenever the writer says it has grown, on a
/// connection and a thread of its own. SQLite's automatic checkpoint ran on the writer, and
/// its two fsyncs (the WAL before copying, the database after) stalled every write queued
/// behind it: at 1,000 events/s they set the delivery latency's p99 (docs/PERFORMANCE.md,
/// changelog, round 7). A passive checkpoint never blocks the writer; the writer still syncs
/// the WAL's header once when it starts the WAL over, as SQLite requires.
pub(super) fn checkpointer_loop(conn: &Connection, grown: &std::sync::mpsc::Receiver<()>) {
    while grown.recv().is_ok() {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "checkpoint failed; the next one will retry");
        }
        std::thread::sleep(CHECKPOINT_PAUSE);
    }
}

/// Answers committed durable writes once an fsync of the WAL that began after their commit
/// has finished; all the writes waiting when a sync begins share it.
pub(super) fn syncer_loop(
    database: &Path,
    committed: std::sync::mpsc::Receiver<Vec<Completion>>,
    health: &WriteHealth,
) {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    while let Ok(mut waiting) = committed.recv() {
        while let Ok(more) = committed.try_recv() {
            waiting.extend(more);
        }
        let synced = sync_file(&wal, database);
        if let Err(e) = &synced {
            tracing::error!(error = %e, "cannot make commits durable");
            health.observe(&synced);
        }
        for done in waiting {
            done(synced.clone());
        }
    }
}

/// `fdatasync` of the WAL, opened afresh each time so it is always the file SQLite writes.
/// Without a WAL file everything was checkpointed into the database file; that one is synced.
pub(super) fn sync_file(wal: &Path, database: &Path) -> Result<(), StoreError> {
    let file = match std::fs::File::open(wal) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::File::open(database),
        other => other,
    };
    file.and_then(|f| f.sync_data())
        .map_err(|e| StoreError::Unavailable(format!("cannot sync the database to disk: {e}")))
}
