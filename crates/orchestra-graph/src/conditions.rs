//! Conditions of conditional edges: resolving a name to a rule file (`conditions/NAME.yaml`), an
//! executable (`conditions/NAME[.*]`) or a registered function; checking rule files at compile
//! time; and evaluating rules against the state.

use std::path::PathBuf;

use minijinja::{Environment, UndefinedBehavior};
use orchestra_spec::Level;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most expression instructions one rule evaluation may execute.
const FUEL: u64 = 1_000_000;

/// The variables a rule expression sees.
const EXPR_VARS: [&str; 3] = ["state", "inputs", "loops"];

/// A condition used by the pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedCondition {
    /// The name edges refer to it by.
    pub name: String,
    /// What implements it.
    pub source: ConditionSource,
}

/// What implements a condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConditionSource {
    /// A rule file, evaluated in-process.
    Rules(RuleSet),
    /// An executable: gets the state as JSON on stdin, prints target names (run by the runtime).
    Executable {
        /// Its path.
        path: PathBuf,
        /// Where discovery found it.
        level: Level,
    },
    /// A function registered through the library API.
    Registered,
}

/// A rule file: ordered rules and a default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    /// The rule file.
    pub path: PathBuf,
    /// Where discovery found it.
    pub level: Level,
    /// What the condition decides.
    pub description: Option<String>,
    /// The rules, tried in order.
    pub rules: Vec<Rule>,
    /// Targets when no rule matches.
    pub default: Vec<String>,
}

/// One rule: when `when` is true, route to `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// A minijinja expression over `state`, `inputs` and `loops`.
    pub when: String,
    /// Targets.
    pub to: Vec<String>,
    /// The line of the rule file where `when` is written.
    pub line: u32,
}

/// Why a rule could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum ConditionError {
    /// The expression does not parse.
    #[error("invalid condition expression `{expr}` at {}:{line}: {detail}", path.display())]
    Syntax {
        /// The expression.
        expr: String,
        /// The rule file.
        path: PathBuf,
        /// The line in it.
        line: u32,
        /// What is wrong.
        detail: String,
        /// minijinja's error.
        #[source]
        source: minijinja::Error,
    },
    /// Evaluating the expression failed.
    #[error("condition expression `{expr}` at {}:{line} failed: {detail}", path.display())]
    Eval {
        /// The expression.
        expr: String,
        /// The rule file.
        path: PathBuf,
        /// The line in it.
        line: u32,
        /// What went wrong.
        detail: String,
        /// minijinja's error.
        #[source]
        source: minijinja::Error,
    },
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_debug(true);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

fn detail(e: &minijinja::Error) -> String {
    e.detail()
        .map_or_else(|| e.kind().to_string(), str::to_owned)
}

impl Rule {
    /// A short name for what the rule decides, for progress lines and graph labels: the
    /// string a comparison tests for (`state.verdict == "revise"` is `revise`), else the
    /// expression itself.
    pub fn label(&self) -> String {
        let literal = |side: &str| {
            let side = side.trim();
            ['"', '\'']
                .into_iter()
                .find_map(|q| side.strip_prefix(q)?.strip_suffix(q))
                .filter(|inner| !inner.contains(['"', '\'']))
                .map(str::to_owned)
        };
        if let Some((lhs, rhs)) = self.when.split_once("==")
            && !rhs.contains("==")
            && let Some(v) = literal(rhs).or_else(|| literal(lhs))
        {
            return v;
        }
        self.when.trim().to_owned()
    }
}

/// What [`RuleSet::decide`] calls the fallback when no rule matched.
pub const DEFAULT_RULE: &str = "default";

impl RuleSet {
    /// The labels of the rules (and [`DEFAULT_RULE`]) that can choose `target`.
    pub fn labels_for(&self, target: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .rules
            .iter()
            .filter(|r| r.to.iter().any(|t| t == target))
            .map(Rule::label)
            .collect();
        if self.default.iter().any(|t| t == target) {
            out.push(DEFAULT_RULE.to_owned());
        }
        out.dedup();
        out
    }

