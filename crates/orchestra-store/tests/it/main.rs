//! Integration tests of orchestra-store: one binary (faster to link) with a module per topic.

mod behaviour;
mod common;
// mod processes;
// mod size;
mod sqlite_file;
