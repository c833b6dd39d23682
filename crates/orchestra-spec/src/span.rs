//! Source positions: [`Span`] and the [`Spanned`] wrapper that carries one beside a parsed value.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A region of a source file: 1-based line and column, byte offset and byte length.
///
/// `Span::default()` (line 0) means "position unknown", e.g. for values that were built in code or
/// read back from JSON rather than parsed from YAML.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    /// 1-based line; 0 when unknown.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes (may be 0).
    pub len: usize,
}

impl Span {
    /// Whether this span points somewhere real.
    pub fn is_known(&self) -> bool {
        self.line > 0
    }

    pub(crate) fn from_location(loc: serde_saphyr::Location) -> Self {
        let span = loc.span();
        Span {
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
            col: u32::try_from(loc.column()).unwrap_or(u32::MAX),
            offset: span
                .byte_offset()
                .and_then(|o| usize::try_from(o).ok())
                .unwrap_or(0),
            len: span
                .byte_len()
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(0),
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A value together with the place in the YAML source it was read from.
///
/// Equality and hashing look at the value only, so two equal names written in different places
/// compare equal. Serializes and describes itself (JSON Schema) exactly like `T`.
#[derive(Clone, Debug, Default)]
pub struct Spanned<T> {
    /// The parsed value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Wraps a value with a span.
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }

    /// Wraps a value built in code (unknown span).
    pub fn unspanned(value: T) -> Self {
        Spanned {
            value,
            span: Span::default(),
        }
    }
}

impl<T> Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq> Eq for Spanned<T> {}

impl<T: Hash> Hash for Spanned<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl<T: fmt::Display> fmt::Display for Spanned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        // Where the value is written: for an alias (`*name`) or a merge (`<<: *name`), inside
        // the anchored definition, so a problem there is reported once, at the anchor, however
        // many times it is used. Fall back to the alias when the definition is unknown.
        let at = if s.defined.line() > 0 {
            s.defined
        } else {
            s.referenced
        };
        Ok(Spanned {
            value: s.value,
            span: Span::from_location(at),
        })
    }
}

impl<T: Serialize> Serialize for Spanned<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}
