//! The capability: 256 random bits, hex-encoded, that a front door must
//! present. It lives in the child's environment and dies with the broker, so
//! a replay after `exec` ends reaches no one. It is never written to a file,
//! argv or a log, and is compared only in constant time.

use rand::TryRngCore as _;

use crate::secret::Secret;

/// A fresh capability from the operating system's CSPRNG.
pub fn generate() -> Result<Secret, std::io::Error> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(bytes.as_mut())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut hex = String::with_capacity(64);
    for b in bytes.iter() {
        hex.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    Ok(Secret::new(hex))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_64_hex_digits_and_distinct() {
        let a = generate().expect("rng");
        let b = generate().expect("rng");
        assert_eq!(a.len(), 64);
        assert!(a.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!a.ct_eq(b.expose().as_bytes()));
    }
}
