//! `loadgen`: sends N events at concurrency C, in batches of B, to the control plane's batch
//! endpoint or the edge worker's `/v1/events`, and prints events/s, batch latency percentiles and
//! errors. Loopback only, bounded in count and time.
//!
//!     loadgen --url http://127.0.0.1:8000 --token $ADMIN --experiment demo --events 1000000
//!     loadgen --target edge --url http://127.0.0.1:8787 --experiment demo --units 5000 ...   (units assigned at the edge first: events echo their signatures)

use clap::Parser;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Base URL; must be a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Bearer token (control plane: admin or ingest token).
    #[arg(long, env = "LOADGEN_TOKEN", default_value = "")]
    token: String,
    #[command(flatten)]
    options: litmus_loadgen::Options,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    litmus_loadgen::run(&args.url, &args.token, &args.options).await
}
