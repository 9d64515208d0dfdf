//! A token hook for the benchmark: HTTPS (Clavis's TLS configuration), answering each POST
//! that carries the bearer secret with one claim, as fast as it can.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The answer to every authorised call.
const ANSWER: &str = r#"{"claims":{"https://bench.clavis.test/plan":"pro"}}"#;

/// Reads the whole event (an HTTP/2 stream answered before its body is read is reset, and
/// hyper's server ends a connection with too many of those), then answers.
async fn answer(
    State(expected): State<Arc<String>>,
    headers: HeaderMap,
    _event: axum::body::Bytes,
) -> Response {
    let authorised = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected.as_str());
    if !authorised {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], ANSWER).into_response()
}

/// Serves until killed.
pub async fn serve(listen: SocketAddr, cert: &Path, key: &Path, secret: String) -> Result<()> {
    let tls = clavis::tls::server_config(cert, key).map_err(|e| anyhow!("{e:#}"))?;
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(answer))
        .with_state(Arc::new(format!("Bearer {secret}")));
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    listener.set_nonblocking(true)?;
    eprintln!("token hook listening on https://{listen}/hook");
    axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )?
    .serve(router.into_make_service())
    .await?;
    Ok(())
}
