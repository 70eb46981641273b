//! Bearer keys. FaceTo-AI always sends `Authorization: Bearer <key>`, a bare `Bearer` when the
//! room has no key, so with no keys configured anything is accepted.

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::error::ApiError;

/// Which configured key a caller used: its position, so rate limits never hold the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub usize);

pub fn check(keys: &[Secret], headers: &HeaderMap) -> Result<Option<KeyId>, ApiError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        })
        .ok_or(ApiError::Unauthorized)?;
    // Compare against every key, without stopping at a match, so timing says nothing about which.
    let mut found = None;
    for (i, key) in keys.iter().enumerate() {
        if bool::from(key.expose().as_bytes().ct_eq(presented.as_bytes())) && found.is_none() {
            found = Some(KeyId(i));
        }
    }
    found.map(Some).ok_or(ApiError::Unauthorized)
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

    #[test]
    fn open_when_no_keys() {
        assert_eq!(check(&[], &with("Bearer")).unwrap(), None);
        assert_eq!(check(&[], &HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn keys_are_checked() {
        let keys = [Secret::new("k1"), Secret::new("k2")];
        assert_eq!(check(&keys, &with("Bearer k2")).unwrap(), Some(KeyId(1)));
        assert_eq!(check(&keys, &with("bearer  k1 ")).unwrap(), Some(KeyId(0)));
        assert!(check(&keys, &with("Bearer")).is_err());
        assert!(check(&keys, &with("Bearer k3")).is_err());
        assert!(check(&keys, &HeaderMap::new()).is_err());
    }
}
