//! The pipeline's `inputs:` as written — typed (`type`, `required`, `default`, `enum`) — and how a
//! `--input KEY=VALUE` text becomes a value of its type.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::span::Spanned;

/// An input of the pipeline (`run --input NAME=VALUE`), available to templates and conditions
/// as `inputs.NAME`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The input's type (`string` by default). A `--input` value is read as this type: an
    /// integer from `3`, a boolean from `true`/`false`, an array or object from JSON.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<Spanned<InputType>>,
    /// Whether a run must give it. Default: required when there is no `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<Spanned<bool>>,
    /// The value used when `--input` does not give one; it must have the input's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Spanned<Value>>,
    /// The allowed values.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Spanned<Value>>>,
    /// What the input means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// JSON types of inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    /// A string (the value as given).
    #[default]
    String,
    /// An integer.
    Integer,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A list, given as JSON (`'["a", "b"]'`).
    Array,
    /// A mapping, given as JSON (`'{"k": 1}'`).
    Object,
}

impl InputType {
    /// The type's name as written in a pipeline.
    pub fn name(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Number => "number",
            InputType::Boolean => "boolean",
            InputType::Array => "array",
            InputType::Object => "object",
        }
    }

    /// Whether `v` is a value of this type.
    pub fn matches(self, v: &Value) -> bool {
        match self {
            InputType::String => v.is_string(),
            InputType::Integer => v.is_i64() || v.is_u64(),
            InputType::Number => v.is_number(),
            InputType::Boolean => v.is_boolean(),
            InputType::Array => v.is_array(),
            InputType::Object => v.is_object(),
        }
    }

    /// Reads a `--input` text as a value of this type; the error says what was expected.
    pub fn parse(self, text: &str) -> Result<Value, String> {
        let t = text.trim();
        let wrong = || format!("expected {}, got `{text}`", self.article());
        match self {
            InputType::String => Ok(Value::String(text.to_owned())),
            InputType::Integer => t
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| t.parse::<u64>().map(Value::from))
                .map_err(|_| wrong()),
            InputType::Number => t
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(|n| {
                    // `3` stays an integer, `2.5` is a float.
                    t.parse::<i64>().map_or(Value::Number(n), Value::from)
                })
                .ok_or_else(wrong),
            InputType::Boolean => match t {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(wrong()),
            },
            InputType::Array | InputType::Object => match serde_json::from_str::<Value>(t) {
                Ok(v) if self.matches(&v) => Ok(v),
                Ok(_) => Err(wrong()),
                Err(e) => Err(format!("{} (as JSON: {e})", wrong())),
            },
        }
    }

    /// "a string", "an integer", ...
    pub fn article(self) -> &'static str {
        match self {
            InputType::String => "a string",
            InputType::Integer => "an integer",
            InputType::Number => "a number",
            InputType::Boolean => "`true` or `false`",
            InputType::Array => "a JSON array",
            InputType::Object => "a JSON object",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_read_per_type() {
        assert_eq!(InputType::Integer.parse("3"), Ok(json!(3)));
        assert_eq!(InputType::Integer.parse(" -7 "), Ok(json!(-7)));
        assert_eq!(
            InputType::Integer.parse("3.5"),
            Err("expected an integer, got `3.5`".to_owned())
        );
        assert_eq!(InputType::Number.parse("2.5"), Ok(json!(2.5)));
        assert_eq!(InputType::Number.parse("2"), Ok(json!(2)));
        assert!(InputType::Number.parse("NaN").is_err());
        assert_eq!(InputType::Boolean.parse("true"), Ok(json!(true)));
        assert!(InputType::Boolean.parse("yes").is_err());
        assert_eq!(InputType::String.parse(" 3 "), Ok(json!(" 3 ")));
        assert_eq!(InputType::Array.parse("[1, \"a\"]"), Ok(json!([1, "a"])));
        assert_eq!(
            InputType::Array.parse("{}"),
            Err("expected a JSON array, got `{}`".to_owned())
        );
        assert!(
            InputType::Object
                .parse("{oops")
                .unwrap_err()
                .starts_with("expected a JSON object, got `{oops` (as JSON: ")
        );
        assert_eq!(InputType::Object.parse("{\"k\": 1}"), Ok(json!({"k": 1})));
    }

    #[test]
    fn types_match_values() {
        assert!(InputType::Integer.matches(&json!(3)));
        assert!(!InputType::Integer.matches(&json!(3.5)));
        assert!(InputType::Number.matches(&json!(3)));
        assert!(!InputType::String.matches(&json!(3)));
    }
}
