//! The argument rule of shell tools, in one place: the compiler reports its issues with spans,
//! the tool registry refuses a tool that breaks it, so a pipeline that compiles also loads.
//!
//! The first element of `command` is the program, fixed text. A later element that is exactly
//! `{{name}}` (spaces inside the braces allowed) is replaced by argument `name`'s value, as one
//! argv entry; a literal `--` before it makes it positional (a value starting with `-` is then
//! allowed). An argument may not be spliced into a longer element, must be declared, and must
//! be passed (in `command` or as `env`). Environment variable names are checked too.

use crate::diag::did_you_mean;
use crate::pipeline::ShellToolSpec;

/// One element of a shell tool's argv template, after the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandPart {
    /// Passed as written.
    Literal(String),
    /// Replaced by an argument's value.
    Arg {
        /// The argument's name.
        name: String,
        /// Whether a literal `--` comes before it, so its value cannot be read as an option.
        positional: bool,
    },
}

/// A shell tool's command that follows the rule: the program and the argv template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellCommand {
    /// The program (the first element of `command`).
    pub program: String,
    /// The rest of `command`.
    pub parts: Vec<CommandPart>,
}

/// A way a shell tool breaks the argument rule. Messages fit after "invalid shell tool `x`: ".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShellToolIssue {
    /// `command: []`.
    #[error("`command` is empty")]
    EmptyCommand,
    /// The program is empty or a placeholder.
    #[error(
        "the program (first element of `command`) must be fixed text, not empty or an argument"
    )]
    ProgramNotFixed,
    /// A placeholder naming no declared argument.
    #[error("`{element}` names no argument in `args`{}", hint(.suggestion))]
    UndeclaredArg {
        /// The element of `command`.
        element: String,
        /// The name inside the braces.
        arg: String,
        /// "did you mean ..." over the declared arguments, if one is close.
        suggestion: Option<String>,
    },
    /// An argument inside a longer element (`--x={{file}}`).
    #[error(
        "`{element}`: `{{{{{arg}}}}}` must be a whole element of `command` (its value is passed as one argv entry)"
    )]
    SplicedArg {
        /// The element of `command`.
        element: String,
        /// The argument spliced into it.
        arg: String,
    },
    /// A declared argument that reaches the program neither in `command` nor as `env`.
    #[error("argument `{arg}` is used neither in `command` (as `{{{{{arg}}}}}`) nor as `env`")]
    NeverPassed {
        /// The argument.
        arg: String,
    },
    /// An argument's `env:` that is no variable name.
    #[error("`{name}` (the `env` of argument `{arg}`) is not a valid environment variable name")]
    InvalidArgEnv {
        /// The argument.
        arg: String,
        /// The name given.
        name: String,
    },
    /// An entry of the tool's `env:` that cannot be set.
    #[error("`env` entry `{key}` is not a valid variable")]
    InvalidEnv {
        /// The entry's key.
        key: String,
    },
}

fn hint(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; {s}"))
        .unwrap_or_default()
}

/// The argument name of an element that is exactly `{{name}}` (spaces inside the braces
/// allowed; the name is letters, digits, `_` and `-`).
pub fn placeholder(element: &str) -> Option<&str> {
    let inner = element.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let ok = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    ok.then_some(inner)
}

/// Whether `name` can be the name of an environment variable.
pub fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

