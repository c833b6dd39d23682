//! orchestra-graph (not yet implemented).
