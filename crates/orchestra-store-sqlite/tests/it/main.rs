//! Integration tests of orchestra-store-sqlite: one binary (faster to link) with a module per
//! topic.

#![expect(clippy::unwrap_used, reason = "tests fail loudly by unwrapping")]

mod chain;
mod common;
mod conformance;
mod permissions;
mod processes;
mod release_0_1;
mod size;
mod sqlite_file;
