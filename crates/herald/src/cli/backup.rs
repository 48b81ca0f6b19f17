//! `herald backup PATH`: a consistent copy of the embedded database, taken while `herald
//! serve` keeps running, and how to start Herald on it.
//!
//! The copy is written to a private temporary file beside PATH and put in place at the end,
//! so PATH never holds half a copy; an existing PATH is never replaced.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::Exit;
use crate::config::{Config, DatabaseUrl};
use crate::store::sqlite::SqliteStore;

pub async fn backup(config: Config, target: &Path) -> anyhow::Result<()> {
    let database = match &config.database_url {
        DatabaseUrl::Postgres(_) => {
            return Err(Exit {
                code: 2,
                message: "herald backup copies the embedded SQLite database; on PostgreSQL use \
                          its own tools, e.g. pg_dump --format=custom --file=herald.dump \
                          \"$HERALD_DATABASE_URL\""
                    .into(),
            }
            .into());
        }
        DatabaseUrl::Sqlite(path) => path.clone(),
    };
    if !database.exists() {
        let shown = std::path::absolute(&database).unwrap_or_else(|_| database.clone());
        anyhow::bail!(
            "no database at {} (HERALD_DATABASE_URL is sqlite://{}): run this where `herald serve` \
             runs, or set HERALD_DATABASE_URL (or --database-url) to its database",
            shown.display(),
            database.display()
        );
    }
    let target = std::path::absolute(target).context("cannot resolve the backup path")?;
    if target.symlink_metadata().is_ok() {
        anyhow::bail!(
            "{} already exists; herald backup never writes over a file: choose a new path",
            target.display()
        );
    }
    let temp = TempCopy::create(&target)?;
    let (from, into) = (database.clone(), temp.path.clone());
    tokio::task::spawn_blocking(move || SqliteStore::copy_into(&from, &into))
        .await
        .context("the backup stopped")?
        .with_context(|| format!("cannot copy {}", database.display()))?;
    let bytes = temp.finish(&target)?;
    print_restore(&config, &database, &target, bytes);
    Ok(())
}

/// The copy while it is being written: removed unless it was put in place.
struct TempCopy {
    path: PathBuf,
    placed: bool,
}

impl TempCopy {
    /// An empty private (`0600`) file beside `target`, on the same file system so that it
    /// can be put in place without copying.
    fn create(target: &Path) -> anyhow::Result<Self> {
        let dir = target.parent().unwrap_or(Path::new("/"));
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("the backup path names no file")?;
        let path = dir.join(format!(".{name}.{}.herald-backup", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        options
            .open(&path)
            .with_context(|| format!("cannot write the backup into {}", dir.display()))?;
        Ok(Self { path, placed: false })
    }

    /// Makes the copy durable, then gives it its name; returns its size. A hard link, not a
    /// rename: it fails rather than replace a file that appeared at `target` meanwhile.
    fn finish(mut self, target: &Path) -> anyhow::Result<u64> {
        let file = std::fs::File::open(&self.path).context("cannot reopen the copy")?;
        file.sync_all().context("cannot write the copy to disk")?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600))
                .context("cannot make the copy private")?;
        }
        match std::fs::hard_link(&self.path, target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
                "{} appeared while the backup ran; herald backup never writes over a file",
                target.display()
            ),
            // A file system without hard links: the check at the start has to do.
            Err(_) => std::fs::rename(&self.path, target)
                .with_context(|| format!("cannot name the copy {}", target.display()))?,
        }
        self.placed = true;
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = target.parent()
            && let Ok(dir) = std::fs::File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(bytes)
    }
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What starting Herald on the copy takes: the copy, and the master key its secrets are
/// encrypted with, which is not in the database.
fn print_restore(config: &Config, database: &Path, target: &Path, bytes: u64) {
    println!(
        "backup written to {} ({bytes} bytes): a consistent copy of {}",
        target.display(),
        database.display()
    );
    println!("to restore it, start Herald on the copy with the same master key:");
    if config.master_key.is_some() || std::env::var_os("HERALD_MASTER_KEY").is_some() {
        println!("  the master key is the HERALD_MASTER_KEY this Herald runs with: keep it with the backup");
    } else {
        let key = config
            .database_url
            .data_dir()
            .unwrap_or(Path::new("."))
            .join("master.key");
        let key = std::path::absolute(&key).unwrap_or(key);
        println!(
            "  the master key is in {}, which the backup does not include: keep a copy of it \
             with the backup, and put it beside the restored database as master.key (or set \
             HERALD_MASTER_KEY to its contents)",
            key.display()
        );
    }
    println!("  HERALD_DATABASE_URL=sqlite://{} herald serve", target.display());
}
