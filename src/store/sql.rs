//! The primitives each backend implements ([`Tx`]) and the backend-neutral pieces the shared
//! operations ([`super::ops`]) are written in: bound values, rows, statements, encoding and
//! paging.
//!
//! Shared SQL numbers its placeholders `?1`, `?2`, … (SQLite's spelling; PostgreSQL's
//! primitive reads them as `$1`, `$2`, …) and uses only what both databases accept.

use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Change, Page, PageRequest, SqlDialect, StoreError, StoreResult};

/// A value bound to a statement or read from a row. `None` is SQL `NULL` (typed, as
/// PostgreSQL wants it bound); any variant's `None` reads as `NULL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// Text.
    Text(Option<String>),
    /// A 64-bit integer.
    Int(Option<i64>),
    /// Bytes.
    Blob(Option<Vec<u8>>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_owned()))
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(Some(v.clone()))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}

impl From<Option<&[u8]>> for Value {
    fn from(v: Option<&[u8]>) -> Self {
        Value::Blob(v.map(<[u8]>::to_vec))
    }
}

impl From<&Option<Vec<u8>>> for Value {
    fn from(v: &Option<Vec<u8>>) -> Self {
        Value::Blob(v.clone())
    }
}

impl From<&Vec<u8>> for Value {
    fn from(v: &Vec<u8>) -> Self {
        Value::Blob(Some(v.clone()))
    }
}

impl Value {
    /// Whether it is text the database may not be able to hold (a NUL character).
    pub(crate) fn has_nul(&self) -> bool {
        matches!(self, Value::Text(Some(t)) if t.contains('\0'))
    }
}

/// One row of a query's result, its columns in the query's order.
#[derive(Debug)]
pub(crate) struct Row(pub Vec<Value>);

impl Row {
    fn take(&mut self, i: usize) -> StoreResult<Value> {
        self.0
            .get_mut(i)
            .map(|v| std::mem::replace(v, Value::Int(None)))
            .ok_or_else(|| StoreError::Internal(format!("no column {i}")))
    }

    /// A text column that may be `NULL`.
    pub(crate) fn opt_text(&mut self, i: usize) -> StoreResult<Option<String>> {
        match self.take(i)? {
            Value::Text(t) => Ok(t),
            Value::Int(None) | Value::Blob(None) => Ok(None),
            other => Err(StoreError::Internal(format!(
                "column {i}: text expected, got {other:?}"
            ))),
        }
    }

    /// A text column.
    pub(crate) fn text(&mut self, i: usize) -> StoreResult<String> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::Internal(format!("column {i} is NULL")))
    }

    /// An integer column that may be `NULL`.
    pub(crate) fn opt_int(&mut self, i: usize) -> StoreResult<Option<i64>> {
        match self.take(i)? {
            Value::Int(n) => Ok(n),
            Value::Text(None) | Value::Blob(None) => Ok(None),
            other => Err(StoreError::Internal(format!(
                "column {i}: integer expected, got {other:?}"
            ))),
        }
    }

    /// An integer column.
    pub(crate) fn int(&mut self, i: usize) -> StoreResult<i64> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::Internal(format!("column {i} is NULL")))
    }

    /// A bytes column that may be `NULL`.
    pub(crate) fn opt_blob(&mut self, i: usize) -> StoreResult<Option<Vec<u8>>> {
        match self.take(i)? {
            Value::Blob(b) => Ok(b),
            Value::Text(None) | Value::Int(None) => Ok(None),
            other => Err(StoreError::Internal(format!(
                "column {i}: bytes expected, got {other:?}"
            ))),
        }
    }

    /// A bytes column.
    pub(crate) fn blob(&mut self, i: usize) -> StoreResult<Vec<u8>> {
        self.opt_blob(i)?
            .ok_or_else(|| StoreError::Internal(format!("column {i} is NULL")))
    }

    /// A JSON document stored as text.
    pub(crate) fn doc<T: DeserializeOwned>(&mut self, i: usize) -> StoreResult<T> {
        decode(&self.text(i)?, "doc")
    }
}

