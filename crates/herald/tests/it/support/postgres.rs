//! A throwaway PostgreSQL cluster for the `postgres::` half of the suite, started by the tests
//! themselves: once per test process, lazily on first use, in a fresh temp dir, on a free port.
//! It never outlives the test process: a small `sh` watchdog waits for the process to be gone,
//! then stops PostgreSQL and removes the temp dir.
//!
//! The server binaries are `HERALD_TEST_PG_BIN` (a bin dir) if set, else the newest
//! `/usr/lib/postgresql/*/bin` with `initdb`, else the dir of `initdb` on `PATH`. None found:
//! PostgreSQL is unavailable and the postgres half is skipped, saying so once on stderr, or
//! fails when `HERALD_TEST_REQUIRE_POSTGRES=1` (as in CI).

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The superuser `initdb` makes; every test database is reached as this user, without a password.
const USER: &str = "herald";

struct Cluster {
    bin: PathBuf,
    port: u16,
    /// Kept so the handle lives as long as the process; the watchdog is never waited for.
    _watchdog: Child,
}

enum State {
    /// No PostgreSQL server binaries here: the postgres half is skipped (or fails if required).
    NotFound(String),
    /// Binaries found, but the cluster would not start: every postgres test fails with this.
    Broken(String),
    Running(Cluster),
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> &'static State {
    STATE.get_or_init(|| match find_bin() {
        Err(why) => State::NotFound(why),
        Ok(bin) => match start(&bin) {
            Ok(cluster) => State::Running(cluster),
            Err(why) => State::Broken(why),
        },
    })
}

/// Whether the cluster is running (starting it on first call). When PostgreSQL is not
/// installed: `false`, after one notice on stderr per process, or a panic when
/// `HERALD_TEST_REQUIRE_POSTGRES=1`. Binaries that are there but fail to start always panic.
pub fn available() -> bool {
    match state() {
        State::Running(_) => true,
        State::Broken(why) => panic!("PostgreSQL was found but the test cluster did not start: {why}"),
        State::NotFound(why) => {
            if std::env::var("HERALD_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("HERALD_TEST_REQUIRE_POSTGRES=1 but PostgreSQL is not available: {why}");
            }
            static NOTICE: Once = Once::new();
            NOTICE.call_once(|| {
                // Straight to the stderr file descriptor: libtest captures `eprintln!`, not this.
                let line = format!(
                    "PostgreSQL not found ({why}): the postgres half of the suite was SKIPPED \
                     (install postgresql or set HERALD_TEST_PG_BIN)\n"
                );
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            });
            false
        }
    }
}

fn cluster() -> &'static Cluster {
    match state() {
        State::Running(cluster) => cluster,
        _ => panic!("the PostgreSQL test cluster is not running; check `available()` first"),
    }
}

/// A new, empty database in the cluster: `postgres://herald@127.0.0.1:PORT/NAME`.
/// `None` when PostgreSQL is unavailable (see [`available`]).
pub fn fresh_database_url() -> Option<String> {
    if !available() {
        return None;
    }
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static CREATING: Mutex<()> = Mutex::new(());
    let name = format!("herald_test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    {
        // One CREATE DATABASE at a time: they all copy template1.
        let _one = CREATING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        psql("postgres", &format!("CREATE DATABASE {name}"));
    }
    let cluster = cluster();
    Some(format!("postgres://{USER}@127.0.0.1:{}/{name}", cluster.port))
}

