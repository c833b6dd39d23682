//! Where traces go, read from the standard OpenTelemetry variables: `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `..._HEADERS`, `..._TIMEOUT`, `..._PROTOCOL`,
//! `OTEL_SERVICE_NAME` and `OTEL_SDK_DISABLED`, as the OpenTelemetry specification defines them.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Url;

/// Why the OpenTelemetry variables cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An endpoint that is not an `http://` or `https://` URL.
    #[error("{var} is not an http:// or https:// URL: `{value}`")]
    Endpoint {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// Headers not in the `key=value,key2=value2` form.
    #[error("{var} must be `key=value` pairs separated by commas; `{pair}` is not one")]
    Headers {
        /// The variable.
        var: &'static str,
        /// The pair at fault (its value is not repeated: it may hold a secret).
        pair: String,
    },
    /// A timeout that is not a number of milliseconds.
    #[error("{var} must be a whole number of milliseconds, not `{value}`")]
    Timeout {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// A protocol other than OTLP/HTTP with protobuf bodies.
    #[error("{var} is `{value}`; orchestra exports traces over `http/protobuf` only")]
    Protocol {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
}

/// Where and how to send traces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The full URL traces are posted to (`.../v1/traces`).
    pub endpoint: Url,
    /// Extra request headers (authentication).
    pub headers: HashMap<String, String>,
    /// How long one export may take.
    pub timeout: Duration,
    /// `service.name` of the traces.
    pub service_name: String,
}

/// The specification's default export timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The service name when `OTEL_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "orchestra";

impl Config {
    /// The configuration the variables give (looked up with `env`); `None` when neither
    /// endpoint variable is set (or `OTEL_SDK_DISABLED=true`): then no exporter is built and
    /// nothing is sent.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Config>, ConfigError> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let endpoint = match (
            get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            // The signal's own variable is the URL as it is.
            (Some(url), _) => parse_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &url)?,
            // The base one gets the signal's path.
            (None, Some(base)) => {
                let url = format!("{}/v1/traces", base.trim().trim_end_matches('/'));
                parse_url("OTEL_EXPORTER_OTLP_ENDPOINT", &url).map_err(|_| {
                    ConfigError::Endpoint {
                        var: "OTEL_EXPORTER_OTLP_ENDPOINT",
                        value: base.clone(),
                    }
                })?
            }
            (None, None) => return Ok(None),
        };
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(p) = get(var) {
                if p.trim() != "http/protobuf" {
                    return Err(ConfigError::Protocol { var, value: p });
                }
                break;
            }
        }
        let headers = match (
            get("OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
            get("OTEL_EXPORTER_OTLP_HEADERS"),
        ) {
            (Some(h), _) => parse_headers("OTEL_EXPORTER_OTLP_TRACES_HEADERS", &h)?,
            (None, Some(h)) => parse_headers("OTEL_EXPORTER_OTLP_HEADERS", &h)?,
            (None, None) => HashMap::new(),
        };
        let timeout = match (
            get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"),
            get("OTEL_EXPORTER_OTLP_TIMEOUT"),
        ) {
            (Some(t), _) => parse_timeout("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", &t)?,
            (None, Some(t)) => parse_timeout("OTEL_EXPORTER_OTLP_TIMEOUT", &t)?,
            (None, None) => DEFAULT_TIMEOUT,
        };
        let service_name = get("OTEL_SERVICE_NAME")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
        Ok(Some(Config {
            endpoint,
            headers,
            timeout,
            service_name,
        }))
    }
}

fn parse_url(var: &'static str, value: &str) -> Result<Url, ConfigError> {
    let bad = || ConfigError::Endpoint {
        var,
        value: value.to_owned(),
    };
    let url = Url::parse(value.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    Ok(url)
}

/// `key=value,key2=value2`, values percent-decoded (the W3C baggage form the spec uses).
fn parse_headers(var: &'static str, value: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut headers = HashMap::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || ConfigError::Headers {
            var,
            pair: pair.split('=').next().unwrap_or_default().to_owned(),
        };
        let (k, v) = pair.split_once('=').ok_or_else(bad)?;
        let key = k.trim();
        let valid = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            return Err(bad());
        }
        let decoded = percent_decode(v.trim()).ok_or_else(bad)?;
        headers.insert(key.to_ascii_lowercase(), decoded);
    }
    Ok(headers)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse_timeout(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| ConfigError::Timeout {
            var,
            value: value.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Option<Config>, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_env(&move |k| vars.get(k).cloned())
    }

    #[test]
    fn without_an_endpoint_there_is_nothing_to_send() {
        assert_eq!(config(&[]).unwrap(), None);
        assert_eq!(config(&[("OTEL_SERVICE_NAME", "x")]).unwrap(), None);
        assert_eq!(
            config(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_SDK_DISABLED", "true")
            ])
            .unwrap(),
            None
        );
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path_and_the_signal_one_is_taken_as_it_is() {
        let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")])
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint.as_str(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(c.service_name, "orchestra");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://b:2/custom"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Bearer%20abc, x-team = ml",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_SERVICE_NAME", "reviews"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint.as_str(), "https://b:2/custom");
        assert_eq!(c.headers["authorization"], "Bearer abc");
        assert_eq!(c.headers["x-team"], "ml");
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.service_name, "reviews");
    }

    #[test]
    fn bad_values_are_named() {
        let e = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OTEL_EXPORTER_OTLP_ENDPOINT is not an http:// or https:// URL: `localhost:4318`"
        );
        let e = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=secret,oops"),
        ])
        .unwrap_err();
        assert!(e.to_string().ends_with("`oops` is not one"), "{e}");
        assert!(!e.to_string().contains("secret"));
        let e = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "OTEL_EXPORTER_OTLP_PROTOCOL is `grpc`; orchestra exports traces over `http/protobuf` only"
        );
        let e = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ])
        .unwrap_err();
        assert!(matches!(e, ConfigError::Timeout { .. }));
    }
}
