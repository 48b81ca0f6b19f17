//! One typed `Config`, built from built-in defaults, then an optional TOML file
//! (`HERALD_CONFIG`), then `HERALD_*` environment variables, then `serve` flags, each layer
//! overriding the one before. Every value is parsed and checked here, at start-up, so a typo
//! stops the process with a message naming the setting instead of failing later.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use clap::Args;
use ipnet::IpNet;

use crate::domain::duration::parse_duration;
use crate::domain::event_types::Catalog;
use crate::domain::net::TargetPolicy;

/// The raw settings as flags and environment variables; clap reads the environment for us,
/// and flags win over it. Everything is a string here and parsed in [`Config::load`].
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// TOML file with any of the settings below (keys without the HERALD_ prefix, lower case) [default: none].
    #[arg(long = "config", env = "HERALD_CONFIG", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Address the API listens on [default: 127.0.0.1:8080].
    #[arg(long, env = "HERALD_LISTEN")]
    pub listen: Option<String>,
    /// sqlite://PATH (embedded) or postgres://… [default: sqlite://./herald-data/herald.db].
    #[arg(long, env = "HERALD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// PostgreSQL: connections per node [default: 10].
    #[arg(long, env = "HERALD_DATABASE_POOL_SIZE")]
    pub database_pool_size: Option<String>,
    /// PostgreSQL: longest a statement may run [default: 30s].
    #[arg(long, env = "HERALD_DATABASE_STATEMENT_TIMEOUT")]
    pub database_statement_timeout: Option<String>,
    /// 32-byte key (base64 or hex) that encrypts secrets at rest; required on PostgreSQL
    /// [default: embedded mode generates one into the data directory, master.key].
    #[arg(long, env = "HERALD_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Delays between attempts (units ms, s, m, h, d) [default: 1m,5m,30m,2h,8h].
    #[arg(long, env = "HERALD_RETRY_SCHEDULE")]
    pub retry_schedule: Option<String>,
    /// How long one delivery attempt may take [default: 30s].
    #[arg(long, env = "HERALD_DELIVERY_TIMEOUT")]
    pub delivery_timeout: Option<String>,
    /// Disable a webhook whose deliveries have all failed for this long [default: 5d].
    #[arg(long, env = "HERALD_DISABLE_AFTER")]
    pub disable_after: Option<String>,
    /// Delete events older than this whose deliveries have all ended, with their deliveries
    /// and attempts; an org's own `retention` wins (at least 1s) [default: 30d].
    #[arg(long, env = "HERALD_RETENTION")]
    pub retention: Option<String>,
    /// Accept plain http:// webhook URLs [default: false].
    #[arg(long, env = "HERALD_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true")]
    pub allow_http: Option<String>,
    /// Comma-separated CIDRs exempt from the private-address block, e.g. 10.1.0.0/16 [default: none].
    #[arg(long, env = "HERALD_ALLOWED_TARGET_NETWORKS")]
    pub allowed_target_networks: Option<String>,
    /// Largest accepted event `data`, in bytes [default: 262144].
    #[arg(long, env = "HERALD_MAX_PAYLOAD_BYTES")]
    pub max_payload_bytes: Option<String>,
    /// TOML file that replaces the event-type catalog [default: the built-in catalog].
    #[arg(long, env = "HERALD_CATALOG")]
    pub catalog: Option<String>,
    /// Log filter, e.g. info or herald=debug [default: info].
    #[arg(long, env = "HERALD_LOG")]
    pub log: Option<String>,
    /// text or json [default: text].
    #[arg(long, env = "HERALD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Local development: allows http:// and loopback targets, never in production [default: false].
    #[arg(long, env = "HERALD_DEV", num_args = 0..=1, default_missing_value = "true")]
    pub dev: Option<String>,
    /// The URL users reach Herald at, e.g. https://hooks.example.com [default: http://<HERALD_LISTEN>].
    #[arg(long, env = "HERALD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Space-separated origins allowed to embed the tenant portal in an iframe, e.g.
    /// https://app.example.com [default: none, the portal may not be framed].
    #[arg(long, env = "HERALD_PORTAL_FRAME_ANCESTORS")]
    pub portal_frame_ancestors: Option<String>,
    /// Most HTTP connections open at once; more are answered 503 and closed [default: 1024].
    #[arg(long, env = "HERALD_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Longest a client may take to send a request's headers [default: 10s].
    #[arg(long, env = "HERALD_HEADER_TIMEOUT")]
    pub header_timeout: Option<String>,
    /// A keep-alive connection with no request for this long is closed [default: 60s].
    #[arg(long, env = "HERALD_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// Longest a client may take to send a request's body; then 408 [default: 30s].
    #[arg(long, env = "HERALD_BODY_TIMEOUT")]
    pub body_timeout: Option<String>,
    /// Failed authentications per client address per minute before it is answered 429;
    /// 0 turns the brake off [default: 20].
    #[arg(long, env = "HERALD_AUTH_FAILURE_LIMIT")]
    pub auth_failure_limit: Option<String>,
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    fn parse(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("sqlite://").or_else(|| s.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://./herald-data/herald.db".into());
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Self::Postgres(s.to_owned()))
        } else {
            Err("use sqlite://PATH or postgres://…".into())
        }
    }

    /// The directory holding the embedded database (and its generated master key).
    pub fn data_dir(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(path) => Some(path.parent().unwrap_or(Path::new("."))),
            Self::Postgres(_) => None,
        }
    }
}

