//! Rule-file conditions (`conditions/NAME.yaml`): ordered `when:` rules and a `default:`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::span::Spanned;
use crate::values::Names;

/// A condition written as rules. The first rule whose `when` is true routes; else `default`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Orchestra condition rules")]
pub struct ConditionFile {
    /// What the condition decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Rules, tried in order.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Target(s) when no rule matches.
    pub default: Names,
}

/// One rule of a condition.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// A minijinja expression over `state`, `inputs` and `loops` (e.g. `state.verdict == "revise"`).
    pub when: Spanned<String>,
    /// Target(s) when it is true; several targets are a fan-out.
    pub to: Names,
}
