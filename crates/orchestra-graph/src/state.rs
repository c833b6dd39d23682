//! State channels and their reducers: the base channels (`messages`, `agent_outputs`,
//! `metadata`, `errors`) plus the pipeline's declared fields, and how one super-step's writes are applied.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use orchestra_spec::{FieldType, Reducer, SpannedMap, StateFieldSpec};

/// The state of a session: channel name -> value.
pub type State = Map<String, Value>;

/// A state channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    /// The channel's name.
    pub name: String,
    /// How writes combine.
    pub reducer: Reducer,
    /// The JSON type values must have.
    pub ty: FieldType,
    /// Allowed values (for `replace`: the value; for `append`: each item).
    pub allowed: Option<Vec<Value>>,
    /// The initial value.
    pub initial: Value,
}

/// One write of a task: `writer` (an agent) writes `value` into `channel`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Write {
    /// The agent that wrote.
    pub writer: String,
    /// The channel written.
    pub channel: String,
    /// The value.
    pub value: Value,
}

/// Why writes could not be applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StateError {
    /// No such channel.
    #[error("`{writer}` wrote to unknown state field `{channel}`")]
    UnknownChannel {
        /// The writer.
        writer: String,
        /// The channel.
        channel: String,
    },
    /// Two `replace` writes to one channel in one step.
    #[error(
        "`{first}` and `{second}` both wrote state field `{channel}` in the same step, and its reducer is `replace`; give it another reducer (append, merge, sum) or let only one of them write it"
    )]
    Conflict {
        /// The channel.
        channel: String,
        /// The first writer (declaration order).
        first: String,
        /// The second writer.
        second: String,
    },
    /// A value of the wrong type or not among the allowed values.
    #[error("`{writer}` wrote {found} to state field `{channel}`, which expects {expected}")]
    BadValue {
        /// The writer.
        writer: String,
        /// The channel.
        channel: String,
        /// What the channel expects.
        expected: String,
        /// What was written (shortened).
        found: String,
    },
}

/// The channels of a pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Channels {
    list: Vec<Channel>,
}

impl Channels {
    /// The base channels plus the declared fields, in that order.
    pub fn new(declared: &SpannedMap<StateFieldSpec>) -> Self {
        let base = [
            ("messages", Reducer::Append, FieldType::Array),
            ("agent_outputs", Reducer::Merge, FieldType::Object),
            ("metadata", Reducer::Merge, FieldType::Object),
            // Failures routed by `on_error`: `{agent, step, error}` items.
            (orchestra_spec::ERRORS, Reducer::Append, FieldType::Array),
        ];
        let mut list: Vec<Channel> = base
            .iter()
            .map(|(name, reducer, ty)| Channel {
                name: (*name).to_owned(),
                reducer: *reducer,
                ty: *ty,
                allowed: None,
                initial: empty_value(*reducer, *ty),
            })
            .collect();
        for (name, _, spec) in declared.iter() {
            if list.iter().any(|c| c.name == name) {
                continue;
            }
            list.push(Channel {
                name: name.to_owned(),
                reducer: spec.reducer,
                ty: spec.ty,
                allowed: spec.allowed.clone(),
                initial: spec
                    .default
                    .clone()
                    .unwrap_or_else(|| empty_value(spec.reducer, spec.ty)),
            });
        }
        Channels { list }
    }

    /// All channels.
    pub fn iter(&self) -> impl Iterator<Item = &Channel> {
        self.list.iter()
    }

    /// The channel called `name`.
    pub fn get(&self, name: &str) -> Option<&Channel> {
        self.list.iter().find(|c| c.name == name)
    }

    /// The initial state.
    pub fn initial(&self) -> State {
        self.list
            .iter()
            .map(|c| (c.name.clone(), c.initial.clone()))
            .collect()
    }

