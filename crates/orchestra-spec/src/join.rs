//! The `join:` of a fan-in edge: `all`, `any`, or a quorum `N`.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Fan-in barrier kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Join {
    /// Wait for every source.
    #[default]
    All,
    /// Go on the first arrival.
    Any,
    /// A quorum: go on once this many sources have finished since the target last ran.
    Count(u32),
}

impl fmt::Display for Join {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Join::All => f.write_str("all"),
            Join::Any => f.write_str("any"),
            Join::Count(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Join {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Join::All => serializer.serialize_str("all"),
            Join::Any => serializer.serialize_str("any"),
            Join::Count(n) => serializer.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Join {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Join;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`all`, `any` or a number of sources")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Join, E> {
                match v {
                    "all" => Ok(Join::All),
                    "any" => Ok(Join::Any),
                    other => Err(E::unknown_variant(other, &["all", "any"])),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Join, E> {
                u32::try_from(v)
                    .map(Join::Count)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Join, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for Join {
    fn schema_name() -> Cow<'static, str> {
        "Join".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "`all` (wait for every source), `any` (go on the first arrival), or N: go on once N of the sources have finished since the target last ran.",
            "anyOf": [
                { "type": "string", "enum": ["all", "any"] },
                { "type": "integer", "minimum": 1 }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_read_and_write_as_written() {
        for (text, join) in [
            ("\"all\"", Join::All),
            ("\"any\"", Join::Any),
            ("2", Join::Count(2)),
        ] {
            let j: Join = serde_json::from_str(text).unwrap();
            assert_eq!(j, join);
            assert_eq!(serde_json::to_string(&j).unwrap(), text);
        }
        assert!(serde_json::from_str::<Join>("\"most\"").is_err());
        assert!(serde_json::from_str::<Join>("-1").is_err());
        assert_eq!(Join::Count(3).to_string(), "3");
    }
}
