//! What an operator sees and does: a refused client assertion is explained in the log (which
//! claim, which credential, expired when) while the client only learns `invalid_client`, and
//! the assertion itself never reaches the log; what a caller sends cannot forge a log line;
//! the operator commands (`clavis reset-admin-secret`, `clavis --version`).

use std::time::Duration;

use crate::common::keys::{AssertionKey, jti, now};
use crate::common::request::{Admin, Api, Auth};
use crate::common::server::Server;
use crate::common::{ADMIN_ID as BOOTSTRAP_CLIENT_ID, ADMIN_SECRET as BOOTSTRAP_CLIENT_SECRET};
use serde_json::{Value, json};

/// A runtime for a test's requests.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// A server logging at `info`, an HTTPS client for it, its base URL and a runtime.
fn logging_server() -> Result<(Server, reqwest::Client, String, tokio::runtime::Runtime), String> {
    let server = Server::builder().env("CLAVIS_LOG", "info").start()?;
    let http = server.http_client()?;
    let base = server.base();
    let runtime = runtime()?;
    Ok((server, http, base, runtime))
}

#[test]
fn refusals_are_explained_to_the_operator_not_the_client() -> Result<(), String> {
    let (server, http, base, runtime) = logging_server()?;
    let key = AssertionKey::new(2048);
    let assertions = runtime.block_on(async {
        let admin = Admin::connect(Api::new(http.clone(), base.clone())).await;
        let (id, cred) = admin
            .credential_client(
                "logged",
                "private_key_jwt",
                json!({"credential_type": "public_key", "pem": key.public_pem}),
                &format!("{base}/api/v2/"),
                &["read:clients"],
            )
            .await?;
        let cred_id = cred["id"].as_str().ok_or("no credential id")?.to_string();
        let token_with = |assertion: String| {
            let api = admin.api.clone();
            let audience = format!("{base}/api/v2/");
            async move {
                let r = api.client_credentials("", Auth::Assertion(&assertion), &audience).await;
                let status = r.status().as_u16();
                Ok::<_, String>((status, r.json::<Value>().await.map_err(|e| e.to_string())?))
            }
        };

        let claims = |aud: &str| json!({"iss": id, "sub": id, "aud": aud, "iat": now(), "exp": now() + 60, "jti": jti()});
        let wrong_aud = key.sign(&json!({"alg": "RS256"}), &claims("https://elsewhere.example/"));
        let (status, body) = token_with(wrong_aud.clone()).await?;
        assert_eq!((status, &body), (401, &json!({"error": "invalid_client", "error_description": "Client authentication failed"})));

        admin.send(reqwest::Method::PATCH, &format!("/clients/{id}/credentials/{cred_id}"), json!({"expires_at": "2020-01-02T03:04:05Z"}))
            .await?;
        let expired_key = key.sign(&json!({"alg": "RS256"}), &claims(&format!("{base}/")));
        let (status, body) = token_with(expired_key.clone()).await?;
        assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));
        Ok::<_, String>((wrong_aud, expired_key, id, cred_id))
    })?;
    std::thread::sleep(Duration::from_millis(200));
    let (wrong_aud, expired_key, id, cred_id) = assertions;
    let log = server.log();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("client assertion refused"))
        .collect();
    assert_eq!(refusals.len(), 2, "{log}");
    assert!(
        refusals[0].contains("aud is not this issuer") && refusals[0].contains(&id),
        "{}",
        refusals[0]
    );
    assert!(
        refusals[1].contains(&cred_id)
            && refusals[1].contains("expired at 2020-01-02T03:04:05.000Z"),
        "{}",
        refusals[1]
    );
    for secret in [
        &wrong_aud,
        &expired_key,
        &BOOTSTRAP_CLIENT_SECRET.to_string(),
    ] {
        assert!(
            !log.contains(secret.as_str()),
            "a secret or assertion reached the log"
        );
    }
    Ok(())
}

