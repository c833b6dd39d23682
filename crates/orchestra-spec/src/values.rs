//! Small value types shared by the pipeline and project files: maps that remember where each key
//! was written, one-or-many name lists, durations and prompt-layer references.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::span::{Span, Spanned};

/// An ordered map (declaration order is kept) whose entries remember the span of their key.
#[derive(Clone, Debug)]
pub struct SpannedMap<V> {
    entries: IndexMap<String, (Span, V)>,
}

impl<V> Default for SpannedMap<V> {
    fn default() -> Self {
        SpannedMap {
            entries: IndexMap::new(),
        }
    }
}

impl<V> SpannedMap<V> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }
    /// The span of `key` where it was written.
    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.entries.get(key).map(|(s, _)| *s)
    }
    /// Position of `key` in declaration order.
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.entries.get_index_of(key)
    }
    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }
    /// Entries in declaration order: key, key span, value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Span, &V)> {
        self.entries.iter().map(|(k, (s, v))| (k.as_str(), *s, v))
    }
    /// Keys in declaration order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
    /// Values in declaration order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|(_, v)| v)
    }
    /// Inserts (or replaces) an entry; returns the previous value.
    pub fn insert(&mut self, key: impl Into<String>, span: Span, value: V) -> Option<V> {
        self.entries
            .insert(key.into(), (span, value))
            .map(|(_, v)| v)
    }
    /// Adds every entry of `other` that `self` lacks; entries of `self` win.
    pub fn merge_missing_from(&mut self, other: &SpannedMap<V>)
    where
        V: Clone,
    {
        for (k, (s, v)) in &other.entries {
            if !self.entries.contains_key(k) {
                self.entries.insert(k.clone(), (*s, v.clone()));
            }
        }
    }
}

impl<V> FromIterator<(String, V)> for SpannedMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        SpannedMap {
            entries: iter
                .into_iter()
                .map(|(k, v)| (k, (Span::default(), v)))
                .collect(),
        }
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SpannedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = SpannedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = IndexMap::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<V>()?;
                    if entries.contains_key(&key.value) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate key `{}`",
                            key.value
                        )));
                    }
                    entries.insert(key.value, (key.span, value));
                }
                Ok(SpannedMap { entries })
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

impl<V: Serialize> Serialize for SpannedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.entries.iter().map(|(k, (_, v))| (k, v)))
    }
}

impl<V: JsonSchema> JsonSchema for SpannedMap<V> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let value = generator.subschema_for::<V>();
        json_schema!({ "type": "object", "additionalProperties": value })
    }
}

/// One name or a list of names (`to: critic` or `to: [a, b]`), each with its span.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// The names, in the order written.
    pub items: Vec<Spanned<String>>,
    /// The span of the whole value.
    pub span: Span,
}

impl Names {
    /// Iterates over the names as plain strings.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|s| s.value.as_str())
    }
    /// Number of names.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether no name was given.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Whether `name` is one of the names.
    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| n == name)
    }
}

enum NamesRaw {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for NamesRaw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NamesRaw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name or a list of names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(NamesRaw::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    items.push(item);
                }
                Ok(NamesRaw::Many(items))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Spanned::<NamesRaw>::deserialize(deserializer)?;
        let span = raw.span;
        let items = match raw.value {
            NamesRaw::One(name) => vec![Spanned::new(name, span)],
            NamesRaw::Many(items) => items,
        };
        Ok(Names { items, span })
    }
}

impl Serialize for Names {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.items.len() == 1 {
            self.items[0].value.serialize(serializer)
        } else {
            serializer.collect_seq(self.items.iter().map(|s| &s.value))
        }
    }
}

impl JsonSchema for Names {
    fn schema_name() -> Cow<'static, str> {
        "Names".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A name, or a list of names.",
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" }, "minItems": 1 }
            ]
        })
    }
}

/// A timeout written as `30s`, `10m`, `1h 30m`, `250ms`, or a bare number of seconds. Zero is
/// refused where it is written: a timeout of zero would fail every run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `30s`, `10m` or `250ms`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                positive(Duration::from_secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("a duration cannot be negative"))
                    .and_then(|v| positive(Duration::from_secs(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                humantime::parse_duration(v.trim())
                    .map_err(|e| {
                        E::custom(format_args!(
                            "invalid duration `{v}` ({e}); write e.g. `30s`, `10m` or `250ms`"
                        ))
                    })
                    .and_then(positive)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `d`, unless it is zero.
fn positive<E: de::Error>(d: Duration) -> Result<Dur, E> {
    if d.is_zero() {
        Err(E::custom(
            "a timeout of 0 would fail every run; give a positive duration such as `30s`",
        ))
    } else {
        Ok(Dur(d))
    }
}

/// Deserializes a count that must be at least 1 (`max_parallel`, `max_turns`), refusing 0
/// where it is written.
pub fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 0 {
        return Err(de::Error::custom(
            "must be at least 1 (0 would let nothing run)",
        ));
    }
    Ok(n)
}

/// [`at_least_one`] for an optional count.
pub fn at_least_one_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    at_least_one(d).map(Some)
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(self.0))
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration such as `30s`, `10m`, `1h 30m`, `250ms`, or a number of seconds.",
            "anyOf": [
                { "type": "string", "pattern": "^\\s*[0-9]+\\s*[a-zA-Zµ]*(\\s*[0-9]+\\s*[a-zA-Zµ]*)*\\s*$" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

/// A prompt layer: the name of a layer file (`role: reviewer` -> `prompts/roles/reviewer.yaml`)
/// or the layer written inline (`role: { text: "You review code." }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerRef {
    /// A layer file found by discovery.
    Named(String),
    /// A layer given in the pipeline itself.
    Inline(LayerFile),
}

/// The contents of a prompt layer file (`prompts/roles/NAME.yaml` and friends), or an inline layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerFile {
    /// The text of the layer. For the task layer it is a minijinja template over `state`,
    /// `inputs` and `agent`.
    pub text: String,
    /// What this layer is for (shown by `orchestra compile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl<'de> Deserialize<'de> for LayerRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LayerRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a layer name or an inline layer `{ text: ... }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LayerRef, E> {
                Ok(LayerRef::Named(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LayerRef, A::Error> {
                LayerFile::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(LayerRef::Inline)
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for LayerRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            LayerRef::Named(n) => n.serialize(serializer),
            LayerRef::Inline(l) => l.serialize(serializer),
        }
    }
}

impl JsonSchema for LayerRef {
    fn schema_name() -> Cow<'static, str> {
        "LayerRef".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let inline = generator.subschema_for::<LayerFile>();
        json_schema!({
            "description": "The name of a prompt layer file, or an inline layer `{ text: ... }`.",
            "anyOf": [ { "type": "string" }, inline ]
        })
    }
}
