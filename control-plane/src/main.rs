use clap::Parser;
use litmus_control_plane::{config::Config, startup};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    startup::init_tracing(&config);
    startup::run(config).await
}