/// What a caller sends reaches the text log escaped and quoted: newlines cannot forge a
/// line, escape sequences cannot reach the reader's terminal, invalid UTF-8 arrives as
/// replacement characters — through every field a refused token request logs.
#[test]
fn attacker_text_cannot_forge_log_lines() -> Result<(), String> {
    let (server, http, base, runtime) = logging_server()?;
    const FORGED: &str = "victim\n2026-12-04T00:00:00.000000Z  INFO clavis: FORGED token issued \u{1b}[2J\u{1b}]0;title\u{7}\r";
    let key = AssertionKey::new(2048);
    runtime.block_on(async {
        let post = |body: Vec<u8>, basic: Option<&str>| {
            let mut req = http
                .post(format!("{base}/oauth/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            if let Some(user) = basic {
                req = req.basic_auth(user, Some("wrong"));
            }
            req.send()
        };
        let form = |pairs: &[(&str, &str)]| -> Vec<u8> {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
                .into_bytes()
        };
        let audience = format!("{base}/api/v2/");
        let mut bodies = vec![
            // An unknown client with a secret, and with no authentication at all.
            (form(&[("grant_type", "client_credentials"), ("client_id", FORGED), ("client_secret", "x"), ("audience", &audience)]), None),
            (form(&[("grant_type", "client_credentials"), ("client_id", FORGED), ("audience", &audience)]), None),
            // The Basic user.
            (form(&[("grant_type", "client_credentials"), ("audience", &audience)]), Some(FORGED)),
            // Invalid UTF-8 in the client id.
            (b"grant_type=client_credentials&client_secret=x&client_id=%FF%FE%0A%1B%5B31mFORGED".to_vec(), None),
        ];
        // An assertion whose header `alg` carries the text, and one whose `iss` carries a
        // short form of it (longer ones are refused for their length).
        let short = "v\nFORGED \u{1b}[2J";
        let claims = json!({"iss": short, "sub": short, "aud": format!("{base}/"), "iat": now(), "exp": now() + 60, "jti": jti()});
        for header in [json!({"alg": FORGED}), json!({"alg": "RS256"})] {
            let assertion = key.sign(&header, &claims);
            bodies.push((form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", &assertion),
                ("audience", &audience),
            ]), None));
        }
        for (body, basic) in bodies {
            let r = post(body, basic).await.map_err(|e| e.to_string())?;
            if r.status().as_u16() != 401 {
                return Err(format!("expected 401, got {}", r.status()));
            }
        }
        Ok::<_, String>(())
    })?;
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    let forged_lines: Vec<&str> = log.lines().filter(|l| l.contains("FORGED")).collect();
    // Five lines: the Basic user is cut at its first colon (RFC 7617), checked below.
    assert_eq!(
        forged_lines.len(),
        5,
        "every request was logged once:\n{log}"
    );
    for line in &forged_lines {
        // Each line that carries the text is the server's own refusal, with the text
        // quoted inside one field.
        assert!(
            line.contains("refused") || line.contains("without client authentication"),
            "a forged line: {line}"
        );
        assert!(
            !line.trim_start().starts_with("2026-12-04T00:00:00"),
            "{line}"
        );
    }
    assert!(
        log.contains(r#"client_id="victim\n2026-12-04T00" reason="unknown client""#),
        "{log}"
    );
    // Invalid UTF-8 arrives as replacement characters.
    assert!(
        log.contains("client_id=\"\u{fffd}\u{fffd}\\n\\u{1b}[31mFORGED\""),
        "{log}"
    );
    for bad in ['\u{1b}', '\u{7}', '\r'] {
        assert!(!log.contains(bad), "{bad:?} reached the log:\n{log}");
    }
    assert!(
        log.contains("\\u{1b}[2J"),
        "the escape sequence is shown escaped:\n{log}"
    );
    Ok(())
}

