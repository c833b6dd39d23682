//! orchestra-git (not yet implemented).
