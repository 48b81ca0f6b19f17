//! The Herald under test: one this bench starts (`herald serve --dev` in a fresh temp dir), or
//! a running one given by `--url` and `--key`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::CommonArgs;

pub struct Target {
    /// `http://host:port`, no trailing slash.
    pub base_url: String,
    /// `key_…:…`.
    pub key: String,
    pub child: Option<Started>,
}

pub struct Started {
    pub child: Child,
    pub pid: u32,
    pub bin: PathBuf,
    pub version: String,
    /// Herald's working dir (database, logs), removed on drop.
    pub dir: tempfile::TempDir,
}

/// Where the `herald` binary is: `--herald-bin`, else next to this executable.
pub fn herald_bin(args: &CommonArgs) -> anyhow::Result<PathBuf> {
    let path = match &args.herald_bin {
        Some(p) => p.clone(),
        None => {
            let exe = std::env::current_exe().context("cannot locate the herald-bench executable")?;
            exe.parent().unwrap_or(Path::new(".")).join("herald")
        }
    };
    if !path.is_file() {
        bail!(
            "the herald binary was not found at {}.\n\
             Build both in one go with `cargo build --release -p herald -p herald-bench` and run \
             ./target/release/herald-bench (it looks for herald next to its own executable), or pass \
             --herald-bin PATH, or target a running Herald with \
             --url http://HOST:PORT --key key_…:…",
            path.display()
        );
    }
    Ok(path)
}

/// 32 random bytes as 64 hex digits, from the kernel.
fn random_hex_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The last lines of a file, for error messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Target {
    /// Starts Herald (or checks the given one) and waits until it is ready.
    /// `extra_env` comes before the user's `--herald-env`, which wins.
    pub async fn open(
        args: &CommonArgs,
        extra_env: &[(&str, String)],
        client: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        if let Some(url) = &args.url {
            let key = args
                .key
                .clone()
                .context("--url needs --key key_…:… (an admin or tenant key of that Herald)")?;
            let base_url = url.trim_end_matches('/').to_owned();
            wait_ready(client, &base_url, None).await?;
            return Ok(Self {
                base_url,
                key,
                child: None,
            });
        }

        let bin = herald_bin(args)?;
        let version = std::process::Command::new(&bin)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let dir = tempfile::Builder::new()
            .prefix("herald-bench-")
            .tempdir()
            .context("creating a temp dir")?;
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");

        let mut cmd = Command::new(&bin);
        cmd.arg("serve").arg("--dev").current_dir(dir.path());
        // A clean environment for Herald: none of the caller's HERALD_* settings leak in.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("HERALD_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("HERALD_LISTEN", &listen);
        match &args.database_url {
            Some(db) => {
                cmd.env("HERALD_DATABASE_URL", db);
                if db.starts_with("postgres://") || db.starts_with("postgresql://") {
                    cmd.env("HERALD_MASTER_KEY", random_hex_key()?);
                }
            }
            None => {
                let data = dir.path().join("herald-data");
                std::fs::create_dir_all(&data)?;
                cmd.env(
                    "HERALD_DATABASE_URL",
                    format!("sqlite://{}", data.join("herald.db").display()),
                );
            }
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        for kv in &args.herald_env {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--herald-env {kv:?}: expected KEY=VALUE"))?;
            cmd.env(k, v);
        }
        let stderr_path = dir.path().join("herald.stderr.log");
        let stderr = std::fs::File::create(&stderr_path)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("herald exited at once")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;

        // Read stdout until the key line, then keep draining it into a file so that Herald
        // never blocks on a full pipe.
        let (key_tx, key_rx) = tokio::sync::oneshot::channel::<String>();
        let stdout_path = dir.path().join("herald.stdout.log");
        let mut stdout_file = tokio::fs::File::create(&stdout_path).await?;
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut key_tx = Some(key_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(key) = line.trim_start().strip_prefix("key:") {
                    if let Some(tx) = key_tx.take() {
                        let _ = tx.send(key.trim().to_owned());
                    }
                    // The secret itself never goes to the log file.
                    continue;
                }
                let _ = stdout_file.write_all(line.as_bytes()).await;
                let _ = stdout_file.write_all(b"\n").await;
            }
        });

        let base_url = format!("http://{listen}");
        let key = match &args.key {
            Some(k) => k.clone(),
            None => {
                let waited = tokio::select! {
                    k = key_rx => k.ok(),
                    _ = tokio::time::sleep(Duration::from_secs(120)) => None,
                    _ = child.wait() => None,
                };
                match waited {
                    Some(k) => k,
                    None => bail!(
                        "Herald did not print an admin key (it prints one only on an empty database; \
                         for a used database pass --key). Its log ({}):\n{}",
                        stderr_path.display(),
                        tail(&stderr_path, 20)
                    ),
                }
            }
        };
        if let Err(e) = wait_ready(client, &base_url, Some(&mut child)).await {
            bail!("{e:#}\nHerald's log:\n{}", tail(&stderr_path, 20));
        }
        Ok(Self {
            base_url,
            key,
            child: Some(Started {
                child,
                pid,
                bin,
                version,
                dir,
            }),
        })
    }

    /// The embedded database file of a Herald this bench started on SQLite.
    pub fn database_file(&self) -> Option<std::path::PathBuf> {
        let started = self.child.as_ref()?;
        let file = started.dir.path().join("herald-data").join("herald.db");
        file.exists().then_some(file)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid)
    }

    /// Stops a Herald we started: SIGTERM, then SIGKILL after 15 s.
    pub async fn stop(&mut self) {
        let Some(started) = self.child.as_mut() else {
            return;
        };
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(started.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(15), started.child.wait())
            .await
            .is_err()
        {
            eprintln!("herald did not stop within 15 s of SIGTERM; killing it");
            let _ = started.child.kill().await;
        }
    }
}

async fn wait_ready(
    client: &reqwest::Client,
    base_url: &str,
    mut child: Option<&mut Child>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("{base_url}/readyz");
    let mut last = String::new();
    while Instant::now() < deadline {
        match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("GET {url}: {}", r.status()),
            Err(e) => last = format!("GET {url}: {e}"),
        }
        if let Some(c) = child.as_deref_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            bail!("herald exited during start-up ({status})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("Herald is not ready after 60 s ({last})")
}
