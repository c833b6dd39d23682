//! Wire-format rules shared by the HTTP clients. Both APIs accept tool names matching
//! `^[a-zA-Z0-9_-]{1,64}$` while ours look like `app:read-file`: the mapping is deterministic,
//! collision-free within a request and reversed on the way back. Also call ids, parameter
//! schemas and tool arguments.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::types::{Block, ChatRequest};

/// Longest tool name the APIs accept.
pub(crate) const MAX_TOOL_NAME: usize = 64;

/// Our tool names and their wire forms for one request.
#[derive(Debug, Default)]
pub(crate) struct NameMap {
    to_wire: HashMap<String, String>,
    from_wire: HashMap<String, String>,
}

impl NameMap {
    /// The mapping for every tool a request offers or its history mentions (offered tools first,
    /// so their wire names do not depend on the history).
    pub fn for_request(req: &ChatRequest) -> Self {
        let mut map = NameMap::default();
        for t in &req.tools {
            map.add(&t.name);
        }
        for m in &req.messages {
            for b in &m.content {
                if let Block::ToolUse { name, .. } = b {
                    map.add(name);
                }
            }
        }
        map
    }

    fn add(&mut self, ours: &str) {
        if self.to_wire.contains_key(ours) {
            return;
        }
        let plain = sanitize(ours);
        let mut wire = if plain.len() <= MAX_TOOL_NAME {
            plain.clone()
        } else {
            hashed(&plain, ours, 0)
        };
        let mut salt = 0;
        while self.from_wire.contains_key(&wire) {
            salt += 1;
            wire = hashed(&plain, ours, salt);
        }
        self.from_wire.insert(wire.clone(), ours.to_owned());
        self.to_wire.insert(ours.to_owned(), wire);
    }

    /// The wire name of one of our names.
    pub fn wire(&self, ours: &str) -> String {
        self.to_wire
            .get(ours)
            .cloned()
            .unwrap_or_else(|| sanitize(ours))
    }

    /// Our name for a wire name the model used; a name we never sent comes back unchanged (the
    /// harness reports it as an unknown tool).
    pub fn ours(&self, wire: &str) -> String {
        self.from_wire
            .get(wire)
            .cloned()
            .unwrap_or_else(|| wire.to_owned())
    }
}

/// `app:read-file` -> `app__read-file`; any other character outside `[a-zA-Z0-9_-]` becomes `_`.
fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    for c in name.chars() {
        match c {
            ':' => out.push_str("__"),
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => out.push(c),
            _ => out.push('_'),
        }
    }
    if out.is_empty() {
        out.push_str("tool");
    }
    out
}

/// A name of at most 64 characters: a prefix of `plain`, `_` and 8 hex digits of a hash of the
/// original name (and `salt`, bumped on the unlikely collision).
fn hashed(plain: &str, original: &str, salt: u32) -> String {
    let h = fnv1a(original.as_bytes(), salt);
    let keep = plain.len().min(MAX_TOOL_NAME - 9);
    format!("{}_{:08x}", &plain[..keep], h)
}

/// 32-bit FNV-1a (stable across processes and versions, unlike `DefaultHasher`).
pub(crate) fn fnv1a(bytes: &[u8], salt: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5 ^ salt;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A tool-call id the API accepts: only `[a-zA-Z0-9_-]` and at most `max_len` characters. Ids
/// that already qualify pass unchanged; others get a hash suffix so distinct ids stay distinct.
/// Used for ids that came from another provider (a session resumed with `--provider`).
pub(crate) fn wire_id(id: &str, max_len: usize) -> String {
    let valid = !id.is_empty()
        && id.len() <= max_len
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        return id.to_owned();
    }
    let plain: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let keep = plain.len().min(max_len.saturating_sub(9));
    format!("{}_{:08x}", &plain[..keep], fnv1a(id.as_bytes(), 0))
}

/// A tool's parameter schema as the APIs want it: a JSON Schema object of `type: object`.
pub(crate) fn object_schema(parameters: &Value) -> Value {
    match parameters {
        Value::Object(o) if o.contains_key("type") => parameters.clone(),
        Value::Object(o) => {
            let mut o: Map<String, Value> = o.clone();
            o.insert("type".into(), json!("object"));
            o.entry("properties").or_insert_with(|| json!({}));
            Value::Object(o)
        }
        _ => json!({"type": "object", "properties": {}}),
    }
}

