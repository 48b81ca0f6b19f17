use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    herald::cli::run(herald::cli::Cli::parse()).await
}
