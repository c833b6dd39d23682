//! Integration tests of orchestra-tools: real files, real git repositories, real processes.

#![expect(clippy::unwrap_used, reason = "tests fail loudly by unwrapping")]

mod common;
mod diff;
mod escapes;
mod files;
mod registry;
mod shell;
