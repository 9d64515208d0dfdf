//! The `clavis` binary: reads configuration and starts the application.

use clap::Parser;
use std::process::ExitCode;

use clavis::config::{Cli, Command, Config};
use clavis::startup::Application;

/// mimalloc instead of the system allocator: a request allocates and frees many small buffers
/// (HTTP, TLS records, JSON, SQLite), and glibc's malloc took about a tenth of the server's
/// CPU in the profiles of the credential GET and PATCH.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A configuration error exits with 2, a failure with 1.
    let (config, command) = match cli.command {
        Command::Serve(args) => (args.into_config(), Run::Serve),
        Command::MovePublicUrl(args) => (args.serve.into_config(), Run::MovePublicUrl),
        Command::ResetAdminSecret(args) => (
            args.serve.into_config(),
            Run::ResetAdminSecret(args.client_id),
        ),
    };
    let config = match config {
        Ok(config) => config,
        Err(err) => {
            eprintln!("clavis: {err}");
            return ExitCode::from(2);
        }
    };
    match run(command, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("clavis: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// What to do once the configuration is read.
enum Run {
    Serve,
    MovePublicUrl,
    ResetAdminSecret(Option<String>),
}

async fn run(command: Run, config: Config) -> anyhow::Result<()> {
    match command {
        Run::Serve => {
            clavis::startup::init_tracing(&config);
            Application::build(config).await?.run_until_stopped().await
        }
        Run::MovePublicUrl => {
            let moved = clavis::operator::move_public_url(&config).await?;
            if moved.from == moved.to {
                println!("The Management API is already at {}", moved.to);
            } else {
                println!(
                    "Moved the Management API from {} to {} with {} client grant(s).",
                    moved.from, moved.to, moved.grants
                );
                println!(
                    "Start every server with the new --public-url; tokens issued before the move are no longer accepted."
                );
            }
            Ok(())
        }
        Run::ResetAdminSecret(client_id) => {
            let (client_id, secret) =
                clavis::operator::reset_admin_secret(&config, client_id.as_deref()).await?;
            println!("New secret for client {client_id} (shown only now). In your shell:");
            println!("  export CLAVIS_ADMIN_ID={client_id}");
            println!("  export CLAVIS_ADMIN_SECRET={secret}");
            Ok(())
        }
    }
}
