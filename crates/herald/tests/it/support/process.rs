//! The built `herald` binary as a child process, for what only a process shows: the CLI,
//! what is printed on start, and what is written to the logs.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_herald")
}

/// Runs `herald ARGS` to completion with the database of `dir` (see [`super::database_url`]).
pub fn run_cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_remove("HERALD_MASTER_KEY")
        .envs(backend_env(dir))
        .output()
        .expect("run herald")
}

/// What points the binary at the database of `dir` (see [`super::database_url`]).
fn backend_env(dir: &Path) -> Vec<(&'static str, String)> {
    let mut env = vec![("HERALD_DATABASE_URL", super::database_url(dir))];
    env.extend(super::master_key().map(|key| ("HERALD_MASTER_KEY", key.to_owned())));
    env
}

/// A running `herald serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
}

fn collect(stream: impl std::io::Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut buf) = into.lock() {
                buf.push_str(&line);
                buf.push('\n');
            }
        }
    });
}

impl Server {
    /// Starts `herald serve` on a free port with the database of `dir` and extra `env`, and
    /// waits until it listens (JSON logs carry the address it bound).
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .current_dir(dir)
            .env("HERALD_LISTEN", "127.0.0.1:0")
            .env_remove("HERALD_MASTER_KEY")
            .envs(backend_env(dir))
            .env("HERALD_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn herald serve");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().expect("stdout"), Arc::clone(&stdout));
        collect(child.stderr.take().expect("stderr"), Arc::clone(&stderr));
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let found = stderr.lock().expect("lock").lines().find_map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                (v["message"] == "Herald is listening").then(|| v["listen"].as_str()?.parse().ok())?
            });
            if let Some(addr) = found {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "herald serve exited with {status}: {}",
                    stderr.lock().expect("lock")
                );
            }
            assert!(
                Instant::now() < deadline,
                "herald serve did not start: {}",
                stderr.lock().expect("lock")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn output(&self) -> String {
        format!(
            "{}{}",
            self.stdout.lock().expect("lock"),
            self.stderr.lock().expect("lock")
        )
    }

    /// The first admin key, as printed on first start. Stdout is read by its own thread, so
    /// the line may land a moment after the "listening" log line: wait for it.
    pub fn admin_key(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self
                .stdout
                .lock()
                .expect("lock")
                .lines()
                .find_map(|l| l.trim().strip_prefix("key:").map(|k| k.trim().to_owned()));
            if let Some(key) = found {
                return key;
            }
            assert!(
                Instant::now() < deadline,
                "serve never printed the first admin key: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL: no chance to finish anything.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops with SIGTERM (a graceful stop) and waits.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "herald serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