    /// What [`evaluate`](RuleSet::evaluate) chooses, with the label of the rule that chose
    /// it ([`DEFAULT_RULE`] when none matched).
    pub fn decide(
        &self,
        state: &Map<String, Value>,
        inputs: &Map<String, Value>,
        loops: u32,
    ) -> Result<(String, Vec<String>), ConditionError> {
        Ok(match self.matching(state, inputs, loops)? {
            Some(rule) => (rule.label(), rule.to.clone()),
            None => (DEFAULT_RULE.to_owned(), self.default.clone()),
        })
    }

    /// The targets chosen for `state` and `inputs` when the edge has taken `loops` loops: those
    /// of the first rule whose `when` is true, else the default.
    ///
    /// Only the state channels and inputs the rules name (`state.verdict`) are converted for
    /// the expression engine, so a step costs what its rules read, not the size of the state
    /// (which grows with every message). A rule that uses `state` or `inputs` as a whole (e.g.
    /// `state[name]`) gets all of it.
    pub fn evaluate(
        &self,
        state: &Map<String, Value>,
        inputs: &Map<String, Value>,
        loops: u32,
    ) -> Result<Vec<String>, ConditionError> {
        Ok(self
            .matching(state, inputs, loops)?
            .map_or_else(|| self.default.clone(), |r| r.to.clone()))
    }

    /// The first rule whose `when` is true, if any.
    fn matching(
        &self,
        state: &Map<String, Value>,
        inputs: &Map<String, Value>,
        loops: u32,
    ) -> Result<Option<&Rule>, ConditionError> {
        let env = environment();
        let mut exprs = Vec::with_capacity(self.rules.len());
        let mut state_used = Used::default();
        let mut inputs_used = Used::default();
        for rule in &self.rules {
            let expr = env
                .compile_expression(&rule.when)
                .map_err(|e| ConditionError::Syntax {
                    expr: rule.when.clone(),
                    path: self.path.clone(),
                    line: rule.line,
                    detail: detail(&e),
                    source: e,
                })?;
            for var in expr.undeclared_variables(true) {
                let (root, field) = match var.split_once('.') {
                    Some((r, f)) => (r, f.split('.').next()),
                    None => (var.as_str(), None),
                };
                match root {
                    "state" => state_used.add(field),
                    "inputs" => inputs_used.add(field),
                    _ => {}
                }
            }
            exprs.push(expr);
        }
        let ctx = minijinja::context! {
            state => state_used.view(state),
            inputs => inputs_used.view(inputs),
            loops => loops,
        };
        for (rule, expr) in self.rules.iter().zip(&exprs) {
            let v = expr.eval(ctx.clone()).map_err(|e| ConditionError::Eval {
                expr: rule.when.clone(),
                path: self.path.clone(),
                line: rule.line,
                detail: detail(&e),
                source: e,
            })?;
            if v.is_true() {
                return Ok(Some(rule));
            }
        }
        Ok(None)
    }
}

/// Which keys of a JSON object the rules of a condition read.
#[derive(Debug, Default)]
struct Used {
    /// The object is used as a whole.
    all: bool,
    /// Keys read as `name.key`, in first-use order.
    keys: Vec<String>,
}

impl Used {
    fn add(&mut self, key: Option<&str>) {
        match key {
            None => self.all = true,
            Some(k) if !self.keys.iter().any(|known| known == k) => self.keys.push(k.to_owned()),
            Some(_) => {}
        }
    }

    /// The object as the expressions see it: whole, or only the keys they read (a key the
    /// object lacks stays undefined, as it would be in the whole object).
    fn view(&self, object: &Map<String, Value>) -> minijinja::Value {
        if self.all {
            return minijinja::Value::from(minijinja::value::Serde(object));
        }
        minijinja::Value::from_pairs(self.keys.iter().filter_map(|k| {
            object.get(k).map(|v| {
                (
                    k.as_str(),
                    minijinja::Value::from(minijinja::value::Serde(v)),
                )
            })
        }))
    }
}

mod resolve;

pub(crate) use resolve::{ConditionResolver, ExprScope};

#[cfg(test)]
mod tests;
