//! The embedded store serves one `herald serve` at a time: two processes on one SQLite file
//! would each run a delivery engine that counts leases in memory, and both would deliver the
//! same work. `serve` holds an OS lock on a file beside the database for as long as it runs;
//! the OS releases it when the process ends, however it ends, so a crash never leaves a stale
//! lock behind. The lock file also names the holder's PID, for the refusal message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the database {database} is in use by another `herald serve` ({holder}); the embedded \
         store serves one process at a time: stop that one first, or use PostgreSQL to run \
         several nodes"
    )]
    Held { database: String, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Held while `serve` runs; dropping it (or exiting) releases the lock.
#[derive(Debug)]
pub struct EmbeddedLock {
    _file: File,
}

/// `herald.db` → `herald.db.lock`.
fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl EmbeddedLock {
    pub fn acquire(database: &Path) -> Result<Self, LockError> {
        let path = lock_path(database);
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            super::create_private_dir(parent).map_err(io)?;
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("PID {pid}"),
                    Err(_) => "PID unknown".to_owned(),
                };
                return Err(LockError::Held {
                    database: database.display().to_string(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_database_is_refused_with_the_holders_pid_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = dir.path().join("data/herald.db");
        let first = EmbeddedLock::acquire(&database).expect("first");
        let refused = EmbeddedLock::acquire(&database).expect_err("held").to_string();
        assert!(refused.contains(&database.display().to_string()), "{refused}");
        assert!(
            refused.contains(&format!("PID {}", std::process::id())),
            "{refused}"
        );
        drop(first);
        EmbeddedLock::acquire(&database).expect("free again");
    }
}
