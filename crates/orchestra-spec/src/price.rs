//! Model prices (`prices:` in `orchestra.yaml` and pipeline files) and the cost limit: USD
//! amounts, checked where they are written.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// Prices of one model, in USD per million tokens (`prices: { MODEL: { input: 3.0, ... } }`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceSpec {
    /// Prompt tokens neither read from nor written to the prompt cache.
    #[serde(deserialize_with = "usd")]
    #[schemars(range(min = 0))]
    pub input: f64,
    /// Generated tokens.
    #[serde(deserialize_with = "usd")]
    #[schemars(range(min = 0))]
    pub output: f64,
    /// Prompt tokens read from the prompt cache (default: `input`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "usd_opt"
    )]
    #[schemars(range(min = 0))]
    pub cache_read: Option<f64>,
    /// Prompt tokens written to the prompt cache (default: `input`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "usd_opt"
    )]
    #[schemars(range(min = 0))]
    pub cache_write: Option<f64>,
}

/// Deserializes an amount of US dollars: a finite number, not negative, refused where it is
/// written otherwise.
pub fn usd<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an amount of US dollars such as `3.0`")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            // Exact up to 2^53, far beyond any price.
            #[expect(clippy::cast_precision_loss, reason = "amounts are far below 2^53")]
            Ok(v as f64)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            if v < 0 {
                return Err(E::custom(format_args!(
                    "an amount of US dollars cannot be negative (got {v})"
                )));
            }
            self.visit_u64(v.unsigned_abs())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            if !v.is_finite() {
                return Err(E::custom(format_args!(
                    "an amount of US dollars must be a finite number (got {v})"
                )));
            }
            if v < 0.0 {
                return Err(E::custom(format_args!(
                    "an amount of US dollars cannot be negative (got {v})"
                )));
            }
            Ok(v)
        }
    }
    d.deserialize_any(V)
}

/// [`usd`] for an optional amount.
pub fn usd_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    usd(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::{SourceFile, parse_yaml};

    fn parse(yaml: &str) -> Result<PriceSpec, String> {
        parse_yaml(&SourceFile::new("p.yaml", yaml), "price").map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn reads_prices_and_refuses_bad_amounts() {
        let p = parse("{ input: 3, output: 15.0, cache_read: 0.3 }").unwrap();
        assert_eq!(
            p,
            PriceSpec {
                input: 3.0,
                output: 15.0,
                cache_read: Some(0.3),
                cache_write: None
            }
        );
        assert!(
            parse("{ input: -1, output: 1 }")
                .unwrap_err()
                .contains("cannot be negative")
        );
        assert!(
            parse("{ input: .nan, output: 1 }")
                .unwrap_err()
                .contains("finite")
        );
        assert!(
            parse("{ input: 1, output: \"a lot\" }")
                .unwrap_err()
                .contains("US dollars")
        );
        assert!(
            parse("{ input: 1, output: 2, cached: 1 }")
                .unwrap_err()
                .contains("unknown key `cached`")
        );
        assert!(parse("{ input: 1 }").unwrap_err().contains("output"));
    }
}