/// Tool arguments from their JSON text. Empty text means no arguments; text that is not a JSON
/// object is kept as a JSON string (see [`crate::tool_input_error`]).
pub(crate) fn parse_arguments(provider: &str, tool: &str, raw: &str) -> Value {
    if raw.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) | Err(_) => {
            tracing::warn!(
                provider,
                tool,
                "the model sent tool arguments that are not a JSON object"
            );
            Value::String(raw.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Message;
    use orchestra_spec::ToolDef;

    fn req(tools: &[&str]) -> ChatRequest {
        ChatRequest {
            agent: "a".into(),
            run_index: 0,
            model: "m".into(),
            system: "".into(),
            messages: vec![Message::assistant(vec![Block::ToolUse {
                id: "1".into(),
                name: "old:tool".into(),
                input: json!({}),
            }])],
            tools: tools
                .iter()
                .map(|n| ToolDef {
                    name: (*n).into(),
                    description: String::new(),
                    parameters: json!({}),
                })
                .collect(),
            max_tokens: None,
            temperature: None,
            workdir: None,
            vars: Default::default(),
        }
    }

    fn valid(wire: &str) -> bool {
        (1..=MAX_TOOL_NAME).contains(&wire.len())
            && wire
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    #[test]
    fn maps_repo_scoped_names_and_back() {
        let long = format!("app:{}", "x".repeat(80));
        let names = [
            "app:read-file",
            "app__read-file",
            "run tests!",
            long.as_str(),
            "",
        ];
        let map = NameMap::for_request(&req(&names));
        assert_eq!(map.wire("app:read-file"), "app__read-file");
        let mut seen = std::collections::HashSet::new();
        for n in names.iter().chain(&["old:tool"]) {
            let w = map.wire(n);
            assert!(valid(&w), "{w:?}");
            assert!(seen.insert(w.clone()), "collision on {w}");
            assert_eq!(map.ours(&w), *n);
        }
        assert_eq!(map.wire("app__read-file").len(), 23);
        assert_eq!(map.wire(&long).len(), MAX_TOOL_NAME);
        assert_eq!(map.ours("never_sent"), "never_sent");
    }

    #[test]
    fn mapping_is_deterministic() {
        let a = NameMap::for_request(&req(&["a:b", "a__b"]));
        let b = NameMap::for_request(&req(&["a:b", "a__b"]));
        assert_eq!(a.wire("a__b"), b.wire("a__b"));
        assert_ne!(a.wire("a__b"), a.wire("a:b"));
    }

    #[test]
    fn schemas_become_objects() {
        assert_eq!(
            object_schema(&json!(null)),
            json!({"type": "object", "properties": {}})
        );
        assert_eq!(
            object_schema(&json!({"properties": {"a": {"type": "string"}}})),
            json!({"properties": {"a": {"type": "string"}}, "type": "object"})
        );
        let s = json!({"type": "object", "required": ["a"]});
        assert_eq!(object_schema(&s), s);
    }

    #[test]
    fn arguments_are_parsed_or_kept_raw() {
        assert_eq!(parse_arguments("p", "t", " "), json!({}));
        assert_eq!(parse_arguments("p", "t", "{\"a\":1}"), json!({"a": 1}));
        assert_eq!(parse_arguments("p", "t", "{\"a\":"), json!("{\"a\":"));
        assert_eq!(parse_arguments("p", "t", "[1]"), json!("[1]"));
    }

    #[test]
    fn ids_are_made_acceptable() {
        assert_eq!(wire_id("toolu_01A09q90qw90", 64), "toolu_01A09q90qw90");
        let w = wire_id("call:1/2", 40);
        assert!(w.starts_with("call_1_2_"), "{w}");
        assert_ne!(wire_id("call:1", 40), wire_id("call/1", 40));
        assert_eq!(wire_id(&"x".repeat(100), 40).len(), 40);
        assert!(!wire_id("", 40).is_empty());
    }
}
