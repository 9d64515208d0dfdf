//! The audit trail's rows and the SQL of its search, shared by both backends.

use serde_json::{Map, Value};

use super::SqlDialect;
use crate::domain::log_query::{Expr, Field, Match};

/// A log event to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLog {
    /// `date` in Unix milliseconds.
    pub date_ms: i64,
    /// The event as served, without its `log_id` (assigned when it is stored).
    pub doc: Map<String, Value>,
}

/// The searchable text columns of the `logs` table, in insert order after `date_ms`.
pub const LOG_COLUMNS: [&str; 9] = [
    "type",
    "client_id",
    "client_name",
    "description",
    "ip",
    "hostname",
    "user_agent",
    "audience",
    "scope",
];

impl NewLog {
    /// The value of a searchable column: the document's field of that name, when it is a
    /// string.
    pub fn column(&self, name: &str) -> Option<&str> {
        self.doc.get(name).and_then(Value::as_str)
    }
}

/// A stored log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// Its sequence number (the log_id's number).
    pub seq: i64,
    /// The event as JSON text, without its `log_id`.
    pub doc: String,
}

/// A search of the log (`GET /logs` without `from`).
#[derive(Debug, Clone)]
pub struct LogSearch {
    /// The query; `None` matches everything.
    pub filter: Option<Expr>,
    /// The column to sort by (`date_ms` for `date`); ties go by sequence number.
    pub sort: &'static str,
    /// Newest (or greatest) first.
    pub descending: bool,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return.
    pub limit: u64,
    /// Whether to count every match too.
    pub totals: bool,
}

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
}

/// The SQL condition of a query and the values it binds, in order.
pub(crate) fn condition<D: SqlDialect>(expr: &Expr, binds: &mut Vec<SqlValue>) -> String {
    let next = |binds: &mut Vec<SqlValue>, value: SqlValue| {
        binds.push(value);
        D::placeholder(binds.len())
    };
    match expr {
        Expr::Never => "1 = 0".into(),
        Expr::Not(inner) => format!("NOT ({})", condition::<D>(inner, binds)),
        Expr::And(all) | Expr::Or(all) => {
            let joiner = if matches!(expr, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let parts: Vec<String> = all
                .iter()
                .map(|e| format!("({})", condition::<D>(e, binds)))
                .collect();
            parts.join(joiner)
        }
        Expr::Term(field, matching) => {
            let column = match field {
                Field::Column(c) => *c,
                Field::LogId => "seq",
                Field::Date => "date_ms",
                Field::Absent => return "1 = 0".into(),
            };
            match matching {
                Match::Present => format!("{column} IS NOT NULL"),
                Match::Exact(text) => {
                    let p = next(binds, SqlValue::Text(text.clone()));
                    format!("{column} = {p}")
                }
                // `substr` rather than `LIKE`: no escaping, and case-sensitive on both
                // backends alike.
                Match::Prefix(text) => {
                    let a = next(binds, SqlValue::Text(text.clone()));
                    let b = next(binds, SqlValue::Text(text.clone()));
                    format!("substr({column}, 1, length({a})) = {b}")
                }
                Match::Seq(None) => "1 = 0".into(),
                Match::Seq(Some(seq)) => {
                    let p = next(binds, SqlValue::Int(*seq));
                    format!("seq = {p}")
                }
                Match::Range { from, to } => {
                    let mut parts = Vec::new();
                    if let Some(from) = from {
                        let p = next(binds, SqlValue::Int(*from));
                        parts.push(format!("{column} >= {p}"));
                    }
                    if let Some(to) = to {
                        let p = next(binds, SqlValue::Int(*to));
                        parts.push(format!("{column} <= {p}"));
                    }
                    if parts.is_empty() {
                        format!("{column} IS NOT NULL")
                    } else {
                        parts.join(" AND ")
                    }
                }
            }
        }
    }
}

/// The `WHERE` clause (with the keyword, or empty) and `ORDER BY` of a search.
pub(crate) fn search_sql<D: SqlDialect>(
    search: &LogSearch,
    binds: &mut Vec<SqlValue>,
) -> (String, String) {
    let filter = search
        .filter
        .as_ref()
        .map(|f| format!(" WHERE {}", condition::<D>(f, binds)))
        .unwrap_or_default();
    let direction = if search.descending { "DESC" } else { "ASC" };
    let order = if search.sort == "seq" {
        format!(" ORDER BY seq {direction}")
    } else if search.sort == "date_ms" {
        format!(" ORDER BY date_ms {direction}, seq {direction}")
    } else {
        // Absent values sort as the empty text on both backends.
        format!(
            " ORDER BY COALESCE({}, '') {direction}, seq {direction}",
            search.sort
        )
    };
    (filter, order)
}