impl ShellToolSpec {
    /// Checks the command, arguments and environment against the argument rule: the program
    /// and argv template, or every issue found (in the order of the file).
    pub fn check_command(&self) -> Result<ShellCommand, Vec<ShellToolIssue>> {
        let mut issues = Vec::new();
        let args: Vec<&str> = self.args.keys().collect();
        let Some((program, rest)) = self.command.value.split_first() else {
            return Err(vec![ShellToolIssue::EmptyCommand]);
        };
        if program.trim().is_empty() || placeholder(program).is_some() {
            issues.push(ShellToolIssue::ProgramNotFixed);
        }
        let mut parts = Vec::with_capacity(rest.len());
        let mut used: Vec<&str> = Vec::new();
        let mut after_dashdash = false;
        for element in rest {
            if let Some(arg) = placeholder(element) {
                if args.contains(&arg) {
                    used.push(arg);
                } else {
                    issues.push(ShellToolIssue::UndeclaredArg {
                        element: element.clone(),
                        arg: arg.to_owned(),
                        suggestion: did_you_mean(arg, args.iter().copied()),
                    });
                }
                parts.push(CommandPart::Arg {
                    name: arg.to_owned(),
                    positional: after_dashdash,
                });
                continue;
            }
            if let Some(arg) = args
                .iter()
                .find(|a| element.contains(&format!("{{{{{a}}}}}")))
            {
                issues.push(ShellToolIssue::SplicedArg {
                    element: element.clone(),
                    arg: (*arg).to_owned(),
                });
                used.push(arg);
            }
            after_dashdash |= element == "--";
            parts.push(CommandPart::Literal(element.clone()));
        }
        for (name, _, spec) in self.args.iter() {
            if spec.env.is_none() && !used.contains(&name) {
                issues.push(ShellToolIssue::NeverPassed {
                    arg: name.to_owned(),
                });
            }
            if let Some(env) = &spec.env
                && !valid_env_name(env)
            {
                issues.push(ShellToolIssue::InvalidArgEnv {
                    arg: name.to_owned(),
                    name: env.clone(),
                });
            }
        }
        for (key, _, value) in self.env.iter() {
            if !valid_env_name(key) || value.contains('\0') {
                issues.push(ShellToolIssue::InvalidEnv {
                    key: key.to_owned(),
                });
            }
        }
        if issues.is_empty() {
            Ok(ShellCommand {
                program: program.clone(),
                parts,
            })
        } else {
            Err(issues)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SourceFile, parse_yaml};

    fn check(yaml: &str) -> Result<ShellCommand, Vec<String>> {
        let spec: ShellToolSpec = parse_yaml(&SourceFile::new("t.yaml", yaml), "tool").unwrap();
        spec.check_command()
            .map_err(|issues| issues.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn placeholders_become_arguments_positional_after_dashdash() {
        let c = check("{name: t, command: [grep, '{{ pattern }}', --, '{{files}}', '--format={{.Name}}'], args: {pattern: {}, files: {type: array}, mode: {env: MODE}}}")
            .unwrap();
        assert_eq!(c.program, "grep");
        assert_eq!(
            c.parts,
            [
                CommandPart::Arg {
                    name: "pattern".into(),
                    positional: false
                },
                CommandPart::Literal("--".into()),
                CommandPart::Arg {
                    name: "files".into(),
                    positional: true
                },
                CommandPart::Literal("--format={{.Name}}".into()),
            ]
        );
    }

    #[test]
    fn every_issue_is_reported_in_order() {
        assert_eq!(
            check("{name: t, command: []}").unwrap_err(),
            ["`command` is empty"]
        );
        let issues = check(
            "{name: t, command: ['{{x}}', '{{fil}}', '--x={{file}}'], args: {x: {}, file: {}, unused: {}, bad: {env: 'A=B'}}, env: {'': v}}",
        )
        .unwrap_err();
        assert_eq!(
            issues,
            [
                "the program (first element of `command`) must be fixed text, not empty or an argument",
                "`{{fil}}` names no argument in `args`; did you mean `file`?",
                "`--x={{file}}`: `{{file}}` must be a whole element of `command` (its value is passed as one argv entry)",
                "argument `x` is used neither in `command` (as `{{x}}`) nor as `env`",
                "argument `unused` is used neither in `command` (as `{{unused}}`) nor as `env`",
                "`A=B` (the `env` of argument `bad`) is not a valid environment variable name",
                "`env` entry `` is not a valid variable",
            ]
        );
    }
}
