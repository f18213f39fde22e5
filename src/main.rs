//! The `frontdesk` binary: parses flags and config, picks the provider, starts things.

mod bench;
mod providers;
mod run;
mod sandbox;
mod speaker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "frontdesk",
    version,
    about = "Kubernetes LoadBalancer provisioner"
)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "FRONTDESK_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller against a cluster.
    Run(run::RunArgs),
    /// Mock cloud + sandbox cluster + controller in one process.
    Sandbox(sandbox::SandboxArgs),
    /// Only the fakes: the sandbox cluster and the mock cloud.
    MockCloud(sandbox::MockCloudArgs),
    /// Scale benchmarks; each prints a table of measured numbers.
    Bench(bench::BenchArgs),
    /// Bare-metal announcer (one per node): answers ARP/NDP for the addresses it wins.
    Speaker(speaker::SpeakerArgs),
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("FRONTDESK_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,kube=warn,tower=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Sandbox(args) => sandbox::sandbox(args).await,
            Command::MockCloud(args) => sandbox::mock_cloud(args).await,
            Command::Bench(args) => bench::bench(args).await,
            Command::Speaker(args) => speaker::speaker(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
