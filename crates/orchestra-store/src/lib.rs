//! orchestra-store (not yet implemented).
