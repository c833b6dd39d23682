//! A tool call's result as the text the model reads: its text blocks, a line for each image,
//! audio or resource block, and the structured content when no text block already carries it.

use serde_json::Value;

/// The text of a `tools/call` result (as JSON) and whether it is an error (`isError`).
pub(crate) fn render(result: &Value) -> (String, bool) {
    let is_error = result
        .get("isError")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut parts: Vec<String> = Vec::new();
    let blocks = result
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for block in blocks {
        parts.push(block_text(block));
    }
    if let Some(structured) = result.get("structuredContent") {
        // Servers should also send it as text (its JSON, or its strings): show it once.
        let texts: Vec<&str> = blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect();
        let as_json = texts
            .iter()
            .any(|t| serde_json::from_str::<Value>(t).is_ok_and(|v| &v == structured));
        let as_strings = structured.as_object().is_some_and(|o| {
            !o.is_empty()
                && o.values().all(|v| {
                    v.as_str()
                        .is_some_and(|s| texts.iter().any(|t| t.trim() == s.trim()))
                })
        });
        if !(as_json || as_strings) {
            parts.push(format!("structured content: {structured}"));
        }
    }
    if parts.is_empty() {
        parts.push(if is_error {
            "the tool failed without a message".to_owned()
        } else {
            "(no content)".to_owned()
        });
    }
    (parts.join("\n"), is_error)
}

fn block_text(block: &Value) -> String {
    let s = |k: &str| block.get(k).and_then(Value::as_str).unwrap_or_default();
    let size = |k: &str| {
        block
            .get(k)
            .and_then(Value::as_str)
            .map_or(0, |d| d.len() * 3 / 4)
    };
    match s("type") {
        "text" => s("text").to_owned(),
        "image" => format!("[image {}, {} bytes]", s("mimeType"), size("data")),
        "audio" => format!("[audio {}, {} bytes]", s("mimeType"), size("data")),
        "resource" => {
            let r = block.get("resource").cloned().unwrap_or_default();
            let uri = r.get("uri").and_then(Value::as_str).unwrap_or_default();
            match r.get("text").and_then(Value::as_str) {
                Some(text) => format!("[resource {uri}]\n{text}"),
                None => {
                    let mime = r
                        .get("mimeType")
                        .and_then(Value::as_str)
                        .unwrap_or("binary");
                    let len = r
                        .get("blob")
                        .and_then(Value::as_str)
                        .map_or(0, |b| b.len() * 3 / 4);
                    format!("[resource {uri}: {mime}, {len} bytes]")
                }
            }
        }
        "resource_link" => {
            let mut line = format!("[resource link {}", s("uri"));
            if !s("name").is_empty() {
                line.push_str(&format!(" ({})", s("name")));
            }
            line.push(']');
            line
        }
        _ => block.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn text_images_resources_and_structured_content() {
        let (t, err) = render(&json!({
            "content": [
                {"type": "text", "text": "hello"},
                {"type": "image", "mimeType": "image/png", "data": "AAAA"},
                {"type": "resource", "resource": {"uri": "file:///a", "text": "body"}},
                {"type": "resource_link", "uri": "file:///b", "name": "b"}
            ],
            "structuredContent": {"x": 1}
        }));
        assert!(!err);
        assert_eq!(
            t,
            "hello\n[image image/png, 3 bytes]\n[resource file:///a]\nbody\n[resource link file:///b (b)]\nstructured content: {\"x\":1}"
        );
        let (t, err) = render(&json!({
            "content": [{"type": "text", "text": "{\"x\": 1}"}],
            "structuredContent": {"x": 1}
        }));
        assert_eq!((t.as_str(), err), ("{\"x\": 1}", false));
        // server-filesystem's shape: the text again under a key.
        let (t, _) = render(&json!({
            "content": [{"type": "text", "text": "line\n"}],
            "structuredContent": {"content": "line\n"}
        }));
        assert_eq!(t, "line\n");
        let (t, err) = render(&json!({"content": [], "isError": true}));
        assert_eq!(
            (t.as_str(), err),
            ("the tool failed without a message", true)
        );
    }
}
