//! orchestra-tools (not yet implemented).
