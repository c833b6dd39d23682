//! Integration tests of the compiler on real files: the shipped pipelines, discovery levels,
//! project files, library-registered names, and the compiled graph driving the scheduler.

#![expect(clippy::unwrap_used, reason = "tests fail loudly by unwrapping")]

mod it {
    mod call;
    mod command;
    mod discovery;
    mod edit;
    mod pr_review;
    mod validation;
}
