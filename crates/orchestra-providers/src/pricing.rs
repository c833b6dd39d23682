//! Model prices and what a call cost: the built-in price table (the one place prices are
//! written down) and the lookup that lets `orchestra.yaml` and pipeline `prices:` override it.

use orchestra_spec::{PriceSpec, SpannedMap};

use crate::types::Usage;

/// Prices of one model, in USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    /// Prompt tokens neither read from nor written to the prompt cache.
    pub input: f64,
    /// Generated tokens.
    pub output: f64,
    /// Prompt tokens read from the prompt cache.
    pub cache_read: f64,
    /// Prompt tokens written to the prompt cache.
    pub cache_write: f64,
}

impl Price {
    /// What a call with `usage` cost, in USD (see [`Usage`] for what each count holds).
    pub fn cost(&self, usage: &Usage) -> f64 {
        #[expect(
            clippy::cast_precision_loss,
            reason = "token counts are far below 2^53"
        )]
        let per_token = |n: u64, usd_per_million: f64| n as f64 * usd_per_million / 1e6;
        per_token(usage.uncached_input(), self.input)
            + per_token(usage.cache_read_tokens, self.cache_read)
            + per_token(usage.cache_write_tokens, self.cache_write)
            + per_token(usage.output_tokens, self.output)
    }
}

impl From<&PriceSpec> for Price {
    /// A configured price; cache reads and writes not given cost what plain input costs.
    fn from(p: &PriceSpec) -> Self {
        Price {
            input: p.input,
            output: p.output,
            cache_read: p.cache_read.unwrap_or(p.input),
            cache_write: p.cache_write.unwrap_or(p.input),
        }
    }
}

const fn price(input: f64, output: f64, cache_read: f64, cache_write: f64) -> Price {
    Price {
        input,
        output,
        cache_read,
        cache_write,
    }
}

/// Built-in prices, in USD per million tokens: input, output, cache read, cache write. First the
/// models the shipped configurations name, then the ones they named before, kept so that the
/// sessions that used them still show what they cost.
///
/// Sources (checked 2026-12-03, in the stored copies of the providers' pages):
/// - Anthropic, <https://platform.claude.com/docs/en/about-claude/pricing> and the model pages
///   under <https://platform.claude.com/docs/en/models/> (`opus-5-5`, `sonnet-5-5`,
///   `haiku-5-5`): standard tier, 5-minute cache writes (1-hour writes cost more: override with
///   `prices:` when they apply). Opus 5.5 (released 2026-09-22) $4 / $20, cache read $0.20,
///   write $5. Sonnet 5.5 $2 / $10, write $2.50, cache read $0.10 since 2026-10-07 (it was
///   $0.20). Haiku 5.5 is priced by prompt length: the rates here are those of prompts up to
///   100,000 tokens ($0.10 / $0.50, read $0.01, write $0.125); a longer prompt costs 5 times
///   as much ($0.50 / $2.50), which this table does not model. Every model is 1M-context with
///   no long-context surcharge.
/// - OpenAI, <https://platform.openai.com/docs/pricing>: standard tier, contexts under 270K
///   tokens; OpenAI charges nothing extra to write its cache, so a write costs plain input.
///   gpt-5.5 $5 / $30, cached $0.50; gpt-5.4-mini $0.75 / $4.50, cached $0.075; gpt-5.4-nano
///   $0.20 / $1.25, cached $0.02.
/// - The older models at their list prices of 2025 (claude-opus-4-1 is retired, gpt-5-nano
///   deprecated).
///
/// Batch, priority and data-residency rates are not modelled either.
const BUILT_IN: [(&str, Price); 12] = [
    ("claude-opus-5-5", price(4.0, 20.0, 0.2, 5.0)),
    ("claude-sonnet-5-5", price(2.0, 10.0, 0.1, 2.5)),
    ("claude-haiku-5-5", price(0.1, 0.5, 0.01, 0.125)),
    ("gpt-5.5", price(5.0, 30.0, 0.5, 5.0)),
    ("gpt-5.4-mini", price(0.75, 4.5, 0.075, 0.75)),
    ("gpt-5.4-nano", price(0.2, 1.25, 0.02, 0.2)),
    // Named by earlier shipped configurations.
    ("claude-opus-4-1", price(15.0, 75.0, 1.5, 18.75)),
    ("claude-sonnet-4-5", price(3.0, 15.0, 0.3, 3.75)),
    ("claude-haiku-4-5", price(1.0, 5.0, 0.1, 1.25)),
    ("gpt-5", price(1.25, 10.0, 0.125, 1.25)),
    ("gpt-5-mini", price(0.25, 2.0, 0.025, 0.25)),
    ("gpt-5-nano", price(0.05, 0.4, 0.005, 0.05)),
];

/// The price of `model`: from `prices` (the configured ones, by model name) first, then the
/// built-in table. A dated snapshot of a known model (`claude-sonnet-4-5-20250929`,
/// `gpt-5-2025-08-07`) has its model's price. `None` when the price is unknown: its cost is then
/// unknown too, never 0.
pub fn price_of(model: &str, prices: &SpannedMap<PriceSpec>) -> Option<Price> {
    if let Some(p) = prices.get(model) {
        return Some(Price::from(p));
    }
    if let Some(p) = prices
        .iter()
        .find(|(name, _, _)| is_snapshot_of(model, name))
    {
        return Some(Price::from(p.2));
    }
    BUILT_IN
        .iter()
        .find(|(name, _)| *name == model || is_snapshot_of(model, name))
        .map(|(_, p)| *p)
}

