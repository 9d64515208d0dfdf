//! The `clavis` binary: reads configuration and starts the application.

use clap::Parser;
use clavis::config::{Cli, Command};
use clavis::startup::Application;

/// mimalloc instead of the system allocator: a request allocates and frees many small buffers
/// (HTTP, TLS records, JSON, SQLite), and glibc's malloc took about a tenth of the server's
/// CPU in the profiles of the credential GET and PATCH.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = match args.into_config() {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("clavis: {err}");
                    return std::process::ExitCode::from(2);
                }
            };
            clavis::startup::init_tracing(&config);
            let app = match Application::build(config).await {
                Ok(app) => app,
                Err(err) => {
                    eprintln!("clavis: {err:#}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            match app.run_until_stopped().await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("clavis: {err:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::MovePublicUrl(args) => {
            let config = match args.serve.into_config() {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("clavis: {err}");
                    return std::process::ExitCode::from(2);
                }
            };
            match clavis::operator::move_public_url(&config).await {
                Ok(moved) if moved.from == moved.to => {
                    println!("The Management API is already at {}", moved.to);
                    std::process::ExitCode::SUCCESS
                }
                Ok(moved) => {
                    println!(
                        "Moved the Management API from {} to {} with {} client grant(s).",
                        moved.from, moved.to, moved.grants
                    );
                    println!(
                        "Start every server with the new --public-url; tokens issued before the move are no longer accepted."
                    );
                    std::process::ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("clavis: {err:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::ResetAdminSecret(args) => {
            let config = match args.serve.into_config() {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("clavis: {err}");
                    return std::process::ExitCode::from(2);
                }
            };
            match clavis::operator::reset_admin_secret(&config, args.client_id.as_deref()).await {
                Ok((client_id, secret)) => {
                    println!("New secret for client {client_id} (shown only now). In your shell:");
                    println!("  export CLAVIS_ADMIN_ID={client_id}");
                    println!("  export CLAVIS_ADMIN_SECRET={secret}");
                    std::process::ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("clavis: {err:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
