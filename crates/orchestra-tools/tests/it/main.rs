//! Integration tests of orchestra-tools: real files, real git repositories, real processes.

mod common;
mod diff;
mod escapes;
mod files;
mod registry;
mod shell;