/// Whether `model` is `base` followed by a date (`-20250929`, `-2025-08-07`).
fn is_snapshot_of(model: &str, base: &str) -> bool {
    model
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|date| {
            date.len() >= 8
                && date.chars().all(|c| c.is_ascii_digit() || c == '-')
                && date.chars().filter(char::is_ascii_digit).count() == 8
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestra_spec::{SourceFile, parse_yaml};

    fn usage(input: u64, output: u64, read: u64, write: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: read,
            cache_write_tokens: write,
            ..Usage::default()
        }
    }

    #[test]
    fn the_shipped_models_have_prices_and_snapshots_share_them() {
        let none = SpannedMap::default();
        // Every model of Anthropic and OpenAI an alias of the shipped orchestra.yaml names has a
        // price (its local models have none).
        let shipped = include_str!("../../../orchestra.yaml");
        let aliased: Vec<&str> = shipped
            .lines()
            .filter_map(|l| l.trim().strip_prefix("models: {"))
            .flat_map(|l| l.trim_end_matches('}').split(','))
            .filter_map(|pair| pair.split_once(':').map(|(_, m)| m.trim()))
            .filter(|m| m.starts_with("claude-") || m.starts_with("gpt-"))
            .collect();
        assert_eq!(aliased.len(), 6, "{aliased:?}");
        for model in aliased {
            assert!(price_of(model, &none).is_some(), "{model}");
        }
        // And so do the ones earlier configurations named, for the sessions that used them.
        for model in [
            "claude-opus-4-1",
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
        ] {
            assert!(price_of(model, &none).is_some(), "{model}");
        }
        assert_eq!(
            price_of("claude-sonnet-4-5-20250929", &none),
            price_of("claude-sonnet-4-5", &none)
        );
        assert_eq!(
            price_of("gpt-5-2025-08-07", &none),
            price_of("gpt-5", &none)
        );
        // Another model that merely starts with a known name is not that model.
        assert_eq!(price_of("gpt-5-pro", &none), None);
        assert_eq!(price_of("gpt-5-mini-x", &none), None);
        assert_eq!(price_of("gpt-5.5-pro", &none), None);
        assert_eq!(price_of("worker", &none), None);
        assert_eq!(price_of("qwen2.5-coder:14b", &none), None);
        // gpt-5.5 is not gpt-5.
        assert_ne!(price_of("gpt-5.5", &none), price_of("gpt-5", &none));
    }

    #[test]
    fn the_current_models_cost_what_their_providers_list() {
        let none = SpannedMap::default();
        let p = |m| {
            let p = price_of(m, &none).unwrap();
            (p.input, p.output, p.cache_read, p.cache_write)
        };
        assert_eq!(p("claude-opus-5-5"), (4.0, 20.0, 0.2, 5.0));
        assert_eq!(p("claude-sonnet-5-5"), (2.0, 10.0, 0.1, 2.5));
        assert_eq!(p("claude-haiku-5-5"), (0.1, 0.5, 0.01, 0.125));
        assert_eq!(p("gpt-5.5"), (5.0, 30.0, 0.5, 5.0));
        assert_eq!(p("gpt-5.4-mini"), (0.75, 4.5, 0.075, 0.75));
        assert_eq!(p("gpt-5.4-nano"), (0.2, 1.25, 0.02, 0.2));
    }

    #[test]
    fn cost_bills_each_kind_of_token_at_its_price() {
        let sonnet = price_of("claude-sonnet-4-5", &SpannedMap::default()).unwrap();
        // 1M input of which 600K read and 200K written, 100K output:
        // 200K x $3 + 600K x $0.30 + 200K x $3.75 + 100K x $15 = 0.6 + 0.18 + 0.75 + 1.5.
        let c = sonnet.cost(&usage(1_000_000, 100_000, 600_000, 200_000));
        assert!((c - 3.03).abs() < 1e-9, "{c}");
        assert!(sonnet.cost(&Usage::default()).abs() < f64::EPSILON);
    }

    #[test]
    fn configured_prices_override_the_built_in_ones() {
        let yaml = "claude-sonnet-4-5: { input: 1, output: 2 }\nworker: { input: 4, output: 8, cache_read: 0.5 }\n";
        let prices: SpannedMap<PriceSpec> =
            parse_yaml(&SourceFile::new("p.yaml", yaml), "prices").unwrap();
        let s = price_of("claude-sonnet-4-5-20250929", &prices).unwrap();
        assert_eq!(
            (s.input, s.output, s.cache_read, s.cache_write),
            (1.0, 2.0, 1.0, 1.0)
        );
        let w = price_of("worker", &prices).unwrap();
        assert_eq!((w.cache_read, w.cache_write), (0.5, 4.0));
        let c = w.cost(&usage(2_000_000, 1_000_000, 1_000_000, 0));
        assert!((c - (4.0 + 0.5 + 8.0)).abs() < 1e-9, "{c}");
    }
}