    /// Applies one step's writes, in the order given (the runtime gives them in agent declaration
    /// order). Everything is checked before anything changes, so on error the state is left as it
    /// was; the state is changed in place (never copied) and the written values are moved into
    /// it, so a step costs what it writes, once.
    pub fn apply(
        &self,
        state: &mut State,
        writes: impl Into<Vec<Write>>,
    ) -> Result<(), StateError> {
        let writes = writes.into();
        // Phase 1: check every write; work out the new values of replace/sum channels: the
        // index of the write that wins, or the sum.
        let mut scalars: Vec<(&Channel, usize, Scalar)> = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            let ch = self
                .get(&w.channel)
                .ok_or_else(|| StateError::UnknownChannel {
                    writer: w.writer.clone(),
                    channel: w.channel.clone(),
                })?;
            let current = state.get(&ch.name).unwrap_or(&Value::Null);
            let earlier = scalars.iter().position(|(c, _, _)| c.name == ch.name);
            match ch.reducer {
                Reducer::Replace => {
                    if let Some(e) = earlier
                        && writes[scalars[e].1].writer != w.writer
                    {
                        return Err(StateError::Conflict {
                            channel: ch.name.clone(),
                            first: writes[scalars[e].1].writer.clone(),
                            second: w.writer.clone(),
                        });
                    }
                    check_allowed(ch, w, &w.value)?;
                    if !type_matches(ch.ty, &w.value) {
                        return Err(bad(ch, w, type_name(ch.ty), &w.value));
                    }
                    if let Some(e) = earlier {
                        scalars.remove(e);
                    }
                    scalars.push((ch, i, Scalar::Written));
                }
                Reducer::Sum => {
                    let base = match earlier {
                        Some(e) => match &scalars[e].2 {
                            Scalar::Sum(v) => v,
                            Scalar::Written => &writes[scalars[e].1].value,
                        },
                        None => current,
                    };
                    let sum = add_numbers(base, &w.value)
                        .ok_or_else(|| bad(ch, w, "a number to add", &w.value))?;
                    if !type_matches(ch.ty, &sum) {
                        return Err(bad(ch, w, type_name(ch.ty), &sum));
                    }
                    if let Some(e) = earlier {
                        scalars.remove(e);
                    }
                    scalars.push((ch, i, Scalar::Sum(sum)));
                }
                Reducer::Append => {
                    if !matches!(current, Value::Array(_) | Value::Null) {
                        return Err(bad(ch, w, "a list to append to", current));
                    }
                    match &w.value {
                        Value::Array(items) => {
                            for item in items {
                                check_allowed(ch, w, item)?;
                            }
                        }
                        item => check_allowed(ch, w, item)?,
                    }
                }
                Reducer::Merge => {
                    if !w.value.is_object() {
                        return Err(bad(ch, w, "a mapping to merge", &w.value));
                    }
                    if !matches!(current, Value::Object(_) | Value::Null) {
                        return Err(bad(ch, w, "a mapping", current));
                    }
                }
            }
        }
        // Phase 2: apply; nothing here can fail.
        let mut replaced: Vec<Option<Value>> = vec![None; scalars.len()];
        for (i, w) in writes.into_iter().enumerate() {
            let Some(ch) = self.get(&w.channel) else {
                continue;
            };
            match (ch.reducer, w.value) {
                (Reducer::Append, v) => {
                    let current = state.entry(ch.name.clone()).or_insert(Value::Null);
                    if current.is_null() {
                        *current = Value::Array(Vec::new());
                    }
                    if let Value::Array(list) = current {
                        match v {
                            Value::Array(items) => list.extend(items),
                            item => list.push(item),
                        }
                    }
                }
                (Reducer::Merge, Value::Object(add)) => {
                    let current = state.entry(ch.name.clone()).or_insert(Value::Null);
                    if current.is_null() {
                        *current = Value::Object(Map::new());
                    }
                    if let Value::Object(m) = current {
                        m.extend(add);
                    }
                }
                (Reducer::Replace, v) => {
                    if let Some(k) = scalars
                        .iter()
                        .position(|(c, at, _)| *at == i && c.name == ch.name)
                    {
                        replaced[k] = Some(v);
                    }
                }
                _ => {}
            }
        }
        for ((ch, _, scalar), written) in scalars.into_iter().zip(replaced) {
            let value = match scalar {
                Scalar::Sum(v) => v,
                Scalar::Written => written.unwrap_or(Value::Null),
            };
            state.insert(ch.name.clone(), value);
        }
        Ok(())
    }
}

/// The new value of a replace or sum channel in a step.
enum Scalar {
    /// The value of the write at the recorded index.
    Written,
    /// A sum.
    Sum(Value),
}

fn empty_value(reducer: Reducer, ty: FieldType) -> Value {
    match (reducer, ty) {
        (Reducer::Append, _) | (_, FieldType::Array) => Value::Array(Vec::new()),
        (Reducer::Merge, _) | (_, FieldType::Object) => Value::Object(Map::new()),
        (Reducer::Sum, FieldType::Number) => Value::from(0.0),
        (Reducer::Sum, _) => Value::from(0),
        _ => Value::Null,
    }
}