/// How a query locks the rows it reads until the transaction ends, where the backend locks
/// rows (PostgreSQL); a backend whose writes are serial anyway (SQLite) ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// No lock.
    None,
    /// `FOR UPDATE`: the aggregate is being changed.
    Update,
    /// `FOR KEY SHARE`: the row must not be deleted before the commit.
    KeyShare,
}

/// A query.
#[derive(Debug)]
pub(crate) struct Query {
    /// The SQL, placeholders `?1`…
    pub sql: Cow<'static, str>,
    /// The bound values.
    pub binds: Vec<Value>,
    /// The lock it takes.
    pub lock: Lock,
}

/// A query of `sql` binding `binds`.
pub(crate) fn query(sql: impl Into<Cow<'static, str>>, binds: Vec<Value>) -> Query {
    Query {
        sql: sql.into(),
        binds,
        lock: Lock::None,
    }
}

impl Query {
    /// The same query locking its rows.
    pub(crate) fn lock(self, lock: Lock) -> Self {
        Self { lock, ..self }
    }
}

/// A statement that changes rows.
#[derive(Debug)]
pub(crate) struct Stmt {
    /// The SQL, placeholders `?1`…
    pub sql: Cow<'static, str>,
    /// The bound values.
    pub binds: Vec<Value>,
    /// It only changes rows it finds by the bound keys (a `DELETE`/`UPDATE ... WHERE key =`):
    /// a key the database cannot hold finds nothing, instead of being refused.
    pub lookup: bool,
    /// The error a uniqueness violation is.
    pub conflict: Option<StoreError>,
    /// The error a foreign-key violation is.
    pub missing: Option<StoreError>,
}

/// A statement of `sql` binding `binds`.
pub(crate) fn stmt(sql: impl Into<Cow<'static, str>>, binds: Vec<Value>) -> Stmt {
    Stmt {
        sql: sql.into(),
        binds,
        lookup: false,
        conflict: None,
        missing: None,
    }
}

impl Stmt {
    /// The same statement, changing only rows it finds by key.
    pub(crate) fn lookup(self) -> Self {
        Self {
            lookup: true,
            ..self
        }
    }

    /// The same statement, a uniqueness violation being `error`.
    pub(crate) fn on_conflict(self, error: StoreError) -> Self {
        Self {
            conflict: Some(error),
            ..self
        }
    }

    /// The same statement, a foreign-key violation being `error`.
    pub(crate) fn on_missing(self, error: StoreError) -> Self {
        Self {
            missing: Some(error),
            ..self
        }
    }
}

/// The few primitives a backend implements; every store operation is written once over them
/// ([`super::ops`]). One value is one connection: a transaction for writes (committed by the
/// backend when the operation succeeds), or a connection for reads.
pub(crate) trait Tx {
    /// How the backend spells filters over documents.
    type Dialect: SqlDialect;
    /// The rows of a query. A query binding text the database cannot hold finds nothing.
    async fn rows(&mut self, q: Query) -> StoreResult<Vec<Row>>;
    /// Runs a statement; how many rows it changed.
    async fn exec(&mut self, s: Stmt) -> StoreResult<u64>;
    /// Announces a change to the other nodes at commit (nothing for a store only this
    /// process uses).
    async fn notify(&mut self, change: Change) -> StoreResult<()>;
    /// Serialises this transaction against others taking the same `key` (nothing where
    /// writes are serial anyway).
    async fn serialize(&mut self, key: i64) -> StoreResult<()>;
    /// Locks `table` against other writers until commit (nothing where writes are serial).
    async fn lock_table(&mut self, table: &'static str) -> StoreResult<()>;
    /// Refuses `text` (a `what`) the database cannot store.
    fn storable(&self, text: &str, what: &str) -> StoreResult<()>;
    /// `text` as a queried column of the log holds it (PostgreSQL replaces NUL).
    fn column_text(&self, text: String) -> String;
}

/// A document as stored.
pub(crate) fn encode<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("encode: {e}")))
}

