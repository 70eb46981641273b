//! API keys. FaceTo-AI always sends `Authorization: Bearer <key>`, a bare `Bearer` when the
//! room has no key, so with no keys configured anything is accepted. Other dialects send the key
//! raw in `Authorization` (MAVI) or in `X-Api-Key` (Reka); any of them is read, on any route: a
//! key is checked the same wherever it arrives. What a browser fetches without headers (a
//! `<video src>`, an `<img src>`) carries a signed link instead (`media_link`), never the key.

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

/// How long a media link lasts: an afternoon's viewing. Links are made for the hour, so the same
/// video's link is the same URL (and cached by the browser) for an hour of page loads.
const LINK_LIFETIME_S: i64 = 6 * 3600;

/// The query (`expires=…&sig=…`) that lets a browser fetch `video`'s media (its source, its
/// keyframes) without a key, for six to seven hours from `now` (Unix seconds). Signed with a
/// secret derived from the configured keys, so replicas sharing a config agree on it and a key
/// change revokes every link; the tenant is signed in, not written out. Empty when no keys are
/// configured: nothing is asked for then.
pub fn media_link(keys: &[ApiKey], tenant: &str, video: &str, now: i64) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let expires = (now / 3600) * 3600 + LINK_LIFETIME_S + 3600;
    format!(
        "expires={expires}&sig={}",
        link_signature(keys, tenant, video, expires)
    )
}

/// Whether `sig` is this server's signature of `video` for `tenant`, still unexpired at `now`.
pub fn media_link_valid(
    keys: &[ApiKey],
    tenant: &str,
    video: &str,
    expires: i64,
    sig: &str,
    now: i64,
) -> bool {
    if keys.is_empty() {
        return true;
    }
    let expected = link_signature(keys, tenant, video, expires);
    now < expires && bool::from(expected.as_bytes().ct_eq(sig.as_bytes()))
}

fn link_signature(keys: &[ApiKey], tenant: &str, video: &str, expires: i64) -> String {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let mut secret = Sha256::new();
    secret.update(b"chatapi media links\0");
    for key in keys {
        secret.update(key.secret().expose().as_bytes());
        secret.update([0]);
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&secret.finalize()) else {
        // HMAC takes a key of any length; this arm is never taken.
        return String::new();
    };
    mac.update(format!("{tenant}\0{video}\0{expires}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
    fn media_links_are_bound_to_tenant_video_and_time() {
        let keys: Vec<ApiKey> =
            serde_json::from_value(serde_json::json!([{"key": "sk-a", "tenant": "acme"}])).unwrap();
        let now = 1_800_000_000;
        let link = media_link(&keys, "acme", "vid_1", now);
        let (expires, sig) = link
            .strip_prefix("expires=")
            .and_then(|l| l.split_once("&sig="))
            .unwrap();
        let expires: i64 = expires.parse().unwrap();
        assert!(expires - now >= LINK_LIFETIME_S, "{link}");
        assert!(media_link_valid(&keys, "acme", "vid_1", expires, sig, now));
        assert!(!media_link_valid(
            &keys, "acme", "vid_1", expires, sig, expires
        ));
        assert!(!media_link_valid(
            &keys, "other", "vid_1", expires, sig, now
        ));
        assert!(!media_link_valid(&keys, "acme", "vid_2", expires, sig, now));
        assert!(!media_link_valid(
            &keys,
            "acme",
            "vid_1",
            expires + 1,
            sig,
            now
        ));
        let rotated: Vec<ApiKey> =
            serde_json::from_value(serde_json::json!([{"key": "sk-b", "tenant": "acme"}])).unwrap();
        assert!(!media_link_valid(
            &rotated, "acme", "vid_1", expires, sig, now
        ));
        assert_eq!(media_link(&[], "", "vid_1", now), "");
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
