//! Log streams: their configuration (the authorization header sealed at rest) and what the
//! Management API shows of them. Delivery is [`crate::log_streams`].

use serde_json::{Map, Value};

use super::{Clavis, ServiceError, ServiceResult};
use crate::domain::log_stream;
use crate::domain::log_stream::{LogStreamUpdate, NewLogStream};
use crate::store::LogStreamRecord;

/// What a stream's sealed authorization is bound to.
fn sealing_context(id: &str) -> Vec<u8> {
    format!("log-stream:{id}").into_bytes()
}

impl Clavis {
    /// Seals a stream's authorization header (bound to its id).
    fn seal_authorization(&self, id: &str, authorization: &str) -> Vec<u8> {
        self.master_key
            .seal(authorization.as_bytes(), &sealing_context(id))
    }

    /// A stream's authorization header in clear; `None` when it has none (or it cannot be
    /// unsealed, logged without the value).
    pub fn open_authorization(&self, record: &LogStreamRecord) -> Option<String> {
        let sealed = record.sealed_authorization.as_deref()?;
        match self
            .master_key
            .open(sealed, &sealing_context(&record.stream.id))
            .ok()
            .and_then(|plain| String::from_utf8(plain).ok())
        {
            Some(plain) => Some(plain),
            None => {
                tracing::error!(log_stream_id = %record.stream.id, "log stream authorization could not be unsealed");
                None
            }
        }
    }

    /// The API representation of a stream (Auth0 returns `httpAuthorization`).
    pub fn log_stream_json(&self, record: &LogStreamRecord) -> Map<String, Value> {
        record
            .stream
            .to_json(self.open_authorization(record).as_deref())
    }

    /// Creates a stream.
    pub async fn create_log_stream(&self, new: NewLogStream) -> ServiceResult<LogStreamRecord> {
        let stream = new.stream().clone();
        let sealed = new
            .authorization()
            .map(|a| self.seal_authorization(&stream.id, a));
        let start_ms = new.start_from().map(|t| t.unix_millis());
        self.write(async || {
            self.store
                .insert_log_stream(&stream, sealed.as_deref(), start_ms)
                .await?;
            self.log_stream(&stream.id).await
        })
        .await
    }

    /// One stream.
    pub async fn log_stream(&self, id: &str) -> ServiceResult<LogStreamRecord> {
        self.store
            .log_stream(id)
            .await?
            .ok_or(ServiceError::Refused(log_stream::not_found()))
    }

    /// Changes a stream. A stream set `active` again starts a new failing run (resuming
    /// from its cursor); a sink sent replaces the sink, its authorization included.
    pub async fn update_log_stream(
        &self,
        id: &str,
        update: LogStreamUpdate,
    ) -> ServiceResult<LogStreamRecord> {
        let sealed = update
            .authorization()
            .map(|a| a.map(|a| self.seal_authorization(id, a)));
        self.write(async || {
            self.store
                .update_log_stream(id, &mut |record| {
                    update.apply(&mut record.stream);
                    if let Some(sealed) = &sealed {
                        record.sealed_authorization.clone_from(sealed);
                    }
                    if update.status() == Some("active") {
                        record.failing_since_ms = None;
                    }
                    Ok(())
                })
                .await
                .map_err(Into::into)
        })
        .await
    }

    /// Deletes a stream.
    pub async fn delete_log_stream(&self, id: &str) -> ServiceResult<()> {
        self.write(async || self.store.delete_log_stream(id).await.map_err(Into::into))
            .await
    }
}