/// The 32-byte key that encrypts signing secrets. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey(pub [u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Accepts base64 (standard or URL-safe) or 64 hex digits.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&s[i * 2..i * 2 + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| e.to_string())?
        } else {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::URL_SAFE,
            ];
            engines
                .iter()
                .find_map(|e| e.decode(s).ok())
                .or_else(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok())
                .or_else(|| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s).ok())
                .ok_or("not base64 or hex")?
        };
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must be exactly 32 bytes (44 base64 characters or 64 hex digits)")?;
        Ok(Self(key))
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting, parsed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: DatabaseUrl,
    pub database_pool_size: u32,
    pub database_statement_timeout: Duration,
    pub master_key: Option<MasterKey>,
    pub retry_schedule: Vec<Duration>,
    pub delivery_timeout: Duration,
    pub disable_after: Duration,
    /// How long ended events are kept (an org's own retention wins).
    pub retention: Duration,
    pub allow_http: bool,
    pub allowed_target_networks: Vec<IpNet>,
    pub max_payload_bytes: usize,
    pub catalog: Catalog,
    pub log: String,
    pub log_format: LogFormat,
    pub dev: bool,
    /// The base of links Herald hands out; `https` here marks the dashboard cookie `Secure`.
    pub public_url: url::Url,
    /// Origins (`scheme://host[:port]`) that may frame the tenant portal; empty: none.
    pub portal_frame_ancestors: Vec<String>,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    /// 0: no brake.
    pub auth_failure_limit: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting}: {message}")]
    Invalid { setting: String, message: String },
    #[error("cannot read the config file {path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Catalog(#[from] crate::domain::event_types::CatalogError),
}

fn invalid(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: format!("HERALD_{}", setting.to_uppercase()),
        message: message.into(),
    }
}

/// Space-separated web origins, each `http(s)://host[:port]` with nothing after it: they go
/// into a `Content-Security-Policy` header as they are, so nothing else may pass.
fn parse_origins(raw: &str) -> Result<Vec<String>, String> {
    raw.split_whitespace()
        .map(|origin| {
            let parsed = url::Url::parse(origin).ok().filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.path() == "/"
                    && !origin.ends_with('/')
            });
            match parsed {
                Some(url) => Ok(url.origin().ascii_serialization()),
                None => Err(format!(
                    "`{origin}` is not an origin like https://app.example.com (scheme, host and port only)"
                )),
            }
        })
        .collect()
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(format!("`{other}` is not true or false")),
    }
}

const KEYS: &[&str] = &[
    "listen",
    "database_url",
    "database_pool_size",
    "database_statement_timeout",
    "master_key",
    "retry_schedule",
    "delivery_timeout",
    "disable_after",
    "retention",
    "allow_http",
    "allowed_target_networks",
    "max_payload_bytes",
    "catalog",
    "log",
    "log_format",
    "dev",
    "public_url",
    "portal_frame_ancestors",
    "max_connections",
    "header_timeout",
    "idle_timeout",
    "body_timeout",
    "auth_failure_limit",
];

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads the TOML file into strings keyed like the environment variables (lower case, no
/// prefix); arrays become comma-separated lists.
fn read_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let shown = path.display().to_string();
    let file_error = |message: String| ConfigError::File {
        path: shown.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        if !KEYS.contains(&key.as_str()) {
            return Err(file_error(format!(
                "unknown setting `{key}` (known: {})",
                KEYS.join(", ")
            )));
        }
        let text = match value {
            toml::Value::Array(items) => items
                .iter()
                .map(scalar)
                .collect::<Option<Vec<_>>>()
                .map(|v| v.join(",")),
            other => scalar(&other),
        }
        .ok_or_else(|| {
            file_error(format!(
                "`{key}` must be a string, number, boolean or list of strings"
            ))
        })?;
        out.insert(key, text);
    }
    Ok(out)
}

