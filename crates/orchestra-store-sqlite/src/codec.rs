//! Conversions between records and SQLite values: unsigned integers, JSON text, statuses.

use std::str::FromStr;

use rusqlite::Row;
use rusqlite::types::Type;
use serde::Serialize;
use serde_json::Value;

use orchestra_store::StoreError;

fn conversion(
    idx: usize,
    ty: Type,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, Box::new(e))
}

/// An unsigned integer column.
pub(crate) fn u64_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|e| conversion(idx, Type::Integer, e))
}

/// A nullable unsigned integer column.
pub(crate) fn opt_u64_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    let v: Option<i64> = row.get(idx)?;
    v.map(|v| u64::try_from(v).map_err(|e| conversion(idx, Type::Integer, e)))
        .transpose()
}

/// A `u32` column.
pub(crate) fn u32_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<u32> {
    let v: i64 = row.get(idx)?;
    u32::try_from(v).map_err(|e| conversion(idx, Type::Integer, e))
}

/// A JSON column (text, or a blob of JSON text), decoded into `T`.
pub(crate) fn json_at<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let bytes = row.get_ref(idx)?.as_bytes()?;
    serde_json::from_slice(bytes).map_err(|e| conversion(idx, Type::Text, e))
}

/// A nullable JSON column (text, or a blob of JSON text).
pub(crate) fn opt_json_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Value>> {
    match row.get_ref(idx)?.as_bytes_or_null()? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| conversion(idx, Type::Text, e)),
    }
}

/// A UTF-8 text column, or a blob holding UTF-8 text.
pub(crate) fn text_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<String> {
    let bytes = row.get_ref(idx)?.as_bytes()?;
    String::from_utf8(bytes.to_vec()).map_err(|e| conversion(idx, Type::Blob, e))
}

/// A status column (`SessionStatus`, `TaskStatus`).
pub(crate) fn status_at<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text = row.get_ref(idx)?.as_str()?;
    text.parse().map_err(|e| conversion(idx, Type::Text, e))
}

/// Encodes a value as compact JSON text.
pub(crate) fn to_json<T: Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

/// Encodes an optional value as JSON text or NULL.
pub(crate) fn opt_json(
    what: &'static str,
    value: Option<&Value>,
) -> Result<Option<String>, StoreError> {
    value.map(|v| to_json(what, v)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn negative_integers_are_rejected_as_unsigned() {
        let conn = Connection::open_in_memory().unwrap();
        let err = conn
            .query_row("SELECT -1", [], |row| u64_at(row, 0))
            .unwrap_err();
        assert!(matches!(
            err,
            rusqlite::Error::FromSqlConversionFailure(0, Type::Integer, _)
        ));
        let ok = conn.query_row("SELECT 7, NULL", [], |row| {
            Ok((u32_at(row, 0)?, opt_u64_at(row, 1)?))
        });
        assert_eq!(ok.unwrap(), (7, None));
    }

    #[test]
    fn json_columns_round_trip_and_reject_garbage() {
        let conn = Connection::open_in_memory().unwrap();
        let v: Value = conn
            .query_row("SELECT '{\"b\":1,\"a\":[true]}'", [], |row| json_at(row, 0))
            .unwrap();
        assert_eq!(to_json("v", &v).unwrap(), r#"{"b":1,"a":[true]}"#);
        assert!(
            conn.query_row("SELECT '{oops'", [], |row| json_at::<Value>(row, 0))
                .is_err()
        );
        let none = conn
            .query_row("SELECT NULL", [], |row| opt_json_at(row, 0))
            .unwrap();
        assert_eq!(none, None);
    }
}
