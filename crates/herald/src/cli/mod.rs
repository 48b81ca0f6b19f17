//! The `herald` command line: `serve`, `migrate`, `orgs create|list`, `keys create|list|revoke`,
//! `listen`, `trigger`, `backup`. Each command takes only the settings it uses, so its `--help` is about it.

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigArgs};
use crate::store::Role;

mod admin;
mod backup;
mod listen;
mod serve;
mod trigger;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Self-hostable webhook delivery: signed, retried, audited, never lost."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API and the delivery workers.
    Serve(Box<ConfigArgs>),
    /// Apply database migrations and exit (creates the embedded database if it is not there).
    Migrate(StoreArgs),
    /// Manage orgs.
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run a local receiver for development: answers 204 and prints each delivery.
    Listen {
        /// The port to listen on, on 127.0.0.1.
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Verify signatures with this signing secret (whsec_…).
        #[arg(long, env = "HERALD_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Answer every delivery with this HTTP status instead of 204, e.g. 500 to watch
        /// Herald record failed attempts and retry them.
        #[arg(long, default_value_t = 204, value_parser = clap::value_parser!(u16).range(200..=599))]
        status: u16,
    },
    /// Write a consistent copy of the embedded database while `herald serve` keeps running,
    /// and print how to restore it. On PostgreSQL, use pg_dump (exits with status 2).
    Backup {
        /// Where to write the copy; must not exist yet.
        path: std::path::PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Publish a sample event through the API.
    Trigger {
        /// The event type, e.g. order.filled.
        event_type: String,
        /// The event's data, a JSON object [default: the type's example from the catalog].
        #[arg(long)]
        data: Option<String>,
        /// Herald's base URL.
        #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An API key (key_id:secret), as printed by `herald serve` or `herald keys create`.
        #[arg(long, env = "HERALD_KEY", hide_env_values = true)]
        key: String,
        /// Admin keys only: the org to publish for.
        #[arg(long)]
        org: Option<String>,
    },
}

/// Where the admin commands find the database: they open the one `herald serve` uses, and
/// never create one.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreArgs {
    /// Optional TOML file with settings (keys without the HERALD_ prefix, lower case).
    #[arg(long = "config", env = "HERALD_CONFIG", value_name = "FILE")]
    pub config_file: Option<std::path::PathBuf>,
    /// sqlite://PATH (embedded) or postgres://… [default: sqlite://./herald-data/herald.db].
    #[arg(long, env = "HERALD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Only for the example command printed with a new key (see `serve --help`).
    #[arg(long, env = "HERALD_PUBLIC_URL", hide = true)]
    pub public_url: Option<String>,
    #[arg(long, env = "HERALD_LISTEN", hide = true)]
    pub listen: Option<String>,
}

impl From<StoreArgs> for ConfigArgs {
    fn from(args: StoreArgs) -> Self {
        Self {
            config_file: args.config_file,
            database_url: args.database_url,
            public_url: args.public_url,
            listen: args.listen,
            ..Self::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Create an org.
    Create {
        /// The org's name, e.g. acme.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the orgs, newest first.
    List {
        /// Print a JSON array of org objects instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Tenant,
    Investor,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Tenant => Role::Tenant,
            RoleArg::Investor => Role::Investor,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key; its secret is printed once.
    Create {
        /// The org the key acts for (org_…; see `herald orgs list`).
        #[arg(long, value_name = "ORG_ID")]
        org: String,
        /// What the key may do: admin (everything), tenant (its org's webhooks and events),
        /// investor (read-only reports, no webhooks).
        #[arg(long, value_enum)]
        role: RoleArg,
        /// What the key is for, e.g. "billing back office".
        #[arg(long)]
        name: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the active API keys, newest first (never their secrets).
    List {
        /// Only this org's keys.
        #[arg(long, value_name = "ORG_ID")]
        org: Option<String>,
        /// Print a JSON array of key objects instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an API key: every node refuses it within a second. The last active admin key
    /// cannot be revoked.
    Revoke {
        /// The key's id (key_…; see `herald keys list`).
        key_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// A failure with an exit status of its own (not 1), e.g. 2 for a command that does not apply
/// to this database.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl Exit {
    /// The process's exit status for `error`: its own for an `Exit`, else 1.
    pub fn status_of(error: &anyhow::Error) -> u8 {
        error.downcast_ref::<Self>().map_or(1, |exit| exit.code)
    }
}

fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
    let config = Config::load(args).context("invalid configuration")?;
    crate::telemetry::init(&config)?;
    Ok(config)
}

/// A failed bind, said the way a user can act on: which address, and what to change.
fn bind_error(e: std::io::Error, address: &str, setting: &str) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            anyhow::anyhow!(
                "{address} is already in use by another program; choose another port with {setting}"
            )
        }
        std::io::ErrorKind::PermissionDenied => {
            anyhow::anyhow!(
                "not allowed to listen on {address} (ports below 1024 need privileges); choose another with {setting}"
            )
        }
        _ => anyhow::anyhow!("cannot listen on {address}: {e}; change it with {setting}"),
    }
}

/// Runs one command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(load(&args)?).await,
        Command::Migrate(args) => admin::migrate(load(&args.into())?).await,
        Command::Orgs(OrgsCommand::Create { name, json, store }) => {
            admin::create_org(load(&store.into())?, &name, json).await
        }
        Command::Orgs(OrgsCommand::List { json, store }) => {
            admin::list_orgs(load(&store.into())?, json).await
        }
        Command::Keys(KeysCommand::Create {
            org,
            role,
            name,
            json,
            store,
        }) => admin::create_key(load(&store.into())?, &org, role.into(), name.as_deref(), json).await,
        Command::Keys(KeysCommand::List { org, json, store }) => {
            admin::list_keys(load(&store.into())?, org.as_deref(), json).await
        }
        Command::Keys(KeysCommand::Revoke { key_id, store }) => {
            admin::revoke_key(load(&store.into())?, &key_id).await
        }
        Command::Backup { path, store } => backup::backup(load(&store.into())?, &path).await,
        Command::Listen { port, secret, status } => listen::listen(port, secret.as_deref(), status).await,
        Command::Trigger {
            event_type,
            data,
            url,
            key,
            org,
        } => trigger::trigger(&url, &key, &event_type, data.as_deref(), org.as_deref()).await,
    }
}
