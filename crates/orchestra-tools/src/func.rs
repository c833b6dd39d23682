//! Tools registered through the library, at any time before a run or during it: a definition
//! (name, description, JSON Schema of the arguments) and an async handler. This is how Rust
//! functions become tools (`register_fn`, `register_async_fn`: the schema comes from the
//! arguments type, schemars, and the arguments are parsed with serde) and how tools discovered
//! at run time, such as an MCP server's `server:tool`s, are added.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use orchestra_spec::ToolDef;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ToolError, ToolFailure};
use crate::registry::{BoxFuture, CallCtx, Registry, Tool, blocking, parse_args};

type Handler = dyn Fn(Value) -> BoxFuture<Result<String, ToolFailure>> + Send + Sync;

/// A tool registered with a handler.
struct FnTool {
    description: String,
    parameters: Value,
    run: Box<Handler>,
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
    fn call(self: Arc<Self>, args: Value, _ctx: CallCtx) -> BoxFuture<Result<String, ToolFailure>> {
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

/// Checks that `schema` describes a JSON object (what every provider requires of tool
/// arguments).
fn check_object_schema(name: &str, schema: &Value) -> Result<(), ToolError> {
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => Ok(()),
        other => Err(ToolError::ArgsNotObject {
            name: name.to_owned(),
            found: other.map_or_else(|| schema.to_string(), |t| format!("type `{t}`")),
        }),
    }
}

impl Registry {
    /// Registers a tool at run time: its definition — name (`tool` or `scope:tool`, e.g. an MCP
    /// server's `fs:read_text_file`), description and the JSON Schema of its arguments (an
    /// object schema) — and an async handler. The handler gets the model's arguments (a JSON
    /// object; `null` becomes `{}`, anything else is refused before it is called) and returns
    /// the text for the model, or a [`ToolFailure`] the model reads as a failed call. The
    /// registry's [`ToolLimits`](crate::ToolLimits) apply: the future is dropped at the timeout.
    ///
    /// Every agent whose `tools:` lists the name can call it (the compiler must be told the
    /// name: `orchestra_graph::LoadOptions::registered_tools`).
    ///
    /// ```
    /// # fn demo() -> Result<(), orchestra_tools::ToolError> {
    /// use orchestra_tools::{Registry, ToolDef, ToolFailure};
    /// let mut tools = Registry::new();
    /// let def = ToolDef {
    ///     name: "weather:today".into(),
    ///     description: "Today's weather in a city".into(),
    ///     parameters: serde_json::json!({
    ///         "type": "object",
    ///         "properties": { "city": { "type": "string" } },
    ///         "required": ["city"]
    ///     }),
    /// };
    /// tools.register(def, |args: serde_json::Value| async move {
    ///     let city = args["city"].as_str().ok_or(ToolFailure::new("`city` must be a string"))?;
    ///     Ok(format!("sunny in {city}"))
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn register<F, Fut>(&mut self, def: ToolDef, handler: F) -> Result<(), ToolError>
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, ToolFailure>> + Send + 'static,
    {
        check_object_schema(&def.name, &def.parameters)?;
        let run = move |args: Value| -> BoxFuture<Result<String, ToolFailure>> {
            match parse_args::<Value>(args) {
                Ok(args) => Box::pin(handler(args)),
                Err(failure) => Box::pin(std::future::ready(Err(failure))),
            }
        };
        let tool = FnTool {
            description: def.description,
            parameters: def.parameters,
            run: Box::new(run),
        };
        self.insert(def.name, Arc::new(tool))
    }

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
        let def = ToolDef {
            name: name.into(),
            description: description.into(),
            parameters: schema_of::<A>(),
        };
        let f = Arc::new(f);
        self.register(def, move |args: Value| {
            let f = Arc::clone(&f);
            blocking(move || {
                let args: A = parse_args(args)?;
                f(args)
                    .map(Into::into)
                    .map_err(|e| ToolFailure::new(e.to_string()))
            })
        })
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
        let def = ToolDef {
            name: name.into(),
            description: description.into(),
            parameters: schema_of::<A>(),
        };
        self.register(def, move |args: Value| {
            let parsed = parse_args::<A>(args).map(&f);
            async move {
                parsed?
                    .await
                    .map(Into::into)
                    .map_err(|e| ToolFailure::new(e.to_string()))
            }
        })
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
