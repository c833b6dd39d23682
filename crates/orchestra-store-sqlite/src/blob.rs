//! Large values (state snapshots, resolved pipelines) written straight into their row: the row
//! is inserted with `zeroblob(len)` and the value is streamed into it, so neither this process
//! nor SQLite holds a second copy of a megabyte of JSON (binding a text copies it once, and
//! building the row copies it again).

use std::io::{self, Write};

use rusqlite::{Connection, MAIN_DB};
use serde_json::Value;

use crate::Ctx;
use orchestra_store::StoreError;

/// Bytes buffered before each write into the blob.
const CHUNK: usize = 64 * 1024;

/// Counts what is written to it.
struct Count(usize);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A length as SQLite's integer (for `zeroblob(?)`).
pub(crate) fn sql_len(what: &'static str, len: usize) -> Result<i64, StoreError> {
    orchestra_store::validate::int(what, u64::try_from(len).unwrap_or(u64::MAX))
}

/// The length of `value` as compact JSON (what [`write_json`] writes).
pub(crate) fn json_len(what: &'static str, value: &Value) -> Result<usize, StoreError> {
    let mut n = Count(0);
    serde_json::to_writer(&mut n, value).map_err(|source| StoreError::Encode { what, source })?;
    Ok(n.0)
}

/// Where a large value goes: a column of one row, reserved with `zeroblob(len)`.
pub(crate) struct Target<'a> {
    pub(crate) table: &'a str,
    pub(crate) column: &'a str,
    pub(crate) rowid: i64,
    /// What is being done, for errors.
    pub(crate) op: &'static str,
}

/// Writes into an open blob in chunks, keeping SQLite's error (an `io::Error` would lose it).
struct Sink<'b, 'c> {
    blob: &'b mut rusqlite::blob::Blob<'c>,
    buf: Vec<u8>,
    at: usize,
    failed: Option<rusqlite::Error>,
}

impl Sink<'_, '_> {
    fn drain(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        match self.blob.write_at(&self.buf, self.at) {
            Ok(()) => {
                self.at += self.buf.len();
                self.buf.clear();
                Ok(())
            }
            Err(e) => {
                self.failed = Some(e);
                Err(io::Error::other("writing into the blob failed"))
            }
        }
    }
}

impl Write for Sink<'_, '_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.drain()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()
    }
}

/// Streams `value` as compact JSON into `target`, which holds exactly
/// [`json_len`]`(value)` bytes.
pub(crate) fn write_json(
    conn: &Connection,
    ctx: &Ctx,
    target: &Target<'_>,
    what: &'static str,
    value: &Value,
) -> Result<(), StoreError> {
    let mut blob = open(conn, ctx, target)?;
    let len = blob.len();
    let mut sink = Sink {
        blob: &mut blob,
        buf: Vec::with_capacity(CHUNK.min(len)),
        at: 0,
        failed: None,
    };
    let written = serde_json::to_writer(&mut sink, value)
        .and_then(|()| sink.flush().map_err(serde_json::Error::io));
    if let Some(e) = sink.failed.take() {
        return Err(ctx.map(target.op, e));
    }
    written.map_err(|source| StoreError::Encode { what, source })?;
    if sink.at != len {
        return Err(ctx.map(target.op, rusqlite::Error::BlobSizeError));
    }
    Ok(())
}

/// Copies `bytes` into `target`, which holds exactly `bytes.len()` bytes.
pub(crate) fn write_bytes(
    conn: &Connection,
    ctx: &Ctx,
    target: &Target<'_>,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let mut blob = open(conn, ctx, target)?;
    if blob.len() != bytes.len() {
        return Err(ctx.map(target.op, rusqlite::Error::BlobSizeError));
    }
    blob.write_at(bytes, 0).map_err(ctx.err(target.op))
}

fn open<'c>(
    conn: &'c Connection,
    ctx: &Ctx,
    t: &Target<'_>,
) -> Result<rusqlite::blob::Blob<'c>, StoreError> {
    conn.blob_open(MAIN_DB, t.table, t.column, t.rowid, false)
        .map_err(ctx.err(t.op))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;
    use std::time::Duration;

    fn conn() -> (Connection, Ctx) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL) STRICT")
            .unwrap();
        let ctx = Ctx {
            path: PathBuf::from(":memory:"),
            busy_timeout: Duration::from_secs(1),
        };
        (conn, ctx)
    }

    fn target(rowid: i64) -> Target<'static> {
        Target {
            table: "t",
            column: "v",
            rowid,
            op: "write a test value",
        }
    }

    #[test]
    fn json_larger_than_a_chunk_is_streamed_exactly() {
        let (conn, ctx) = conn();
        let value = json!({"messages": vec!["naïve ✓ \"x\""; 20_000], "n": 1.5});
        let len = json_len("v", &value).unwrap();
        assert!(len > 3 * CHUNK);
        conn.execute(
            "INSERT INTO t (id, v) VALUES (1, zeroblob(?1))",
            [sql_len("v", len).unwrap()],
        )
        .unwrap();
        write_json(&conn, &ctx, &target(1), "v", &value).unwrap();
        let back: Vec<u8> = conn
            .query_row("SELECT v FROM t WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(back, serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn a_reservation_of_the_wrong_size_is_an_error() {
        let (conn, ctx) = conn();
        conn.execute("INSERT INTO t (id, v) VALUES (1, zeroblob(3))", [])
            .unwrap();
        let err = write_json(&conn, &ctx, &target(1), "v", &json!("four")).unwrap_err();
        assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
        let err = write_json(&conn, &ctx, &target(1), "v", &json!(1)).unwrap_err();
        assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
        assert!(write_bytes(&conn, &ctx, &target(1), b"abcd").is_err());
        write_bytes(&conn, &ctx, &target(1), b"abc").unwrap();
        assert!(write_bytes(&conn, &ctx, &target(2), b"abc").is_err());
    }
}
