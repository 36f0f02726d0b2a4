//! The token that guards every request changing something.

use axum::http::{header, HeaderMap};

/// 128 random bits from the operating system, as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    // Without the OS's randomness there is no safe token: better to stop than to guess one.
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the request carries the token, as `Authorization: Bearer TOKEN`
/// or `X-Ferry-Token: TOKEN`. Compared in constant time.
pub fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let plain = headers.get("x-ferry-token").and_then(|v| v.to_str().ok()).map(str::trim);
    bearer.or(plain).is_some_and(|given| same(given.as_bytes(), token.as_bytes()))
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted() {
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers, "secret"));
        headers.insert(header::AUTHORIZATION, "Bearer secre".parse().unwrap());
        assert!(!authorized(&headers, "secret"));
        headers.insert(header::AUTHORIZATION, "Bearer secret".parse().unwrap());
        assert!(authorized(&headers, "secret"));
        let mut headers = HeaderMap::new();
        headers.insert("x-ferry-token", "secret".parse().unwrap());
        assert!(authorized(&headers, "secret"));
        assert_eq!(random_token().len(), 32);
        assert_ne!(random_token(), random_token());
    }
}