/// The database name at the end of a `postgres://…/NAME` URL.
pub fn database_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// Runs `sql` in `database` with `psql` and returns its unaligned, tuples-only output.
pub fn psql(database: &str, sql: &str) -> String {
    let cluster = cluster();
    let output = cluster
        .client("psql")
        .args(["-X", "-qAt", "-v", "ON_ERROR_STOP=1"]) // quiet, unaligned, tuples only
        .args(["-d", database, "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "psql -c {sql:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Loads a plain `pg_dump` into `database`. Its `\restrict` lines (psql meta-commands that
/// newer dumps carry) are left out, so any psql of the major version loads it.
pub fn restore(database: &str, dump: &str) {
    let cleaned: String = dump
        .lines()
        .filter(|line| !line.starts_with("\\restrict") && !line.starts_with("\\unrestrict"))
        .map(|line| format!("{line}\n"))
        .collect();
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), cleaned).expect("write dump");
    let cluster = cluster();
    let output = cluster
        .client("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database, "-f"])
        .arg(file.path())
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "restoring the dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every row of `database` as `pg_dump --data-only` prints it (bytea as `\x` + hex).
pub fn dump(database: &str) -> Vec<u8> {
    let cluster = cluster();
    let output = cluster
        .client("pg_dump")
        .args(["--data-only", "--no-owner", database])
        .output()
        .expect("run pg_dump");
    assert!(
        output.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

impl Cluster {
    /// A client program (`psql`, `pg_dump`) pointed at the cluster as `herald`.
    fn client(&self, name: &str) -> Command {
        client(&self.bin, self.port, name)
    }
}

fn client(bin: &Path, port: u16, name: &str) -> Command {
    let mut command = Command::new(tool(bin, name));
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", USER])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .stdin(Stdio::null());
    command
}

/// A cluster of a test's own, for a test that stops and restarts PostgreSQL (the shared one
/// must stay up for the others). Cleaned up like the shared one when the process ends.
pub struct OwnCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_root: bool,
    watchdogs: Mutex<Vec<Child>>,
}

/// A new cluster of its own; `None` when PostgreSQL is unavailable (see [`available`]).
pub fn own_cluster() -> Option<OwnCluster> {
    if !available() {
        return None;
    }
    let bin = cluster().bin.clone();
    let as_root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("herald-test-pg-own-")
        .tempdir()
        .expect("temp dir")
        .keep();
    init_dir(&bin, &dir, as_root).expect("initdb");
    let port = free_port().expect("a free port");
    let own = OwnCluster {
        bin,
        dir,
        port,
        as_root,
        watchdogs: Mutex::new(Vec::new()),
    };
    own.start();
    Some(own)
}

impl OwnCluster {
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn create_database(&self, name: &str) {
        let output = client(&self.bin, self.port, "psql")
            .args([
                "-X",
                "-qAt",
                "-d",
                "postgres",
                "-c",
                &format!("CREATE DATABASE {name}"),
            ])
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts (or starts again) the server and waits until it accepts connections.
    pub fn start(&self) {
        let watchdog = spawn_server(&self.bin, &self.dir, self.port, self.as_root).expect("start postgres");
        self.watchdogs.lock().expect("lock").push(watchdog);
        wait_ready(&self.bin, &self.dir, self.port).expect("postgres ready");
    }

    /// A fast shutdown (every connection is closed), waiting until it is down.
    pub fn stop(&self) {
        let pidfile = self.dir.join("data").join("postmaster.pid");
        let pid = std::fs::read_to_string(&pidfile).expect("postmaster.pid");
        let pid = pid.lines().next().expect("pid").trim().to_owned();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while pidfile.exists() {
            assert!(Instant::now() < deadline, "postgres did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `bin/NAME` when it is there, else `NAME` from `PATH`.
fn tool(bin: &Path, name: &str) -> PathBuf {
    let path = bin.join(name);
    if path.is_file() { path } else { PathBuf::from(name) }
}

fn find_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("HERALD_TEST_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").is_file() {
            Ok(dir)
        } else {
            Err(format!("HERALD_TEST_PG_BIN={} has no initdb", dir.display()))
        };
    }
    // Debian's layout: /usr/lib/postgresql/<version>/bin; the newest version wins.
    let mut installed: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let bin = entry.path().join("bin");
            let version = entry
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(|part| part.parse().unwrap_or(0))
                .collect();
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    installed.sort();
    if let Some((_, bin)) = installed.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let initdb = dir.join("initdb");
        if initdb.is_file() {
            // Follow a symlink (e.g. /usr/local/bin/initdb) to the dir with the other programs.
            let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
            return Ok(real.parent().unwrap_or(&dir).to_path_buf());
        }
    }
    Err("no initdb in HERALD_TEST_PG_BIN, /usr/lib/postgresql/*/bin or PATH".into())
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// `initdb` and `postgres` refuse to run as root; a root test process runs them as the
/// `postgres` OS user (there with the Debian package) through `runuser`.
fn server_command(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A port that binds now, outside the usual ephemeral range (32768-60999) so that sockets
/// the tests bind on port 0 meanwhile cannot take it before PostgreSQL does.
fn free_port() -> Result<u16, String> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    for i in 0..200u32 {
        let port = 20_000 + (seed.wrapping_add(i.wrapping_mul(7_919)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port in 20000-31999".into())
}

/// The watchdog: starts the server command (`$3…`) in the background with its output in
/// `$1/postgres.log`, waits for the test process (`$2`) to be gone, then stops PostgreSQL with
/// SIGINT (a fast shutdown; SIGKILL after 30 s), waits for it, and removes the temp dir `$1`.
/// It runs as the test process's user, so `kill -0` (for systems without /proc) works too.
const WATCHDOG: &str = r#"
dir=$1; test_pid=$2; shift 2
"$@" >"$dir/postgres.log" 2>&1 &
server=$!
while [ -d "/proc/$test_pid" ] || kill -0 "$test_pid" 2>/dev/null; do sleep 1; done
pidfile=$dir/data/postmaster.pid
postmaster=$(head -n 1 "$pidfile" 2>/dev/null)
if [ -n "$postmaster" ]; then
    kill -INT "$postmaster" 2>/dev/null
    # PostgreSQL removes its pid file when it has stopped.
    i=0
    while [ -f "$pidfile" ] && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    [ -f "$pidfile" ] && kill -KILL "$postmaster" 2>/dev/null
fi
wait "$server"
rm -rf "$dir"
"#;

fn start(bin: &Path) -> Result<Cluster, String> {
    let as_root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("herald-test-pg-")
        .tempdir()
        .map_err(|e| format!("cannot make a temp dir: {e}"))?
        .keep();
    let started = start_in(bin, &dir, as_root);
    if started.is_err() && !dir.join("postgres.log").exists() {
        // No watchdog was started to clean up.
        let _ = std::fs::remove_dir_all(&dir);
    }
    started
}

fn start_in(bin: &Path, dir: &Path, as_root: bool) -> Result<Cluster, String> {
    init_dir(bin, dir, as_root)?;
    let port = free_port()?;
    let watchdog = spawn_server(bin, dir, port, as_root)?;
    let cluster = Cluster {
        bin: bin.to_path_buf(),
        port,
        _watchdog: watchdog,
    };
    wait_ready(bin, dir, port)?;
    Ok(cluster)
}

/// `initdb` into `dir/data`, with a socket dir beside it.
fn init_dir(bin: &Path, dir: &Path, as_root: bool) -> Result<(), String> {
    let data = dir.join("data");
    let socket = dir.join("socket");
    std::fs::create_dir(&socket).map_err(|e| format!("cannot make {}: {e}", socket.display()))?;
    if as_root {
        run(
            Command::new("chown").args(["-R", "postgres"]).arg(dir),
            "chown -R postgres (as root, PostgreSQL runs as the postgres user)",
        )?;
    }
    run(
        server_command(as_root, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"])
            // Byte order for text, whatever the machine's locale (and no clash with UTF8).
            .arg("--locale=C")
            .current_dir(dir),
        "initdb",
    )
}

/// Runs `postgres` on `dir/data` under the watchdog.
fn spawn_server(bin: &Path, dir: &Path, port: u16, as_root: bool) -> Result<Child, String> {
    let data = dir.join("data");
    let socket = dir.join("socket");
    let mut postgres = server_command(as_root, &bin.join("postgres"));
    postgres
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string()])
        .arg("-k")
        .arg(&socket)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "max_connections=400", "-c", "shared_buffers=32MB"]);
    let _ = std::fs::remove_file(dir.join("postgres.log"));
    let mut watchdog = Command::new("sh");
    watchdog
        .args(["-c", WATCHDOG, "herald-test-pg-watchdog"])
        .arg(dir)
        .arg(std::process::id().to_string())
        .arg(postgres.get_program())
        .args(postgres.get_args())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C on the test run must not kill the watchdog before
        // it has cleaned up (it stops PostgreSQL once the tests are gone).
        .process_group(0);
    watchdog
        .spawn()
        .map_err(|e| format!("cannot start the watchdog: {e}"))
}

fn wait_ready(bin: &Path, dir: &Path, port: u16) -> Result<(), String> {
    let log = dir.join("postgres.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new(tool(bin, "pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", USER])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Ok(());
        }
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        // Clients knocking while it starts log FATAL lines of their own; those are not ours.
        let failed = logged.lines().any(|line| {
            line.contains("runuser:")
                || (line.contains("FATAL")
                    && !line.contains("starting up")
                    && !line.contains("shutting down")
                    && !line.contains("terminating connection"))
        });
        if failed || Instant::now() > deadline {
            return Err(format!("postgres on port {port} did not become ready: {logged}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn postgres_cluster_starts_and_creates_databases() {
    if !available() {
        return;
    }
    let first = fresh_database_url().expect("a database");
    let second = fresh_database_url().expect("another database");
    assert_ne!(first, second);
    let (first, second) = (database_name(&first), database_name(&second));

    let listed = psql("postgres", "SELECT datname FROM pg_database");
    for name in [first, second] {
        assert!(listed.lines().any(|l| l == name), "{name} not in {listed}");
    }
    // Separate databases: a table made in one is not in the other.
    psql(first, "CREATE TABLE probe (x int); INSERT INTO probe VALUES (42)");
    assert_eq!(psql(first, "SELECT x FROM probe").trim(), "42");
    assert_eq!(
        psql(second, "SELECT count(*) FROM pg_tables WHERE tablename = 'probe'").trim(),
        "0"
    );
}
