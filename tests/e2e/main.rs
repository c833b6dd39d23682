//! End-to-end tests of the `orchestra` binary: the bad-pipeline corpus, good pipelines, the
//! real pipelines of `pipelines/`, the committed JSON schemas, runs with real git, SQLite and
//! terminals. The binary under test is built from the workspace first (`binary.rs`).

#![expect(clippy::unwrap_used, reason = "tests fail loudly by unwrapping")]

mod attach_race;
mod bad_output;
pub(crate) mod binary;
pub(crate) mod browser;
mod calls;
mod cli_agents;
mod command_nodes;
pub(crate) mod common;
mod compat;
mod concurrency;
mod corpus;
mod cost;
mod crash;
mod edit;
mod events;
mod examples;
pub(crate) mod fake_model;
mod fan_out;
mod fan_out_command;
mod flow;
mod front;
mod git_cleanup;
mod git_conflict;
mod git_crash;
mod git_flow;
mod git_net;
mod git_net_bad;
mod git_remote;
mod git_remote_bad;
pub(crate) mod gitrepo;
pub(crate) mod interactive;
mod language;
mod limits;
mod mcp_client;
mod mcp_conformance;
mod mcp_http;
mod mcp_server;
mod otlp;
mod pipelines;
mod postgres;
pub(crate) mod project;
mod provider_faults;
pub(crate) mod pty;
pub(crate) mod queue;
mod queue_faults;
mod queue_fence;
mod queue_git;
pub(crate) mod readme;
mod report;
mod run;
mod schema;
mod show;
mod stop_remote;
mod usage;
pub(crate) mod web_ui;
mod web_ui_actions;
mod web_ui_chat;
mod web_ui_views;
pub(crate) mod webdriver;
