//! The project configuration file, `orchestra.yaml`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::provider::{DefaultsSpec, ProviderSpec};
use crate::values::SpannedMap;

/// The file name of the project configuration.
pub const PROJECT_FILE: &str = "orchestra.yaml";

/// Project-wide settings: where files are searched, providers, defaults, git and storage.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Orchestra project configuration")]
pub struct ProjectConfig {
    /// Directories (relative to `orchestra.yaml`) searched for prompt layers and conditions
    /// after the pipeline's own directory and before `~/.orchestra/`. Default `["."]`.
    #[serde(default = "ProjectConfig::default_search_paths")]
    pub search_paths: Vec<String>,
    /// Providers available to every pipeline of the project.
    #[serde(default)]
    pub providers: SpannedMap<ProviderSpec>,
    /// Default provider and model alias.
    #[serde(default)]
    pub defaults: DefaultsSpec,
    /// Git settings.
    #[serde(default)]
    pub git: GitConfig,
    /// The session database: a SQLite file relative to `orchestra.yaml` (default
    /// `.orchestra/orchestra.db`), or a PostgreSQL URL `postgres://USER@HOST:PORT/DB` (password
    /// from the URL or `PGPASSWORD`). `--db` and `ORCHESTRA_DATABASE` override it.
    #[serde(default = "ProjectConfig::default_database")]
    pub database: String,
    /// A full state snapshot is stored every this many checkpoints; the others store deltas
    /// (default 16).
    #[serde(default = "ProjectConfig::default_snapshot_every")]
    pub snapshot_every: u32,
    /// Model prices in USD per million tokens, by model name, over the built-in ones (a
    /// pipeline's `prices:` override these): `{ MODEL: { input, output, cache_read,
    /// cache_write } }`.
    #[serde(default, skip_serializing_if = "SpannedMap::is_empty")]
    pub prices: SpannedMap<crate::PriceSpec>,
    /// MCP servers whose tools agents list as `SERVER:TOOL` or `SERVER:*`, for every pipeline
    /// of the project (a pipeline's `mcp_servers:` entry of the same name replaces one).
    #[serde(default, skip_serializing_if = "SpannedMap::is_empty")]
    pub mcp_servers: SpannedMap<crate::McpServerSpec>,
}

impl ProjectConfig {
    fn default_search_paths() -> Vec<String> {
        vec![".".to_owned()]
    }
    fn default_database() -> String {
        ".orchestra/orchestra.db".to_owned()
    }
    fn default_snapshot_every() -> u32 {
        16
    }
}

impl Default for ProjectConfig {
    fn default() -> Self {
        ProjectConfig {
            search_paths: Self::default_search_paths(),
            providers: SpannedMap::default(),
            defaults: DefaultsSpec::default(),
            git: GitConfig::default(),
            database: Self::default_database(),
            snapshot_every: Self::default_snapshot_every(),
            prices: SpannedMap::default(),
            mcp_servers: SpannedMap::default(),
        }
    }
}

/// Git settings of the project.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    /// Prefix of session branches: `{prefix}{pipeline}/{session}` (default `orchestra/`).
    #[serde(default = "GitConfig::default_prefix")]
    pub prefix: String,
    /// Where session worktrees go, relative to the repository (default `.orchestra/worktrees`).
    #[serde(default = "GitConfig::default_worktrees")]
    pub worktrees: String,
    /// Author name of auto-commits (default `orchestra`).
    #[serde(default = "GitConfig::default_author_name")]
    pub author_name: String,
    /// Author email of auto-commits (default `orchestra@localhost`).
    #[serde(default = "GitConfig::default_author_email")]
    pub author_email: String,
}

impl GitConfig {
    fn default_prefix() -> String {
        "orchestra/".to_owned()
    }
    fn default_worktrees() -> String {
        ".orchestra/worktrees".to_owned()
    }
    fn default_author_name() -> String {
        "orchestra".to_owned()
    }
    fn default_author_email() -> String {
        "orchestra@localhost".to_owned()
    }
}

impl Default for GitConfig {
    fn default() -> Self {
        GitConfig {
            prefix: Self::default_prefix(),
            worktrees: Self::default_worktrees(),
            author_name: Self::default_author_name(),
            author_email: Self::default_author_email(),
        }
    }
}