fn check_allowed(ch: &Channel, w: &Write, v: &Value) -> Result<(), StateError> {
    match &ch.allowed {
        Some(allowed) if !allowed.contains(v) => {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            Err(bad(ch, w, &format!("one of {}", list.join(", ")), v))
        }
        _ => Ok(()),
    }
}

fn bad(ch: &Channel, w: &Write, expected: &str, found: &Value) -> StateError {
    StateError::BadValue {
        writer: w.writer.clone(),
        channel: ch.name.clone(),
        expected: expected.to_owned(),
        found: shorten(found),
    }
}

/// A value's JSON, cut to 80 characters for messages.
pub fn shorten(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

/// Whether `v` has JSON type `ty` (null is accepted for every type: "not set yet").
pub fn type_matches(ty: FieldType, v: &Value) -> bool {
    match (ty, v) {
        (FieldType::Any, _) | (_, Value::Null) => true,
        (FieldType::String, Value::String(_)) => true,
        (FieldType::Number, Value::Number(_)) => true,
        (FieldType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (FieldType::Boolean, Value::Bool(_)) => true,
        (FieldType::Array, Value::Array(_)) => true,
        (FieldType::Object, Value::Object(_)) => true,
        _ => false,
    }
}

/// The name of a JSON type, for messages.
pub fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Any => "any value",
        FieldType::String => "a string",
        FieldType::Number => "a number",
        FieldType::Integer => "an integer",
        FieldType::Boolean => "a boolean",
        FieldType::Array => "a list",
        FieldType::Object => "a mapping",
    }
}

fn add_numbers(a: &Value, b: &Value) -> Option<Value> {
    let a = if a.is_null() { &Value::from(0) } else { a };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.checked_add(y).map(Value::from),
            _ => Some(Value::from(x.as_f64()? + y.as_f64()?)),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn channels() -> Channels {
        let yaml = "findings: { type: array, reducer: append }\nverdict: { type: string, enum: [approve, revise] }\ncount: { type: integer, reducer: sum }\n";
        let src = orchestra_spec::SourceFile::new("s.yaml", yaml);
        let declared: SpannedMap<StateFieldSpec> =
            orchestra_spec::parse_yaml(&src, "state").unwrap();
        Channels::new(&declared)
    }

    fn w(writer: &str, channel: &str, value: Value) -> Write {
        Write {
            writer: writer.into(),
            channel: channel.into(),
            value,
        }
    }

    #[test]
    fn reducers_combine_writes_in_order() {
        let ch = channels();
        let mut s = ch.initial();
        assert_eq!(s["findings"], json!([]));
        assert_eq!(s["count"], json!(0));
        ch.apply(
            &mut s,
            &[
                w("a", "findings", json!([{"f": 1}])),
                w("b", "findings", json!({"f": 2})),
                w("a", "count", json!(2)),
                w("b", "count", json!(3)),
                w("a", "agent_outputs", json!({"a": "x"})),
                w("b", "agent_outputs", json!({"b": "y"})),
                w("a", "verdict", json!("revise")),
            ],
        )
        .unwrap();
        assert_eq!(s["findings"], json!([{"f": 1}, {"f": 2}]));
        assert_eq!(s["count"], json!(5));
        assert_eq!(s["agent_outputs"], json!({"a": "x", "b": "y"}));
        assert_eq!(s["verdict"], json!("revise"));
    }

    #[test]
    fn two_replace_writers_in_one_step_conflict_and_state_is_untouched() {
        let ch = channels();
        let mut s = ch.initial();
        let before = s.clone();
        let err = ch
            .apply(
                &mut s,
                &[
                    w("a", "verdict", json!("approve")),
                    w("b", "verdict", json!("revise")),
                ],
            )
            .unwrap_err();
        assert_eq!(
            err,
            StateError::Conflict {
                channel: "verdict".into(),
                first: "a".into(),
                second: "b".into()
            }
        );
        assert_eq!(s, before);
    }

    #[test]
    fn wrong_types_and_values_are_refused() {
        let ch = channels();
        let mut s = ch.initial();
        let e = ch
            .apply(&mut s, &[w("a", "verdict", json!("maybe"))])
            .unwrap_err();
        assert!(
            e.to_string().contains("one of \"approve\", \"revise\""),
            "{e}"
        );
        let e = ch
            .apply(&mut s, &[w("a", "count", json!("x"))])
            .unwrap_err();
        assert!(e.to_string().contains("a number to add"), "{e}");
        let e = ch.apply(&mut s, &[w("a", "nope", json!(1))]).unwrap_err();
        assert!(matches!(e, StateError::UnknownChannel { .. }));
    }
}