/// Requests a Management API token with a secret; the status.
fn admin_token_status(server: &Server, secret: &str) -> Result<u16, String> {
    let audience = format!("https://{}/api/v2/", server.domain());
    Ok(admin_token_for(server, secret, &audience)?.0)
}

/// Requests a token for `audience` as the admin; the status and the token.
fn admin_token_for(server: &Server, secret: &str, audience: &str) -> Result<(u16, String), String> {
    let api = Api::new(server.http_client()?, server.base());
    let runtime = runtime()?;
    runtime.block_on(async {
        let r = api
            .client_credentials(BOOTSTRAP_CLIENT_ID, Auth::SecretPost(secret), audience)
            .await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        Ok((
            status,
            body["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ))
    })
}

/// Changing the public URL of an existing installation used to lock the admin out (the
/// Management API kept the old audience). `clavis move-public-url` moves it with its grants.
#[test]
fn move_public_url_brings_the_management_api_along() -> Result<(), String> {
    let mut server = Server::start()?;
    let old = format!("https://{}/api/v2/", server.domain());
    let new_base = format!("https://localhost:{}/", server.port);
    let new = format!("{new_base}api/v2/");
    server.stop();
    server.add_args(&["--public-url", &new_base]);
    // Started with the new URL alone: locked out, and the log says what to run.
    server.restart()?;
    assert_eq!(
        admin_token_for(&server, BOOTSTRAP_CLIENT_SECRET, &new)?.0,
        403
    );
    assert!(
        server.log().contains("clavis move-public-url"),
        "{}",
        server.log()
    );
    server.stop();

    let out = server.command("move-public-url", &[])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("from {old} to {new}")), "{stdout}");
    // Again: nothing left to do.
    let again = server.command("move-public-url", &[])?;
    assert!(String::from_utf8_lossy(&again.stdout).contains("already at"));

    server.restart()?;
    let (status, token) = admin_token_for(&server, BOOTSTRAP_CLIENT_SECRET, &new)?;
    assert_eq!(status, 200);
    assert_eq!(
        admin_token_for(&server, BOOTSTRAP_CLIENT_SECRET, &old)?.0,
        403
    );
    // The Management API answers the new token, with every scope.
    let http = server.http_client()?;
    let base = format!("https://{}", server.domain());
    let runtime = runtime()?;
    let (status, apis) = runtime.block_on(async {
        let r = http
            .get(format!("{base}/api/v2/resource-servers"))
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        Ok::<_, String>((status, r.json::<Value>().await.map_err(|e| e.to_string())?))
    })?;
    assert_eq!(status, 200, "{apis}");
    let system: Vec<&Value> = apis
        .as_array()
        .ok_or("not a list")?
        .iter()
        .filter(|a| a["is_system"] == true)
        .collect();
    assert_eq!(system.len(), 1, "{apis}");
    assert_eq!(system[0]["identifier"], new.as_str());
    Ok(())
}

/// A lost admin secret is recovered with `clavis reset-admin-secret`: it prints a new one,
/// and the old one stops working. With SQLite it refuses to run under a running server
/// (whose in-memory model would not see the change); with PostgreSQL the running server
/// applies it at once.
#[test]
fn reset_admin_secret_replaces_a_lost_secret() -> Result<(), String> {
    let mut server = Server::start()?;
    assert_eq!(admin_token_status(&server, BOOTSTRAP_CLIENT_SECRET)?, 200);
    if !server.on_postgres() {
        let out = server.command("reset-admin-secret", &[])?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "ran under a live server");
        assert!(err.contains("stop it first"), "{err}");
        server.stop();
    }
    let out = server.command("reset-admin-secret", &[])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("export CLAVIS_ADMIN_ID={BOOTSTRAP_CLIENT_ID}")),
        "{stdout}"
    );
    let secret = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("export CLAVIS_ADMIN_SECRET="))
        .ok_or_else(|| format!("no secret printed: {stdout}"))?
        .to_string();
    assert!(secret.len() >= 32 && secret != BOOTSTRAP_CLIENT_SECRET);
    if !server.on_postgres() {
        server.restart()?;
    }
    // With PostgreSQL the running server learns of it through the change notification.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while admin_token_status(&server, &secret)? != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(admin_token_status(&server, &secret)?, 200);
    assert_eq!(admin_token_status(&server, BOOTSTRAP_CLIENT_SECRET)?, 401);
    // The secret is not in the server's log.
    assert!(!server.log().contains(&secret));
    Ok(())
}

