//! The listener's bounds, seen on the wire (plain HTTP, so the test writes raw requests):
//! a body that trickles in gets 408, a request head over 64 KiB gets 431, an oversized
//! body gets its refusal (not a reset connection), and a connection beyond the bound is
//! served once the longest-idle connection is closed for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::binary::Server;

fn server() -> Server {
    Server::start(&[
        ("CLAVIS_INSECURE_HTTP", "true"),
        ("CLAVIS_REQUEST_TIMEOUT_SECONDS", "1"),
        ("CLAVIS_MAX_CONNECTIONS", "2"),
    ])
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until the peer closes or the read times out.
fn read_all(mut s: TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") && out.len() > 12 {
                    // Enough to see the status line and headers; the rest may follow.
                    if String::from_utf8_lossy(&out).contains("content-length: 0")
                        || out.ends_with(b"}")
                    {
                        break;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn limits_on_the_wire() {
    let server = server();

    // A body that stops half way: 408 once the request timeout passes.
    let mut s = connect(&server);
    s.write_all(b"POST /api/v2/clients HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"name\":")
        .unwrap();
    let answer = read_all(s);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("The request body did not arrive in time"),
        "{answer}"
    );

    // A request head over 64 KiB.
    let mut s = connect(&server);
    let big = "a".repeat(70 * 1024);
    let _ =
        s.write_all(format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes());
    let answer = read_all(s);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // A body over 64 KiB, sent whole: the client reads the refusal, not a reset.
    let mut s = connect(&server);
    let body = "x".repeat(200 * 1024);
    s.write_all(
        format!("POST /oauth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}", body.len())
            .as_bytes(),
    )
    .unwrap();
    let answer = read_all(s);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Request body too large"), "{answer}");

    // Two connections that send nothing fill the bound: a third waits until the one open the
    // longest has been idle 1 s; that one is closed (it reads EOF) and the third is served.
    let mut idlest = connect(&server);
    sleep(Duration::from_millis(100));
    let other = connect(&server);
    sleep(Duration::from_millis(500));
    let mut third = connect(&server);
    let started = Instant::now();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let answer = read_all(third);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "served before a connection had been idle 1 s"
    );
    let mut buf = [0u8; 16];
    assert_eq!(
        idlest.read(&mut buf).unwrap(),
        0,
        "the idlest was not closed"
    );
    drop(other);
}
