//! Rust functions as tools: the arguments type gives the JSON Schema (schemars) and is parsed
//! from the model's arguments (serde); the function returns the text for the model or an error
//! message.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Failure, ToolError};
use crate::registry::{BoxFuture, CallCtx, Registry, Tool, blocking, parse_args};

type Runner = dyn Fn(Value) -> BoxFuture<Result<String, Failure>> + Send + Sync;

/// A tool backed by a Rust function.
struct FnTool {
    description: String,
    parameters: Value,
    run: Box<Runner>,
}

impl fmt::Debug for FnTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnTool")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Tool for FnTool {
    fn description(&self) -> String {
        self.description.clone()
    }
    fn parameters(&self) -> Value {
        self.parameters.clone()
    }
    fn call(self: Arc<Self>, args: Value, _ctx: CallCtx) -> BoxFuture<Result<String, Failure>> {
        (self.run)(args)
    }
}

/// The JSON Schema of `T` as tool parameters: inlined (no `$ref`/`$defs`), without `$schema` and
/// `title`, and always with `properties`.
pub(crate) fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("title");
        if obj.get("type").and_then(Value::as_str) == Some("object") {
            obj.entry("properties")
                .or_insert_with(|| Value::Object(Default::default()));
        }
    }
    schema
}

fn object_schema<A: JsonSchema>(name: &str) -> Result<Value, ToolError> {
    let schema = schema_of::<A>();
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => Ok(schema),
        other => Err(ToolError::ArgsNotObject {
            name: name.to_owned(),
            found: other.map_or_else(|| schema.to_string(), |t| format!("type `{t}`")),
        }),
    }
}

impl Registry {
    /// Registers a synchronous Rust function as a tool. It runs on tokio's blocking pool, so it
    /// may do blocking I/O. `Ok` text goes to the model; `Err` is shown to the model as a failed
    /// call (its `Display`). The registry's [`ToolLimits`](crate::ToolLimits) apply.
    ///
    /// ```
    /// # fn demo() -> Result<(), orchestra_tools::ToolError> {
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Add {
    ///     /// First number.
    ///     a: i64,
    ///     /// Second number.
    ///     b: i64,
    /// }
    /// let mut tools = orchestra_tools::Registry::new();
    /// tools.register_fn("add", "Add two numbers", |args: Add| {
    ///     Ok::<_, std::convert::Infallible>((args.a + args.b).to_string())
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn register_fn<A, F, T, E>(
        &mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        f: F,
    ) -> Result<(), ToolError>
    where
        A: DeserializeOwned + JsonSchema + 'static,
        F: Fn(A) -> Result<T, E> + Send + Sync + 'static,
        T: Into<String>,
        E: fmt::Display,
    {
        let name = name.into();
        let parameters = object_schema::<A>(&name)?;
        let f = Arc::new(f);
        let run = move |args: Value| -> BoxFuture<Result<String, Failure>> {
            let f = Arc::clone(&f);
            Box::pin(blocking(move || {
                let args: A = parse_args(args)?;
                f(args)
                    .map(Into::into)
                    .map_err(|e| Failure::new(e.to_string()))
            }))
        };
        let tool = FnTool {
            description: description.into(),
            parameters,
            run: Box::new(run),
        };
        self.insert(name, Arc::new(tool))
    }

    /// Registers an async Rust function (or a closure returning a future) as a tool. The future
    /// is dropped when the registry's timeout passes.
    ///
    /// ```
    /// # fn demo() -> Result<(), orchestra_tools::ToolError> {
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Ticket {
    ///     /// The ticket id.
    ///     id: u32,
    /// }
    /// let mut tools = orchestra_tools::Registry::new();
    /// tools.register_async_fn("ticket", "Fetch a ticket", |t: Ticket| async move {
    ///     Ok::<_, String>(format!("ticket {} is open", t.id))
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn register_async_fn<A, F, Fut, T, E>(
        &mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        f: F,
    ) -> Result<(), ToolError>
    where
        A: DeserializeOwned + JsonSchema + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Into<String>,
        E: fmt::Display,
    {
        let name = name.into();
        let parameters = object_schema::<A>(&name)?;
        let run = move |args: Value| -> BoxFuture<Result<String, Failure>> {
            match parse_args::<A>(args) {
                Ok(args) => {
                    let fut = f(args);
                    Box::pin(async move {
                        fut.await
                            .map(Into::into)
                            .map_err(|e| Failure::new(e.to_string()))
                    })
                }
                Err(failure) => Box::pin(std::future::ready(Err(failure))),
            }
        };
        let tool = FnTool {
            description: description.into(),
            parameters,
            run: Box::new(run),
        };
        self.insert(name, Arc::new(tool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    #[expect(dead_code, reason = "only deserialized")]
    struct Inner {
        /// A label.
        label: String,
    }

    #[derive(Deserialize, JsonSchema)]
    #[expect(dead_code, reason = "only deserialized")]
    struct Args {
        /// Items to use.
        items: Vec<Inner>,
        /// How many.
        count: Option<u32>,
    }

    #[test]
    fn schemas_are_inlined_objects() {
        let s = schema_of::<Args>();
        assert_eq!(s["type"], "object");
        assert!(s.get("$defs").is_none() && s.get("$schema").is_none());
        assert!(s.get("title").is_none());
        assert_eq!(s["properties"]["items"]["items"]["type"], "object");
        assert_eq!(s["properties"]["count"]["description"], "How many.");
        assert_eq!(s["required"], serde_json::json!(["items"]));
    }

    #[test]
    fn non_object_arguments_are_refused() {
        let mut r = Registry::new();
        let e = r
            .register_fn("bad", "x", |_: u32| Ok::<_, String>(String::new()))
            .unwrap_err();
        assert!(matches!(e, ToolError::ArgsNotObject { .. }), "{e}");
    }
}
