//! Values that must never reach a log line or `check-config`'s output.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that must never reach a log line or `check-config`'s output.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A URL as it may be shown: a password in it (`user:password@`) and the value of every query
/// parameter but `api-version` replaced by `<redacted>`. Text that is no URL comes back whole.
pub fn redact_url(raw: &str) -> String {
    let Ok(url) = url::Url::parse(raw) else {
        return raw.to_string();
    };
    let mut shown = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        shown.push_str(url.username());
        if url.password().is_some() {
            shown.push_str(":<redacted>");
        }
        shown.push('@');
    }
    shown.push_str(url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    if url.query().is_some() {
        let pairs: Vec<String> = url
            .query_pairs()
            .map(|(k, v)| match &*k {
                "api-version" => format!("{k}={v}"),
                _ => format!("{k}=<redacted>"),
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

/// One accepted API key. A bare string is a key of the one shared tenant; a table
/// `{ key = "...", tenant = "acme" }` scopes it: what its callers put in the video library is
/// visible only to keys of the same tenant.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ApiKey {
    Shared(Secret),
    Scoped(ScopedKey),
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedKey {
    pub key: Secret,
    pub tenant: String,
}

impl ApiKey {
    pub fn secret(&self) -> &Secret {
        match self {
            Self::Shared(key) => key,
            Self::Scoped(scoped) => &scoped.key,
        }
    }

    /// The tenant this key belongs to; `""` for the one shared tenant.
    pub fn tenant(&self) -> &str {
        match self {
            Self::Shared(_) => "",
            Self::Scoped(scoped) => &scoped.tenant,
        }
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        Self::Shared(Secret::new(key))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shared(key) => key.fmt(f),
            Self::Scoped(s) => write!(f, "{{ key = {:?}, tenant = {:?} }}", s.key, s.tenant),
        }
    }
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn a_urls_secrets_are_not_shown() {
        assert_eq!(
            super::redact_url(
                "https://bob:hunter2@llm.example/v1?key=sk-123&api-version=2024-10-21"
            ),
            "https://bob:<redacted>@llm.example/v1?key=<redacted>&api-version=2024-10-21"
        );
        assert_eq!(
            super::redact_url("http://127.0.0.1:8000/v1"),
            "http://127.0.0.1:8000/v1"
        );
    }
}
