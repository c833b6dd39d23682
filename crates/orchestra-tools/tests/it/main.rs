//! Integration tests of orchestra-tools: real files, real git repositories, real processes.
