//! How a drive of a session ended: [`Finish`] (typed: completed, failed, ended at `FAIL`,
//! stopped at a limit, paused for a human, interrupted) and the [`Outcome`] that carries it with the final state.

use std::fmt;
use std::path::PathBuf;

use orchestra_graph::state::State;
use orchestra_store::{CostTally, SessionStatus};

/// How a drive of the session ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Finish {
    /// Nothing left to run.
    Completed {
        /// Barriers that never fired, and similar.
        warnings: Vec<String>,
    },
    /// A node, a condition, the state or the scheduler failed.
    Failed {
        /// Why.
        error: String,
    },
    /// The pipeline routed to `FAIL`: the session ends as failed, with the edge's reason.
    Fail {
        /// The source(s) of the edge that led to `FAIL`, quoted (`` `reviewer` ``).
        from: String,
        /// The edge's `reason:`, rendered.
        reason: Option<String>,
    },
    /// A limit stopped the session cleanly; a `resume` with a higher limit goes on.
    Stopped {
        /// Which limit.
        limit: StopLimit,
    },
    /// A node asked for a human.
    Paused {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// Cancelled (Ctrl-C, or the lease was lost).
    Interrupted,
}

/// The limit that stopped a session.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StopLimit {
    /// `limits.max_steps` (or `--max-steps` for the drive).
    MaxSteps {
        /// The limit.
        limit: u32,
        /// What set it.
        source: LimitSource,
    },
    /// `limits.max_tokens` (or `--max-tokens` for the drive).
    MaxTokens {
        /// The limit.
        limit: u64,
        /// Tokens used when it stopped.
        used: u64,
        /// What set it.
        source: LimitSource,
    },
    /// `limits.max_cost` (or `--max-cost` for the drive), in US dollars.
    MaxCost {
        /// The limit.
        limit: f64,
        /// The known cost when it stopped.
        used: f64,
        /// What set it.
        source: LimitSource,
    },
}

/// What set the limit that stopped a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitSource {
    /// The pipeline's `limits:`.
    Pipeline,
    /// A flag of `run`/`resume` (`--max-steps`, `--max-tokens`, `--max-cost`), for that drive
    /// only.
    Flag {
        /// Whether the pipeline's own limit lets the session go further, so that a plain
        /// `resume` continues it.
        pipeline_goes_on: bool,
    },
}

impl StopLimit {
    /// The pipeline key of the limit (`limits.max_steps`).
    pub fn key(&self) -> &'static str {
        match self {
            StopLimit::MaxSteps { .. } => "limits.max_steps",
            StopLimit::MaxTokens { .. } => "limits.max_tokens",
            StopLimit::MaxCost { .. } => "limits.max_cost",
        }
    }

    /// What set the limit.
    pub fn source(&self) -> LimitSource {
        match self {
            StopLimit::MaxSteps { source, .. }
            | StopLimit::MaxTokens { source, .. }
            | StopLimit::MaxCost { source, .. } => *source,
        }
    }

    /// Whether a plain `resume` (without raising a limit) continues the session: the limit
    /// was a flag's, and the pipeline's own lets the session go further.
    pub fn plain_resume_continues(&self) -> bool {
        self.source()
            == LimitSource::Flag {
                pipeline_goes_on: true,
            }
    }

    /// The flag of `run`/`resume` that raises it for one drive (`--max-steps`).
    pub fn flag(&self) -> &'static str {
        match self {
            StopLimit::MaxSteps { .. } => "--max-steps",
            StopLimit::MaxTokens { .. } => "--max-tokens",
            StopLimit::MaxCost { .. } => "--max-cost",
        }
    }

    /// What to blame: the flag when one set the limit, else the pipeline key.
    fn blamed(&self) -> &'static str {
        match self.source() {
            LimitSource::Flag { .. } => self.flag(),
            LimitSource::Pipeline => self.key(),
        }
    }
}

impl fmt::Display for StopLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopLimit::MaxSteps { limit, .. } => {
                write!(f, "the session reached {} ({limit})", self.blamed())
            }
            StopLimit::MaxTokens { limit, used, .. } => write!(
                f,
                "the session spent its token budget ({}: {limit}, used {used})",
                self.blamed()
            ),
            StopLimit::MaxCost { limit, used, .. } => write!(
                f,
                "the session spent its cost budget ({}: ${limit}, spent {})",
                self.blamed(),
                usd(*used)
            ),
        }?;
        if self.plain_resume_continues() {
            write!(
                f,
                ", which held for that drive only: a plain `resume` continues"
            )?;
        }
        Ok(())
    }
}

/// An amount of US dollars as people read it: `$1.25`, `$0.0123`, `$0.000042` (a call of a
/// cheap model costs a fraction of a cent, and is not shown as `$0.0000`), `$0`.
pub fn usd(amount: f64) -> String {
    let a = amount.abs();
    if a >= 1.0 {
        format!("${amount:.2}")
    } else if a >= 0.01 {
        format!("${amount:.4}")
    } else if a > 0.0 {
        format!("${amount:.6}")
    } else {
        "$0".to_owned()
    }
}

