//! Fixtures shared by the crate's unit tests.

use orchestra_store::NewSession;

/// A session record of pipeline `pipeline` (`PIPELINE.yaml`, no source, a `null` resolved
/// pipeline, no inputs, no parent), created at 1 ms.
pub(crate) fn new_session(id: &str, pipeline: &str) -> NewSession {
    NewSession {
        id: id.into(),
        name: None,
        pipeline: pipeline.into(),
        pipeline_path: format!("{pipeline}.yaml"),
        pipeline_source: String::new(),
        resolved: "null".into(),
        pipeline_hash: String::new(),
        inputs: serde_json::json!({}),
        parent_session: None,
        parent_checkpoint: None,
        parent_node: None,
        created_at: 1,
    }
}