/// A stored JSON document.
pub(crate) fn decode<T: DeserializeOwned>(text: &str, column: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("corrupt {column}: {e}")))
}

/// A count as `i64` for binding.
pub(crate) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `(after_seq, limit, offset)` of a page request (one extra row for checkpoint paging).
pub(crate) fn limit_offset(page: PageRequest) -> (i64, i64, i64) {
    match page {
        PageRequest::Offset { page, per_page } => {
            (0, clamp(per_page), clamp(page.saturating_mul(per_page)))
        }
        PageRequest::Checkpoint { after, take } => {
            (after.unwrap_or(0), clamp(take.saturating_add(1)), 0)
        }
    }
}

/// Builds a [`Page`] from rows fetched with one extra item for checkpoint paging.
pub(crate) fn finish_page<T>(
    page: PageRequest,
    mut items: Vec<(i64, T)>,
    total: Option<u64>,
) -> Page<T> {
    let mut next = None;
    if let PageRequest::Checkpoint { take, .. } = page
        && items.len() as u64 > take
    {
        items.truncate(usize::try_from(take).unwrap_or(usize::MAX));
        next = items.last().map(|(seq, _)| *seq);
    }
    Page {
        items: items.into_iter().map(|(_, item)| item).collect(),
        total,
        next,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pages_never_overflow_and_checkpoints_fetch_one_more() {
        assert_eq!(
            limit_offset(PageRequest::Offset {
                page: u64::MAX,
                per_page: u64::MAX
            }),
            (0, i64::MAX, i64::MAX)
        );
        assert_eq!(
            limit_offset(PageRequest::Checkpoint {
                after: Some(7),
                take: u64::MAX
            }),
            (7, i64::MAX, 0)
        );
        assert_eq!(
            limit_offset(PageRequest::Checkpoint {
                after: None,
                take: 2
            }),
            (0, 3, 0)
        );
        let page = PageRequest::Checkpoint {
            after: None,
            take: 2,
        };
        let full = finish_page(page, vec![(1, 'a'), (4, 'b'), (9, 'c')], None);
        assert_eq!((full.items, full.next), (vec!['a', 'b'], Some(4)));
        let last = finish_page(page, vec![(1, 'a'), (4, 'b')], None);
        assert_eq!((last.items, last.next), (vec!['a', 'b'], None));
    }

    #[test]
    fn a_row_reads_its_columns_by_type_and_null_as_none() {
        let mut row = Row(vec![
            Value::Text(Some("{\"a\":1}".into())),
            Value::Int(Some(5)),
            Value::Blob(Some(vec![1, 2])),
            Value::Text(None),
        ]);
        assert_eq!(row.doc::<serde_json::Value>(0).unwrap()["a"], 1);
        assert_eq!(row.int(1).unwrap(), 5);
        assert_eq!(row.blob(2).unwrap(), vec![1, 2]);
        assert_eq!(row.opt_blob(3).unwrap(), None);
        assert_eq!(row.opt_int(3).unwrap(), None);
        // A column of another type, a NULL where a value is needed, or no such column is a
        // corrupt row, not a panic.
        let mut row = Row(vec![Value::Int(Some(1)), Value::Int(None)]);
        assert!(matches!(row.text(0), Err(StoreError::Internal(_))));
        assert!(matches!(row.int(1), Err(StoreError::Internal(_))));
        assert!(matches!(row.int(2), Err(StoreError::Internal(_))));
    }

    #[test]
    fn only_text_holding_nul_is_flagged() {
        assert!(Value::from("a\0b").has_nul());
        assert!(!Value::from("ab").has_nul());
        assert!(!Value::Blob(Some(vec![0])).has_nul());
    }
}