impl Finish {
    /// The status the session is stored with after this drive.
    pub fn status(&self) -> SessionStatus {
        match self {
            Finish::Completed { .. } => SessionStatus::Completed,
            Finish::Failed { .. } | Finish::Fail { .. } => SessionStatus::Failed,
            Finish::Stopped { .. } => SessionStatus::Stopped,
            Finish::Paused { .. } => SessionStatus::Paused,
            Finish::Interrupted => SessionStatus::Interrupted,
        }
    }

    /// The note stored with the status (why it failed, stopped or paused).
    pub fn note(&self) -> Option<String> {
        match self {
            Finish::Completed { .. } => None,
            Finish::Failed { error } => Some(error.clone()),
            Finish::Fail { from, reason } => Some(match reason {
                Some(r) => format!("{from} routed to FAIL: {r}"),
                None => format!("{from} routed to FAIL"),
            }),
            Finish::Stopped { limit } => Some(limit.to_string()),
            Finish::Paused { node, reason } => Some(format!("waiting at `{node}`: {reason}")),
            Finish::Interrupted => Some("interrupted; resume it to go on".to_owned()),
        }
    }

    /// The node a paused session waits at, read back from the note [`Finish::note`] stored
    /// with it (`waiting at `NODE`: ...`); `None` for any other note.
    pub fn paused_at(note: &str) -> Option<&str> {
        let rest = note.strip_prefix("waiting at `")?;
        let (node, after) = rest.split_once('`')?;
        after.starts_with(':').then_some(node)
    }
}

/// What a drive of a session ended with.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Session id.
    pub session: String,
    /// How it ended.
    pub finish: Finish,
    /// Completed steps.
    pub steps: u64,
    /// Tokens this session's own node runs used, in all its drives. A fork does not count what
    /// its parent spent before the fork: that is `inherited_tokens`.
    pub tokens: u64,
    /// What the session's own node runs cost, in all its drives (a fork's parent's runs before
    /// the fork left out).
    pub cost: CostTally,
    /// For a fork, the tokens its parent spent up to the fork's checkpoint (0 otherwise). The
    /// fork's `max_tokens` budget does not count them (nor its `max_cost` the parent's cost).
    pub inherited_tokens: u64,
    /// The final state.
    pub state: State,
    /// The output files written (when the session completed).
    pub outputs: Vec<PathBuf>,
    /// The session branch of each writable repository: where the agents' work is.
    pub branches: Vec<SessionBranch>,
}

/// A writable repository's session branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionBranch {
    /// The repository's name in the pipeline.
    pub repo: String,
    /// The top of the user's checkout of it.
    pub repo_path: PathBuf,
    /// The branch, `{prefix}{pipeline}/{session}`.
    pub branch: String,
    /// The remote it is pushed to, for a repository with `url:` (`repo_path` is then this
    /// process's clone); a password in it shown as `***`.
    pub url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_note_names_its_node() {
        let paused = Finish::Paused {
            node: "reviewer".into(),
            reason: "agent `reviewer` needs a human, and stdin is closed".into(),
        };
        let note = paused.note().unwrap();
        assert_eq!(Finish::paused_at(&note), Some("reviewer"));
        let failed = Finish::Failed {
            error: "waiting at `x` forever".into(),
        };
        assert_eq!(Finish::paused_at(&failed.note().unwrap()), None);
    }

    #[test]
    fn amounts_keep_what_matters() {
        assert_eq!(usd(12.345), "$12.35");
        assert_eq!(usd(0.0123), "$0.0123");
        assert_eq!(usd(0.000_042), "$0.000042");
        assert_eq!(usd(0.0), "$0");
        let stop = StopLimit::MaxCost {
            limit: 0.05,
            used: 0.0612,
            source: LimitSource::Pipeline,
        };
        assert_eq!(
            stop.to_string(),
            "the session spent its cost budget (limits.max_cost: $0.05, spent $0.0612)"
        );
        assert_eq!(stop.flag(), "--max-cost");
    }

    #[test]
    fn a_stop_blames_what_set_the_limit_and_says_when_a_plain_resume_goes_on() {
        let steps = |source| StopLimit::MaxSteps { limit: 2, source };
        let pipeline = steps(LimitSource::Pipeline);
        assert_eq!(
            pipeline.to_string(),
            "the session reached limits.max_steps (2)"
        );
        assert!(!pipeline.plain_resume_continues());
        let flag = steps(LimitSource::Flag {
            pipeline_goes_on: true,
        });
        assert_eq!(
            flag.to_string(),
            "the session reached --max-steps (2), which held for that drive only: a plain `resume` continues"
        );
        assert!(flag.plain_resume_continues());
        // The pipeline's own limit is used up too: raising the limit is the way on.
        let both = steps(LimitSource::Flag {
            pipeline_goes_on: false,
        });
        assert_eq!(both.to_string(), "the session reached --max-steps (2)");
        assert!(!both.plain_resume_continues());
        let tokens = StopLimit::MaxTokens {
            limit: 10,
            used: 12,
            source: LimitSource::Flag {
                pipeline_goes_on: true,
            },
        };
        assert_eq!(
            tokens.to_string(),
            "the session spent its token budget (--max-tokens: 10, used 12), which held for that drive only: a plain `resume` continues"
        );
    }
}
