//! API keys. FaceTo-AI always sends `Authorization: Bearer <key>`, a bare `Bearer` when the
//! room has no key, so with no keys configured anything is accepted. Other dialects send the key
//! raw in `Authorization` (MAVI) or in `X-Api-Key` (Reka); any of them is read, on any route: a
//! key is checked the same wherever it arrives.

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use crate::config::ApiKey;
use crate::error::ApiError;

/// Which key a caller used, as a keyed hash of it: rate limits never hold the key itself, and a
/// key keeps its identity (and its rate-limit bucket) when a reload adds or removes others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub u64);

impl KeyId {
    pub fn of(key: &str) -> Self {
        use std::hash::{BuildHasher, Hasher};
        // Random per process, so the ids say nothing about the keys outside it.
        static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        let mut h = SEED.get_or_init(Default::default).build_hasher();
        h.write(key.as_bytes());
        Self(h.finish())
    }
}

/// The key a caller presented: `Authorization: Bearer <key>`, a raw `Authorization: <key>`, or
/// `X-Api-Key: <key>`. A bare `Bearer` presents none.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        return match value.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => Some(key.trim()),
            Some(_) => None,
            None if value.eq_ignore_ascii_case("bearer") || value.is_empty() => None,
            None => Some(value),
        };
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Who a checked key is: its id (for rate limits) and its tenant (`""`: the one shared tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub key: KeyId,
    pub tenant: String,
}

/// `Ok(None)`: no keys are configured, anything is accepted (and everything is one tenant).
pub fn check(keys: &[ApiKey], presented: Option<&str>) -> Result<Option<Holder>, ApiError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let presented = presented.ok_or(ApiError::Unauthorized)?;
    // Compare against every key, without stopping at a match, so timing says nothing about which.
    let mut found = None;
    for key in keys {
        if bool::from(key.secret().expose().as_bytes().ct_eq(presented.as_bytes())) {
            found = Some(key.tenant());
        }
    }
    match found {
        Some(tenant) => Ok(Some(Holder {
            key: KeyId::of(presented),
            tenant: tenant.to_string(),
        })),
        None => Err(ApiError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    fn check_with(keys: &[ApiKey], auth: &str) -> Result<Option<KeyId>, ApiError> {
        let headers = with(auth);
        check(keys, presented_key(&headers)).map(|h| h.map(|h| h.key))
    }

    #[test]
    fn open_when_no_keys() {
        assert_eq!(check_with(&[], "Bearer").unwrap(), None);
        assert_eq!(check(&[], presented_key(&HeaderMap::new())).unwrap(), None);
    }

    #[test]
    fn keys_are_checked() {
        let keys = [ApiKey::from("k1"), ApiKey::from("k2")];
        assert_eq!(
            check_with(&keys, "Bearer k2").unwrap(),
            Some(KeyId::of("k2"))
        );
        assert_eq!(
            check_with(&keys, "bearer  k1 ").unwrap(),
            Some(KeyId::of("k1"))
        );
        assert_ne!(KeyId::of("k1"), KeyId::of("k2"));
        assert!(check_with(&keys, "Bearer").is_err());
        assert!(check_with(&keys, "Bearer k3").is_err());
        assert!(check(&keys, presented_key(&HeaderMap::new())).is_err());
    }

    #[test]
    fn a_key_is_read_from_each_dialects_header() {
        let keys = [ApiKey::from("k1")];
        assert_eq!(check_with(&keys, "k1").unwrap(), Some(KeyId::of("k1")));
        assert!(check_with(&keys, "Basic k1").is_err());
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("k1"));
        assert_eq!(
            check(&keys, presented_key(&h)).unwrap().map(|h| h.key),
            Some(KeyId::of("k1"))
        );
    }

    #[test]
    fn a_scoped_key_names_its_tenant() {
        let keys: Vec<ApiKey> = toml::from_str::<toml::Value>(
            "keys = [\"shared\", { key = \"k-acme\", tenant = \"acme\" }]",
        )
        .unwrap()["keys"]
            .clone()
            .try_into()
            .unwrap();
        let holder = |k: &str| check(&keys, Some(k)).unwrap().unwrap().tenant;
        assert_eq!(holder("k-acme"), "acme");
        assert_eq!(holder("shared"), "");
        assert!(check(&keys, Some("acme")).is_err());
    }
}