impl Config {
    /// Builds the config from flags/environment (already merged by clap) over the file over
    /// the defaults.
    pub fn load(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let file = match &args.config_file {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        let pick = |key: &str, arg: &Option<String>, default: &str| -> String {
            arg.clone()
                .or_else(|| file.get(key).cloned())
                .unwrap_or_else(|| default.to_owned())
        };

        let listen_raw = pick("listen", &args.listen, "127.0.0.1:8080");
        let listen = listen_raw.parse().map_err(|_| {
            invalid(
                "listen",
                format!("`{listen_raw}` is not an address like 127.0.0.1:8080"),
            )
        })?;
        let database_url = DatabaseUrl::parse(&pick(
            "database_url",
            &args.database_url,
            "sqlite://./herald-data/herald.db",
        ))
        .map_err(|m| invalid("database_url", m))?;
        let pool_raw = pick("database_pool_size", &args.database_pool_size, "10");
        let database_pool_size: u32 = pool_raw
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                invalid(
                    "database_pool_size",
                    format!("`{pool_raw}` is not a number from 1 to 1000"),
                )
            })?;
        let database_statement_timeout = parse_duration(&pick(
            "database_statement_timeout",
            &args.database_statement_timeout,
            "30s",
        ))
        .map_err(|m| invalid("database_statement_timeout", m))?;
        if database_statement_timeout.is_zero() {
            return Err(invalid("database_statement_timeout", "must be more than zero"));
        }
        let master_key = args
            .master_key
            .clone()
            .or_else(|| file.get("master_key").cloned())
            .filter(|s| !s.trim().is_empty())
            .map(|s| MasterKey::parse(&s).map_err(|m| invalid("master_key", m)))
            .transpose()?;

