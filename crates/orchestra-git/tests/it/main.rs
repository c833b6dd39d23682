//! Integration tests of orchestra-git against real repositories, checked with the `git` CLI.

#![expect(clippy::unwrap_used, reason = "tests fail loudly by unwrapping")]

mod cleanup;
mod commit;
mod merge;
mod push;
mod recover;
mod session;
mod support;
