//! orchestra-providers (not yet implemented).
