//! Tool names: what a valid name is, and which registered names to suggest for a wrong one.

/// Checks a tool name: one or two segments of ASCII letters, digits, `_` and `-`, joined by `:`
/// (`lint`, `app:read-file`), short enough that providers' wire names (`app__read-file`, at most
/// 64 characters) can carry it.
pub fn valid_tool_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a name cannot be empty");
    }
    let segments: Vec<&str> = name.split(':').collect();
    if segments.len() > 2 {
        return Err("a name has at most one `:` (`repo:tool`)");
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Err("`:` must separate two non-empty parts (`repo:tool`)");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'))
    {
        return Err("use only ASCII letters, digits, `_`, `-` (and one `:`)");
    }
    if name.len() + segments.len() - 1 > 64 {
        return Err("a name is at most 64 characters (counting `:` as two)");
    }
    Ok(())
}

/// Registered names close to `name`. For `repo:tool`, the repository part and the tool part are
/// compared separately (so the shared `repo:` does not make every tool of a repository look
/// alike): tools of the same repository by their tool part, or, for an unknown repository, the
/// same or similar tool of repositories with a similar name. Otherwise whole names are compared.
pub(crate) fn suggest<'a>(name: &str, names: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
    let scoped = |repo: &str| {
        let prefix = format!("{repo}:");
        names
            .clone()
            .filter_map(move |n| n.strip_prefix(&prefix).map(|t| (n, t)))
    };
    let close_tools = |repo: &str, tool: &str| -> Vec<String> {
        let tools: Vec<(&str, &str)> = scoped(repo).collect();
        if let Some((full, _)) = tools.iter().find(|(_, t)| *t == tool) {
            return vec![(*full).to_owned()];
        }
        orchestra_spec::closest(tool, tools.iter().map(|(_, t)| *t))
            .into_iter()
            .map(|t| format!("{repo}:{t}"))
            .collect()
    };
    if let Some((repo, tool)) = name.split_once(':') {
        if scoped(repo).next().is_some() {
            return close_tools(repo, tool);
        }
        let mut repos: Vec<&str> = names
            .clone()
            .filter_map(|n| n.split_once(':'))
            .map(|(r, _)| r)
            .collect();
        repos.dedup();
        let found: Vec<String> = orchestra_spec::closest(repo, repos.iter().copied())
            .into_iter()
            .flat_map(|r| close_tools(r, tool))
            .collect();
        if !found.is_empty() {
            return found;
        }
    }
    orchestra_spec::closest(name, names)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names() {
        assert!(valid_tool_name("app:read-file").is_ok());
        assert!(valid_tool_name("lint_all").is_ok());
        assert!(valid_tool_name("").is_err());
        assert!(valid_tool_name("a:b:c").is_err());
        assert!(valid_tool_name(":x").is_err());
        assert!(valid_tool_name("has space").is_err());
        assert!(valid_tool_name(&"x".repeat(64)).is_ok());
        assert!(valid_tool_name(&format!("a:{}", "x".repeat(62))).is_err());
    }

    #[test]
    fn suggestions_compare_tools_of_the_same_repo() {
        let names = [
            "app:read-file",
            "app:write-file",
            "app:search-code",
            "lib:read-file",
            "lint",
        ];
        let it = names.iter().copied();
        assert_eq!(suggest("app:serch-code", it.clone()), ["app:search-code"]);
        assert_eq!(suggest("ap:read-file", it.clone()), ["app:read-file"]);
        assert_eq!(
            suggest("read-file", it.clone()),
            ["app:read-file", "lib:read-file"]
        );
        assert_eq!(suggest("lnt", it.clone()), ["lint"]);
        assert!(suggest("app:zzz", it).is_empty());
    }
}
