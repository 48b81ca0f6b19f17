//! The `herald` command line: `serve`, `migrate`, `orgs create`, `keys create`.

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigArgs};
use crate::store::Role;

mod admin;
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
    Serve(ConfigArgs),
    /// Apply database migrations and exit.
    Migrate(ConfigArgs),
    /// Manage orgs.
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run a local receiver for development: answers 204 and prints each delivery.
    Listen {
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
    /// Publish a sample event through the API.
    Trigger {
        /// The event type, e.g. order.filled.
        event_type: String,
        /// The event's data, a JSON object [default: a small sample].
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

#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Create an org.
    Create {
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArgs,
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
        #[arg(long, value_name = "ORG_ID")]
        org: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
    let config = Config::load(args).context("invalid configuration")?;
    crate::telemetry::init(&config)?;
    Ok(config)
}

/// Runs one command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(load(&args)?).await,
        Command::Migrate(args) => admin::migrate(load(&args)?).await,
        Command::Orgs(OrgsCommand::Create { name, json, config }) => {
            admin::create_org(load(&config)?, &name, json).await
        }
        Command::Keys(KeysCommand::Create {
            org,
            role,
            json,
            config,
        }) => admin::create_key(load(&config)?, &org, role.into(), json).await,
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
