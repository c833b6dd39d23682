//! Model resolution: an agent's alias and provider (or the pipeline defaults) become a provider
//! name and a concrete model name.

use orchestra_spec::{DefaultsSpec, ProviderKind, ProviderSpec, SpannedMap, closest};

use crate::error::ResolveError;

/// The provider and model an agent runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The provider's name (a key of `providers`).
    pub provider: String,
    /// The model name sent to the provider (empty for `command`/`scripted` providers when
    /// nothing names a model).
    pub model: String,
    /// The alias that was looked up in the provider's `models`, when it was found there; `None`
    /// when the model was used literally.
    pub alias: Option<String>,
}

/// Resolves an agent's model.
///
/// The provider is the agent's `provider:` or else `defaults.provider`; the model is the agent's
/// `model:` or else `defaults.model`, looked up in that provider's `models` map. A name that is not
/// an alias there is used literally as the model name. `command` and `scripted` providers do not
/// need a model; HTTP providers do.
pub fn resolve_model(
    agent_model: Option<&str>,
    agent_provider: Option<&str>,
    defaults: &DefaultsSpec,
    providers: &SpannedMap<ProviderSpec>,
) -> Result<Resolved, ResolveError> {
    let (provider, from_defaults) = match agent_provider {
        Some(p) => (p, false),
        None => match defaults.provider.as_ref() {
            Some(p) => (p.value.as_str(), true),
            None => return Err(ResolveError::NoProvider),
        },
    };
    let Some(spec) = providers.get(provider) else {
        return Err(ResolveError::UnknownProvider {
            name: provider.to_owned(),
            from_defaults,
            suggestions: closest(provider, providers.keys())
                .into_iter()
                .map(str::to_owned)
                .collect(),
        });
    };
    let wanted = agent_model.or(defaults.model.as_ref().map(|m| m.value.as_str()));
    let Some(wanted) = wanted else {
        return match spec.kind.value {
            ProviderKind::Command | ProviderKind::Scripted => Ok(Resolved {
                provider: provider.to_owned(),
                model: String::new(),
                alias: None,
            }),
            ProviderKind::Anthropic | ProviderKind::Openai => Err(ResolveError::NoModel {
                provider: provider.to_owned(),
            }),
        };
    };
    let resolved = match spec.models.get(wanted) {
        Some(model) => Resolved {
            provider: provider.to_owned(),
            model: model.clone(),
            alias: Some(wanted.to_owned()),
        },
        None => Resolved {
            provider: provider.to_owned(),
            model: wanted.to_owned(),
            alias: None,
        },
    };
    tracing::debug!(
        provider = %resolved.provider,
        model = %resolved.model,
        alias = ?resolved.alias,
        "resolved model"
    );
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestra_spec::{SourceFile, Spanned, parse_yaml};

    fn providers() -> SpannedMap<ProviderSpec> {
        let yaml = "anthropic: { kind: anthropic, api_key_env: K, models: { smart: claude-opus-4-1, worker: claude-sonnet-4-5 } }\n\
                    local: { kind: openai, api_base: 'http://127.0.0.1:1/v1', models: { worker: qwen2.5-coder } }\n\
                    scripted: { kind: scripted, responses: r.yaml }\n";
        parse_yaml(&SourceFile::new("p.yaml", yaml), "providers").unwrap()
    }

    fn defaults(provider: Option<&str>, model: Option<&str>) -> DefaultsSpec {
        DefaultsSpec {
            provider: provider.map(|p| Spanned::unspanned(p.to_owned())),
            model: model.map(|m| Spanned::unspanned(m.to_owned())),
        }
    }

    #[test]
    fn alias_goes_through_the_default_providers_map() {
        let r = resolve_model(
            Some("smart"),
            None,
            &defaults(Some("anthropic"), Some("worker")),
            &providers(),
        )
        .unwrap();
        assert_eq!(
            r,
            Resolved {
                provider: "anthropic".into(),
                model: "claude-opus-4-1".into(),
                alias: Some("smart".into()),
            }
        );
    }

    #[test]
    fn agent_provider_overrides_and_uses_its_own_map() {
        let d = defaults(Some("anthropic"), Some("worker"));
        let r = resolve_model(None, Some("local"), &d, &providers()).unwrap();
        assert_eq!(
            (r.provider.as_str(), r.model.as_str()),
            ("local", "qwen2.5-coder")
        );
    }

    #[test]
    fn unknown_alias_is_a_literal_model() {
        let d = defaults(Some("anthropic"), None);
        let r = resolve_model(Some("claude-3-haiku-20240307"), None, &d, &providers()).unwrap();
        assert_eq!(r.model, "claude-3-haiku-20240307");
        assert_eq!(r.alias, None);
    }

    #[test]
    fn unknown_provider_suggests_a_close_name() {
        let d = defaults(Some("anthropc"), Some("worker"));
        let e = resolve_model(None, None, &d, &providers()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown provider `anthropc` (did you mean `anthropic`?)"
        );
        assert!(matches!(
            e,
            ResolveError::UnknownProvider {
                from_defaults: true,
                ..
            }
        ));
    }

    #[test]
    fn missing_provider_or_model() {
        let e = resolve_model(Some("x"), None, &defaults(None, None), &providers()).unwrap_err();
        assert_eq!(e, ResolveError::NoProvider);
        let e = resolve_model(None, Some("anthropic"), &defaults(None, None), &providers())
            .unwrap_err();
        assert!(matches!(e, ResolveError::NoModel { .. }));
        let r = resolve_model(None, Some("scripted"), &defaults(None, None), &providers()).unwrap();
        assert_eq!(r.model, "");
    }
}
