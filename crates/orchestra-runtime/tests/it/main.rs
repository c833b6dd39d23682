//! Integration tests of orchestra-runtime (one test binary).

#![expect(clippy::unwrap_used, reason = "tests fail loudly by unwrapping")]

mod command;
mod formats;
mod interactive;
mod lease;
mod tools;
