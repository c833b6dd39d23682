//! Where a path of keys lies in a YAML file: for errors found in a value read as plain data
//! (an `output.schema`, say), so they point at the offending key, not at the value's start.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

use crate::diag::SourceFile;
use crate::load::parse_yaml;
use crate::span::{Span, Spanned};

/// A YAML document with the place of every key and value.
enum Tree {
    Map(Vec<(Spanned<Key>, Spanned<Tree>)>),
    Seq(Vec<Spanned<Tree>>),
    Leaf,
}

/// A mapping key as text, whatever scalar it was written as.
struct Key(String);

/// The span of the key at the end of `path` in `source` (keys of mappings, indexes of
/// sequences), or of the value when the path ends in a sequence; `None` when the file does not
/// parse or the path is not there.
pub fn span_at_path(source: &SourceFile, path: &[&str]) -> Option<Span> {
    let root: Spanned<Tree> = parse_yaml(source, "YAML").ok()?;
    let mut node = &root;
    let mut span = root.span;
    for step in path {
        match &node.value {
            Tree::Map(entries) => {
                let (k, v) = entries.iter().find(|(k, _)| k.value.0 == *step)?;
                span = k.span;
                node = v;
            }
            Tree::Seq(items) => {
                node = items.get(step.parse::<usize>().ok()?)?;
                span = node.span;
            }
            Tree::Leaf => return None,
        }
    }
    Some(span)
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = map.next_key::<Spanned<Key>>()? {
                    entries.push((k, map.next_value::<Spanned<Tree>>()?));
                }
                Ok(Tree::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = seq.next_element::<Spanned<Tree>>()? {
                    items.push(v);
                }
                Ok(Tree::Seq(items))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
            fn visit_none<E: de::Error>(self) -> Result<Tree, E> {
                Ok(Tree::Leaf)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("null".into()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lead_to_their_keys() {
        let src = SourceFile::new(
            "p.yaml",
            "agents:\n  a:\n    output:\n      schema:\n        type: object\n        properties:\n          x: { type: string, pattern: \"([a-\" }\n    list: [1, { k: 2 }]\n",
        );
        let at = |p: &[&str]| span_at_path(&src, p).map(|s| (s.line, s.col));
        assert_eq!(
            at(&[
                "agents",
                "a",
                "output",
                "schema",
                "properties",
                "x",
                "pattern"
            ]),
            Some((7, 30))
        );
        assert_eq!(
            at(&["agents", "a", "output", "schema", "type"]),
            Some((5, 9))
        );
        assert_eq!(at(&["agents", "a", "list", "1", "k"]), Some((8, 17)));
        assert_eq!(at(&["agents", "b"]), None);
    }
}
