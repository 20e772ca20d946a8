//! Generation of API keys: 256 random bits from the operating system's CSPRNG, URL-safe text.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use rand::rngs::OsRng;

/// A new key such as `ck_` followed by 43 characters. Shown once; only its hash is kept.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.try_fill_bytes(&mut bytes).expect("the operating system's random source is available");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_long_distinct_and_url_safe() {
        let a = super::generate("ck_");
        let b = super::generate("ck_");
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 43);
        assert!(a[3..].chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
