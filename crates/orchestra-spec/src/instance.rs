//! The names of a `for_each` target's instances: `researcher[3]` is the task of agent
//! `researcher` for item 3 (0-based). Progress lines, records, `status` and `show` use them.

/// The name of instance `index` of `agent`.
pub fn instance_name(agent: &str, index: u32) -> String {
    format!("{agent}[{index}]")
}

/// Splits an instance name into its agent and item index; a plain agent name gives `None`.
pub fn split_instance(name: &str) -> Option<(&str, u32)> {
    let open = name.strip_suffix(']')?.rfind('[')?;
    let index = name.get(open + 1..name.len() - 1)?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((&name[..open], index.parse().ok()?))
}

/// The agent a task name belongs to: `researcher` for `researcher[3]` and for `researcher`.
pub fn agent_of(name: &str) -> &str {
    split_instance(name).map_or(name, |(agent, _)| agent)
}

/// Orders task names by agent name, then an agent before its instances, and instances by item
/// index (`researcher[2]` before `researcher[10]`).
pub fn task_order(name: &str) -> (&str, Option<u32>) {
    match split_instance(name) {
        Some((agent, index)) => (agent, Some(index)),
        None => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_round_trip() {
        assert_eq!(instance_name("researcher", 3), "researcher[3]");
        assert_eq!(split_instance("researcher[3]"), Some(("researcher", 3)));
        assert_eq!(split_instance("researcher"), None);
        assert_eq!(split_instance("r[]"), None);
        assert_eq!(split_instance("r[x]"), None);
        assert_eq!(split_instance("r[-1]"), None);
        assert_eq!(agent_of("a[0]"), "a");
        assert_eq!(agent_of("a"), "a");
        let mut names = ["b", "a[10]", "a[2]", "a"];
        names.sort_by_key(|n| task_order(n));
        assert_eq!(names, ["a", "a[2]", "a[10]", "b"]);
    }
}
