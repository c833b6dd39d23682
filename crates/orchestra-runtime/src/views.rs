//! Sessions as data for the programs that show them: `orchestra status` and `show` (text and
//! `--json`), the MCP server and the web UI read the same rows, details and steps from here.

pub mod sessions;
pub mod show;
