//! orchestra-prompts (not yet implemented).
