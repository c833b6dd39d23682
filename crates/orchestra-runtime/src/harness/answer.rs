//! What an agent's final answer gives: its JSON value and the state writes read from it.

use serde_json::Value;

use orchestra_graph::{ResolvedAgent, StateWrite};

/// Parses a JSON answer, accepting a fenced ```json block or prose around one JSON value.
pub fn parse_json_answer(text: &str) -> Result<Value, String> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Ok(v);
    }
    if let Some(start) = t.find("```") {
        let body = &t[start + 3..];
        let body = body.strip_prefix("json").unwrap_or(body);
        if let Some(end) = body.find("```")
            && let Ok(v) = serde_json::from_str(body[..end].trim())
        {
            return Ok(v);
        }
    }
    if let (Some(a), Some(b)) = (t.find(['{', '[']), t.rfind(['}', ']']))
        && a < b
        && let Ok(v) = serde_json::from_str(&t[a..=b])
    {
        return Ok(v);
    }
    let shown: String = t.chars().take(120).collect();
    Err(format!("it is not JSON (it begins: {shown:?})"))
}

/// The state writes of `agent` read from its `output` by their JSON pointers, or which one has
/// no value there.
pub(crate) fn extract_writes(
    agent: &ResolvedAgent,
    output: &Value,
) -> Result<Vec<(String, Value)>, String> {
    let mut writes = Vec::with_capacity(agent.writes.len());
    for StateWrite { field, pointer } in &agent.writes {
        let ptr = if pointer == "/" { "" } else { pointer.as_str() };
        match output.pointer(ptr) {
            Some(v) => writes.push((field.clone(), v.clone())),
            None => {
                return Err(format!(
                    "it has no value at `{pointer}` (written to state field `{field}`)"
                ));
            }
        }
    }
    Ok(writes)
}
