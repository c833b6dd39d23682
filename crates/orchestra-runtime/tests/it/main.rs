//! Integration tests of orchestra-runtime (one test binary).

mod executor;
