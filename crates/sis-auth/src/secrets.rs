//! Secrets at rest and in transit: access/secret key and token generation,
//! secret keys sealed with the operator's master key (AES-256-GCM, the access
//! key as associated data), token digests, argon2id password hashes.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("master key must be 64 hex digits (32 bytes)")]
    BadMasterKey,
    #[error("sealed secret cannot be opened with this master key")]
    Unseal,
    #[error("password hashing failed")]
    Hash,
}

/// The operator's key that seals secret keys at rest.
#[derive(Clone)]
pub struct MasterKey(Aes256Gcm);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

const SEAL_PREFIX: &str = "v1:";

impl MasterKey {
    /// From 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(s: &str) -> Result<MasterKey, SecretError> {
        let bytes = hex::decode(s.trim()).map_err(|_| SecretError::BadMasterKey)?;
        if bytes.len() != 32 {
            return Err(SecretError::BadMasterKey);
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| SecretError::BadMasterKey)?;
        Ok(MasterKey(cipher))
    }

    /// A fresh random key, as hex.
    pub fn generate_hex() -> String {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        hex::encode(k)
    }

    /// `v1:` + base64(nonce ‖ ciphertext); `bound_to` (the access key) is authenticated too.
    pub fn seal(&self, bound_to: &str, secret: &str) -> String {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: bound_to.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{SEAL_PREFIX}{}", STANDARD.encode(out))
    }

    pub fn open(&self, bound_to: &str, sealed: &str) -> Result<String, SecretError> {
        let raw = sealed
            .strip_prefix(SEAL_PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|r| r.len() > 12)
            .ok_or(SecretError::Unseal)?;
        let (nonce, ct) = raw.split_at(12);
        let pt = self
            .0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: bound_to.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Unseal)?;
        String::from_utf8(pt).map_err(|_| SecretError::Unseal)
    }
}

/// 20 upper-case letters and digits, like SIS access keys.
pub fn new_access_key() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = OsRng;
    (0..20)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// 40 letters and digits.
pub fn new_secret_key() -> String {
    Alphanumeric.sample_string(&mut OsRng, 40)
}

/// An opaque bearer token (256 random bits).
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    format!("sis1.{}", URL_SAFE_NO_PAD.encode(b))
}

/// What the store keeps of a token: its SHA-256, never the token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// argon2id with the crate's default (OWASP) parameters, PHC string.
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| SecretError::Hash)
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends about the time of one password verification, so that an unknown
/// user name answers as slowly as a wrong password.
pub fn burn_password_time(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash_password("dummy").unwrap_or_default());
    let _ = verify_password(password, phc);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_binding() {
        let k = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
        let sealed = k.seal("AK1", "secret-value");
        assert!(!sealed.contains("secret-value"));
        assert_eq!(k.open("AK1", &sealed).unwrap(), "secret-value");
        // bound to its access key, and to the master key
        assert!(k.open("AK2", &sealed).is_err());
        let other = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
        assert!(other.open("AK1", &sealed).is_err());
        assert!(k.open("AK1", "v1:AAAA").is_err());
        assert!(MasterKey::from_hex("abcd").is_err());
        assert!(MasterKey::from_hex(&"z".repeat(64)).is_err());
    }

    #[test]
    fn keys_and_tokens() {
        let ak = new_access_key();
        assert_eq!(ak.len(), 20);
        assert!(ak
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert_eq!(new_secret_key().len(), 40);
        assert_ne!(new_token(), new_token());
        assert_eq!(token_digest("t").len(), 64);
    }

    #[test]
    fn passwords() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
