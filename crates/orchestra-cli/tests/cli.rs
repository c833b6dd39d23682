//! End-to-end tests of the `orchestra` binary: the bad-pipeline corpus, good pipelines, the
//! real pipelines of `pipelines/`, and the committed JSON schemas.

#![expect(clippy::unwrap_used, reason = "tests fail loudly by unwrapping")]

mod cli {
    pub(crate) mod gitrepo;
    mod git_flow;
    mod git_conflict;
    mod git_cleanup;
    pub(crate) mod common;
    mod corpus;
    mod pipelines;
    mod schema;
    mod usage;
    pub(crate) mod project;
    mod crash;
    pub(crate) mod fake_model;
    mod bad_output;
    mod limits;
    mod flow;
    pub(crate) mod pty;
    mod interactive;
    mod run;
    mod concurrency;
}
