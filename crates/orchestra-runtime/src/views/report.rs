//! A session rendered for people — header, the graph with the path taken, the steps with their
//! answers, tool calls, routing and commits, human turns, output files and forks — as Markdown
//! (with a Mermaid graph), a self-contained HTML file (with an inline SVG graph) or JSON
//! (documented in docs/ARCHITECTURE.md, "report --format json"). `orchestra report` prints it;
//! the web UI serves it.

mod commits;
mod graph;
mod html;
mod md;
mod model;
mod svg;

pub use commits::{CommitDiff, step_diffs};
pub use graph::graph_of;
pub use model::{
    Chat, ChatLine, Commit, FileStat, Fork, Graph, GraphEdge, GraphNode, Header, JSON_VERSION,
    RESULT_EXCERPT, Repo, Report, Run, Step, gather,
};

/// The formats of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Markdown with a Mermaid graph of the path taken.
    Md,
    /// One self-contained HTML file (inline CSS and SVG; loads nothing from outside).
    Html,
    /// One JSON object (a stable, versioned shape).
    Json,
}

impl Format {
    /// The format named `md`, `html` or `json`.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "md" => Some(Format::Md),
            "html" => Some(Format::Html),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// `report` in `format`, ending with a newline.
///
/// # Errors
/// When the JSON cannot be written (a value serde cannot represent).
pub fn render(report: &Report, format: Format) -> Result<String, serde_json::Error> {
    Ok(match format {
        Format::Md => md::render(report),
        Format::Html => html::render(report),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(report)?;
            s.push('\n');
            s
        }
    })
}

/// A duration as the report prints it (`12ms`, `1.5s`, `2m3s`).
fn secs(ms: u64) -> String {
    orchestra_spec::fmt_duration(std::time::Duration::from_millis(ms))
}
