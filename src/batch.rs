//! Gathering queued messages into batches for the background writers (the audit trail's,
//! the local replay guard's): one transaction per many messages instead of one per handful.

use std::time::Duration;

use tokio::sync::mpsc;

/// Waits for the next message, then lingers up to `linger` for more, until `max` messages or
/// one that `ends` the wait (a flush) arrived. Returns false once the queue is closed and
/// empty. With a zero `linger` it takes what is queued and returns.
pub async fn gather<M>(
    rx: &mut mpsc::Receiver<M>,
    messages: &mut Vec<M>,
    max: usize,
    linger: Duration,
    ends: impl Fn(&M) -> bool,
) -> bool {
    let before = messages.len();
    if rx
        .recv_many(messages, max.saturating_sub(before).max(1))
        .await
        == 0
    {
        return false;
    }
    let deadline = tokio::time::Instant::now() + linger;
    let mut seen = before;
    while messages.len() < max {
        if messages[seen..].iter().any(&ends) {
            break;
        }
        seen = messages.len();
        let room = max - messages.len();
        match tokio::time::timeout_at(deadline, rx.recv_many(messages, room)).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    true
}