        let schedule_raw = pick("retry_schedule", &args.retry_schedule, "1m,5m,30m,2h,8h");
        let retry_schedule = schedule_raw
            .split(',')
            .map(parse_duration)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| invalid("retry_schedule", m))?;
        if retry_schedule.len() > 50 {
            return Err(invalid("retry_schedule", "at most 50 retries"));
        }
        let delivery_timeout = parse_duration(&pick("delivery_timeout", &args.delivery_timeout, "30s"))
            .map_err(|m| invalid("delivery_timeout", m))?;
        if delivery_timeout.is_zero() || delivery_timeout > Duration::from_secs(300) {
            return Err(invalid("delivery_timeout", "must be between 1ms and 5m"));
        }
        let disable_after = parse_duration(&pick("disable_after", &args.disable_after, "5d"))
            .map_err(|m| invalid("disable_after", m))?;
        let retention = parse_duration(&pick("retention", &args.retention, "30d"))
            .map_err(|m| invalid("retention", m))?;
        if retention < Duration::from_secs(1) {
            return Err(invalid("retention", "must be at least 1s"));
        }

        let dev = parse_bool(&pick("dev", &args.dev, "false")).map_err(|m| invalid("dev", m))?;
        let allow_http = parse_bool(&pick("allow_http", &args.allow_http, "false"))
            .map_err(|m| invalid("allow_http", m))?;
        let allowed_target_networks = pick("allowed_target_networks", &args.allowed_target_networks, "")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        invalid(
                            "allowed_target_networks",
                            format!("`{s}` is not a CIDR like 10.0.0.0/8"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let payload_raw = pick("max_payload_bytes", &args.max_payload_bytes, "262144");
        let max_payload_bytes: usize = payload_raw
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=64 * 1024 * 1024).contains(n))
            .ok_or_else(|| {
                invalid(
                    "max_payload_bytes",
                    format!("`{payload_raw}` is not a byte count from 1 to 67108864"),
                )
            })?;

        let catalog = match args.catalog.clone().or_else(|| file.get("catalog").cloned()) {
            Some(path) if !path.trim().is_empty() => Catalog::from_file(Path::new(&path))?,
            _ => Catalog::built_in(),
        };
        let log = pick("log", &args.log, "info");
        let log_format = match pick("log_format", &args.log_format, "text").as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(invalid("log_format", format!("`{other}` is not text or json"))),
        };

        let public_raw = pick("public_url", &args.public_url, "");
        let public_url = if public_raw.trim().is_empty() {
            url::Url::parse(&format!("http://{listen}"))
                .map_err(|e| invalid("listen", format!("cannot make a URL of it: {e}")))?
        } else {
            url::Url::parse(public_raw.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| {
                    invalid(
                        "public_url",
                        format!(
                            "`{public_raw}` is not an http:// or https:// URL like https://hooks.example.com"
                        ),
                    )
                })?
        };
        let portal_frame_ancestors =
            parse_origins(&pick("portal_frame_ancestors", &args.portal_frame_ancestors, ""))
                .map_err(|m| invalid("portal_frame_ancestors", m))?;
        let number = |key: &str, arg: &Option<String>, default: &str, max: u64| {
            let raw = pick(key, arg, default);
            raw.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| invalid(key, format!("`{raw}` is not a number from 0 to {max}")))
        };
        let max_connections = number("max_connections", &args.max_connections, "1024", 1_000_000)?;
        if max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1"));
        }
        let max_connections = usize::try_from(max_connections).unwrap_or(usize::MAX);
        let auth_failure_limit = u32::try_from(number(
            "auth_failure_limit",
            &args.auth_failure_limit,
            "20",
            1_000_000,
        )?)
        .unwrap_or(u32::MAX);
        let timeout = |key: &str, arg: &Option<String>, default: &str| {
            let value = parse_duration(&pick(key, arg, default)).map_err(|m| invalid(key, m))?;
            if value.is_zero() || value > Duration::from_secs(3_600) {
                return Err(invalid(key, "must be between 1ms and 1h"));
            }
            Ok(value)
        };
        let header_timeout = timeout("header_timeout", &args.header_timeout, "10s")?;
        let idle_timeout = timeout("idle_timeout", &args.idle_timeout, "60s")?;
        let body_timeout = timeout("body_timeout", &args.body_timeout, "30s")?;

        Ok(Self {
            listen,
            database_url,
            database_pool_size,
            database_statement_timeout,
            master_key,
            retry_schedule,
            delivery_timeout,
            disable_after,
            retention,
            allow_http,
            allowed_target_networks,
            max_payload_bytes,
            catalog,
            log,
            log_format,
            dev,
            public_url,
            portal_frame_ancestors,
            max_connections,
            header_timeout,
            idle_timeout,
            body_timeout,
            auth_failure_limit,
        })
    }

    /// Which delivery targets are allowed. Development mode adds http:// and loopback.
    pub fn target_policy(&self) -> TargetPolicy {
        let mut allowed_networks = self.allowed_target_networks.clone();
        if self.dev {
            allowed_networks.extend(
                ["127.0.0.0/8", "::1/128"]
                    .iter()
                    .filter_map(|n| n.parse::<IpNet>().ok()),
            );
        }
        TargetPolicy {
            allow_http: self.allow_http || self.dev,
            allowed_networks,
        }
    }

    /// A config for tests and tools: defaults, with the database at `database_url`.
    pub fn for_database(database_url: &str) -> Result<Self, ConfigError> {
        Self::load(&ConfigArgs {
            database_url: Some(database_url.to_owned()),
            ..ConfigArgs::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::load(&ConfigArgs::default()).expect("defaults are valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.database_url,
            DatabaseUrl::Sqlite("./herald-data/herald.db".into())
        );
        let mins: Vec<u64> = c.retry_schedule.iter().map(|d| d.as_secs() / 60).collect();
        assert_eq!(mins, vec![1, 5, 30, 120, 480]);
        assert_eq!(c.delivery_timeout, Duration::from_secs(30));
        assert_eq!(c.disable_after, Duration::from_secs(5 * 86_400));
        assert_eq!(c.retention, Duration::from_secs(30 * 86_400));
        assert!(!c.allow_http && !c.dev);
        assert_eq!(c.max_payload_bytes, 262_144);
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.body_timeout, Duration::from_secs(30));
        assert_eq!(c.auth_failure_limit, 20);
    }

    #[test]
    fn portal_frame_ancestors_are_origins_and_nothing_else() {
        assert_eq!(
            parse_origins("https://app.example.com  http://localhost:3000"),
            Ok(vec![
                "https://app.example.com".to_owned(),
                "http://localhost:3000".to_owned()
            ])
        );
        assert_eq!(parse_origins(""), Ok(vec![]));
        for bad in [
            "app.example.com",
            "https://app.example.com/path",
            "https://app.example.com/",
            "https://app.example.com; script-src *",
            "javascript:alert(1)",
            "https://user@app.example.com",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_limits_and_the_public_url_are_checked() {
        for (args, setting) in [
            (
                ConfigArgs {
                    max_connections: Some("0".into()),
                    ..ConfigArgs::default()
                },
                "HERALD_MAX_CONNECTIONS",
            ),
            (
                ConfigArgs {
                    header_timeout: Some("0s".into()),
                    ..ConfigArgs::default()
                },
                "HERALD_HEADER_TIMEOUT",
            ),
            (
                ConfigArgs {
                    public_url: Some("hooks.example.com".into()),
                    ..ConfigArgs::default()
                },
                "HERALD_PUBLIC_URL",
            ),
        ] {
            let err = Config::load(&args).expect_err("invalid").to_string();
            assert!(err.starts_with(setting), "{err}");
        }
        let args = ConfigArgs {
            public_url: Some("https://hooks.example.com".into()),
            ..ConfigArgs::default()
        };
        assert_eq!(Config::load(&args).expect("valid").public_url.scheme(), "https");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let args = ConfigArgs {
            retry_schedule: Some("1m,5x".into()),
            ..ConfigArgs::default()
        };
        let err = Config::load(&args).expect_err("5x is not a duration").to_string();
        assert!(err.starts_with("HERALD_RETRY_SCHEDULE:"), "{err}");
        let args = ConfigArgs {
            allowed_target_networks: Some("10.0.0.0/8, nonsense".into()),
            ..ConfigArgs::default()
        };
        let err = Config::load(&args).expect_err("not a cidr").to_string();
        assert!(
            err.contains("HERALD_ALLOWED_TARGET_NETWORKS") && err.contains("nonsense"),
            "{err}"
        );
    }

    #[test]
    fn a_retention_under_a_second_or_unparsable_stops_the_start_naming_it() {
        for bad in ["0s", "999ms", "-1s", "forever", "3 days"] {
            let args = ConfigArgs {
                retention: Some(bad.into()),
                ..ConfigArgs::default()
            };
            let err = Config::load(&args).expect_err(bad).to_string();
            assert!(err.starts_with("HERALD_RETENTION:"), "{bad}: {err}");
        }
        let args = ConfigArgs {
            retention: Some("90s".into()),
            ..ConfigArgs::default()
        };
        assert_eq!(
            Config::load(&args).expect("valid").retention,
            Duration::from_secs(90)
        );
    }

    #[test]
    fn the_file_fills_in_and_flags_win_over_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("herald.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\nretry_schedule = [\"1s\", \"2s\"]\nmax_payload_bytes = 1024\n",
        )
        .expect("write");
        let args = ConfigArgs {
            config_file: Some(path.clone()),
            listen: Some("127.0.0.1:7000".into()),
            ..ConfigArgs::default()
        };
        let c = Config::load(&args).expect("valid");
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(
            c.retry_schedule,
            vec![Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(c.max_payload_bytes, 1024);

        std::fs::write(&path, "listn = \"x\"\n").expect("write");
        let err = Config::load(&args).expect_err("typo").to_string();
        assert!(err.contains("unknown setting `listn`"), "{err}");
    }

    #[test]
    fn master_keys_parse_from_base64_or_hex_and_never_print() {
        let hex = "00".repeat(32);
        assert_eq!(MasterKey::parse(&hex).expect("hex").0, [0u8; 32]);
        let b64 = MasterKey([7u8; 32]).to_base64();
        assert_eq!(MasterKey::parse(&b64).expect("b64").0, [7u8; 32]);
        assert!(MasterKey::parse("c2hvcnQ=").is_err());
        assert_eq!(format!("{:?}", MasterKey([7u8; 32])), "MasterKey([redacted])");
    }
}
