//! Integration tests of orchestra-store: one binary (faster to link) with a module per topic.

// The suite's shared functions are not `#[test]`s themselves, so clippy's in-test allowance
// does not reach them.
#![expect(clippy::unwrap_used, reason = "tests fail loudly by unwrapping")]

mod behaviour;
mod chain;
mod common;
mod processes;
mod size;
mod sqlite_file;
