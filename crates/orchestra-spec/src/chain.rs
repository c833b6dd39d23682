//! An error with its causes as one line: what the CLI prints and what a session records.

/// `e` and its causes, `: `-separated, leaving out a cause whose text is already there (many
/// errors repeat their source in their own message).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn causes_are_joined_once() {
        let e = Outer(Inner(std::io::Error::other("disk full")));
        assert_eq!(error_chain(&e), "outer: inner: disk full");
        let repeated = Inner(std::io::Error::other("inner"));
        assert_eq!(error_chain(&repeated), "inner");
    }
}
