//! What a model is told about a tool: the one definition shared by the tool registry (which
//! makes it) and the providers (which send it on the wire).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A tool the model may call: its name, what it does, and the JSON Schema of its arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    /// The tool's name, e.g. `app:read-file`, `lint` or `fs:read_text_file` (providers map it
    /// to their wire format and back).
    pub name: String,
    /// What the tool does.
    pub description: String,
    /// The JSON Schema of the arguments (an object schema).
    pub parameters: Value,
}