#[test]
fn version_and_a_missing_installation_are_plain_answers() -> Result<(), String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clavis"))
        .arg("--version")
        .output()
        .map_err(|e| e.to_string())?;
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("clavis {}", env!("CARGO_PKG_VERSION"))
    );
    let empty = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clavis"))
        .args(["reset-admin-secret", "--data-dir"])
        .arg(empty.path())
        .output()
        .map_err(|e| e.to_string())?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no master key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// With `--log-format json` everything the server says is JSON lines (the banner included),
/// numbers are numbers, and an identifier that is not known is left out rather than empty.
#[test]
fn json_logs_are_json_lines_with_typed_fields() -> Result<(), String> {
    let server = Server::builder()
        .env("CLAVIS_LOG", "info")
        .env("CLAVIS_LOG_FORMAT", "json")
        .start()?;
    // A refusal whose client is unknown: no credential id to name.
    let audience = format!("https://{}/api/v2/", server.domain());
    assert_eq!(admin_token_for(&server, "wrong-secret", &audience)?.0, 401);
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    let events: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("not JSON ({e}): {l}")))
        .collect::<Result<_, _>>()?;
    let find = |message: &str| {
        events
            .iter()
            .find(|e| e["fields"]["message"] == message)
            .ok_or_else(|| format!("no {message:?} event in:\n{log}"))
    };
    let loaded = find("read model loaded")?;
    assert!(loaded["fields"]["load_ms"].is_u64(), "{loaded}");
    assert!(loaded["fields"]["clients"].is_u64(), "{loaded}");
    let listening = find("Clavis listening")?;
    assert_eq!(
        listening["fields"]["management_audience"],
        audience.as_str(),
        "{listening}"
    );
    for event in &events {
        for (name, value) in event["fields"].as_object().into_iter().flatten() {
            assert_ne!(value, "", "{name} is empty in {event}");
        }
    }
    Ok(())
}

/// One process per SQLite database, wherever the file lies: a second server whose data
/// directory differs but whose `--database-url` names the same file (also through a symbolic
/// link) refuses to start, as does an operator command, because each would trust its own
/// read model and its own in-memory `jti` replay guard. Once the server stops, the command
/// runs and the server starts again.
#[test]
fn a_sqlite_file_outside_the_data_directory_serves_one_process() -> Result<(), String> {
    let shared = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = shared.path().join("shared.db");
    let url = format!("sqlite://{}", file.display());
    let linked = shared.path().join("link");
    std::os::unix::fs::symlink(shared.path(), &linked).map_err(|e| e.to_string())?;
    let linked_url = format!("sqlite://{}", linked.join("shared.db").display());

    let mut first = Server::builder()
        .sqlite()
        .args(&["--database-url", url.as_str()])
        .start()?;
    for spelling in [&url, &linked_url] {
        let second = Server::builder()
            .sqlite()
            .args(&["--database-url", spelling.as_str()])
            .start();
        let err = second
            .err()
            .ok_or_else(|| format!("a second server started on {spelling}"))?;
        assert!(err.contains("stop it first"), "{err}");
    }
    let out = first.command("reset-admin-secret", &[])?;
    assert!(!out.status.success(), "ran under a live server");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop it first"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    first.stop();
    let out = first.command("reset-admin-secret", &[])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    first.restart()?;
    Ok(())
}
