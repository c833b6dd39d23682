//! Filters and tests a template names that its environment does not have: minijinja only finds
//! them when it renders, so a typo (`{{ x | uppper }}`, `is matching(...)`) would fail a run
//! hours in. The compiler reports them where they are written instead.

use minijinja::machinery::{Token, tokenize};
use minijinja::{Environment, ErrorKind};

/// What a name is used as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallableKind {
    /// `value | name`, or `{% filter name %}`.
    Filter,
    /// `value is name`.
    Test,
}

impl CallableKind {
    /// `filter` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallableKind::Filter => "filter",
            CallableKind::Test => "test",
        }
    }
}

/// A filter or test that `env` does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCallable {
    /// Filter or test.
    pub kind: CallableKind,
    /// The name as written.
    pub name: String,
    /// Its 1-based line in the template.
    pub line: u32,
    /// Its byte offset in the template.
    pub offset: usize,
}

/// The filters and tests `source` names that `env` does not have, in order. `in_expr`: the
/// source is a bare expression (a condition's `when:`), not a template. Sources that do not
/// tokenize report nothing here (their syntax error is reported by whoever compiles them).
pub fn unknown_callables(
    env: &Environment<'_>,
    source: &str,
    in_expr: bool,
) -> Vec<UnknownCallable> {
    // Orchestra's environments change only whitespace handling, which tokens do not see.
    let Ok(tokens) = tokenize(source, in_expr, minijinja::syntax::SyntaxConfig::default())
        .collect::<Result<Vec<_>, _>>()
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut prev: Option<&Token<'_>> = None;
    let mut before_prev: Option<&Token<'_>> = None;
    for (token, span) in &tokens {
        if let Token::Ident(name) = token {
            let kind = match (before_prev, prev) {
                (_, Some(Token::Pipe)) => Some(CallableKind::Filter),
                (Some(Token::BlockStart), Some(Token::Ident("filter"))) => {
                    Some(CallableKind::Filter)
                }
                (_, Some(Token::Ident("is"))) if *name != "not" => Some(CallableKind::Test),
                (Some(Token::Ident("is")), Some(Token::Ident("not"))) => Some(CallableKind::Test),
                _ => None,
            };
            if let Some(kind) = kind
                && !known(env, kind, name)
            {
                out.push(UnknownCallable {
                    kind,
                    name: (*name).to_owned(),
                    line: u32::from(span.start_line),
                    offset: span.start_offset as usize,
                });
            }
        }
        before_prev = prev;
        prev = Some(token);
    }
    out
}

/// Whether `env` has the filter or test `name`: a probe that uses it fails with "unknown" only
/// when it does not (other failures, such as wrong arguments, mean it exists).
fn known(env: &Environment<'_>, kind: CallableKind, name: &str) -> bool {
    let probe = match kind {
        CallableKind::Filter => format!("{{{{ 1 | {name} }}}}"),
        CallableKind::Test => format!("{{{{ 1 is {name} }}}}"),
    };
    let unknown = match kind {
        CallableKind::Filter => ErrorKind::UnknownFilter,
        CallableKind::Test => ErrorKind::UnknownTest,
    };
    let mut probe_env = env.clone();
    // A probe must not depend on the template syntax of the environment it checks.
    probe_env.set_syntax(minijinja::syntax::SyntaxConfig::default());
    !matches!(probe_env.render_str(&probe, ()), Err(e) if e.kind() == unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment<'static> {
        Environment::new()
    }

    #[test]
    fn unknown_filters_and_tests_are_found_where_written() {
        let src = "Hi {{ name | upper }}\n{{ x | frobnicate(1) }} {% if y is matching('a') %}{% endif %}\n{% if z is not odd %}{% endif %}{% filter shout %}x{% endfilter %}";
        let found: Vec<(CallableKind, String, u32)> = unknown_callables(&env(), src, false)
            .into_iter()
            .map(|u| (u.kind, u.name, u.line))
            .collect();
        assert_eq!(
            found,
            [
                (CallableKind::Filter, "frobnicate".into(), 2),
                (CallableKind::Test, "matching".into(), 2),
                (CallableKind::Filter, "shout".into(), 3),
            ]
        );
        let expr = unknown_callables(&env(), "state.n is evn or state.s | lenght > 2", true);
        let names: Vec<&str> = expr.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["evn", "lenght"]);
    }

    #[test]
    fn strings_and_known_names_are_not_reported() {
        let src =
            "{{ 'a | b is c' }} {{ x | default('y') | length }} {% if x is defined %}{% endif %}";
        assert_eq!(unknown_callables(&env(), src, false), []);
    }
}
