//! orchestra-runtime (not yet implemented).
