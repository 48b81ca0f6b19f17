//! Secrets: signing secrets encrypted at rest, API keys stored as hashes, and the master key.
//!
//! Signing secrets must be recoverable (Herald signs with them), so they are encrypted with
//! XChaCha20-Poly1305 under the master key, with a random 24-byte nonce and the webhook id as
//! associated data, so a ciphertext copied onto another row does not decrypt. A webhook's
//! custom headers are sealed the same way, under `<webhook id>:headers`, so a sealed header
//! blob never opens as a signing secret, nor a secret as headers. API key secrets
//! are 256 random bits, so a plain SHA-256 is the right hash (a slow password hash buys
//! nothing against a key that cannot be guessed) and keeps authentication cheap.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Config, DatabaseUrl, MasterKey};
use crate::domain::headers::CustomHeaders;

const NONCE_LEN: usize = 24;
pub const SIGNING_SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("the system random number generator failed: {0}")]
    Random(String),
    #[error("a stored secret could not be decrypted (wrong HERALD_MASTER_KEY?)")]
    Decrypt,
    #[error("cannot use the master key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("the master key file {path} is not valid: {message}")]
    KeyFileInvalid { path: String, message: String },
    #[error("HERALD_MASTER_KEY must be set when the database is not embedded")]
    MissingMasterKey,
    #[error("stored custom headers decrypted but are not valid headers")]
    InvalidHeaders,
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], SecretsError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| SecretsError::Random(e.to_string()))?;
    Ok(buf)
}

/// Encrypts and decrypts signing secrets with the master key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl SecretBox {
    pub fn new(key: &MasterKey) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&key.0.into()),
        }
    }

    /// `nonce || ciphertext+tag`, bound to `context` (the owning row's id).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>, SecretsError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let nonce = XNonce::from(nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Decrypt)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, blob: &[u8], context: &str) -> Result<Vec<u8>, SecretsError> {
        let (nonce, sealed) = blob.split_at_checked(NONCE_LEN).ok_or(SecretsError::Decrypt)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretsError::Decrypt)?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Decrypt)
    }
}

/// What a webhook's sealed custom headers are bound to: its id, in a context of their own.
fn headers_context(webhook: &str) -> String {
    format!("{webhook}:headers")
}

impl SecretBox {
    /// A webhook's custom headers sealed for its row; `None` when there are none (stored as
    /// NULL, so a webhook without headers costs its deliveries nothing).
    pub fn seal_headers(
        &self,
        headers: &CustomHeaders,
        webhook: &str,
    ) -> Result<Option<Vec<u8>>, SecretsError> {
        if headers.is_empty() {
            return Ok(None);
        }
        let plain = headers.to_json().to_string();
        self.seal(plain.as_bytes(), &headers_context(webhook)).map(Some)
    }

    /// Opens what [`SecretBox::seal_headers`] sealed for `webhook` (`None`: no headers).
    pub fn open_headers(&self, sealed: Option<&[u8]>, webhook: &str) -> Result<CustomHeaders, SecretsError> {
        let Some(sealed) = sealed else {
            return Ok(CustomHeaders::default());
        };
        let plain = self.open(sealed, &headers_context(webhook))?;
        CustomHeaders::from_stored(&plain).ok_or(SecretsError::InvalidHeaders)
    }
}

/// A fresh `whsec_<base64 of 32 random bytes>` signing secret.
pub fn new_signing_secret() -> Result<String, SecretsError> {
    let bytes = random_bytes::<32>()?;
    Ok(format!(
        "{SIGNING_SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// The last four characters, shown so a user can tell secrets apart without seeing them.
pub fn last4(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// How long a [`new_token`] is: 32 bytes in URL-safe base64 without padding.
pub const TOKEN_LEN: usize = 43;

/// A fresh bearer token (an API key's secret, a dashboard session, a portal link): 256 random
/// bits, URL-safe base64.
pub fn new_token() -> Result<String, SecretsError> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// What is stored of a token: its SHA-256, so a copy of the database lets no one in.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Constant-time comparison of a presented secret with a stored hash.
pub fn api_key_matches(secret: &str, stored_hash: &[u8]) -> bool {
    let presented = Sha256::digest(secret.as_bytes());
    presented.as_slice().ct_eq(stored_hash).into()
}

/// The master key from the config or, for the embedded store, from `master.key` in the data
/// directory, generated (mode 0600) on first use so that trying Herald needs no setup.
pub fn load_or_create_master_key(config: &Config) -> Result<MasterKey, SecretsError> {
    if let Some(key) = &config.master_key {
        return Ok(key.clone());
    }
    match &config.database_url {
        DatabaseUrl::Postgres(_) => Err(SecretsError::MissingMasterKey),
        DatabaseUrl::Sqlite(_) => {
            let dir = config.database_url.data_dir().unwrap_or(Path::new("."));
            key_file(&dir.join("master.key"))
        }
    }
}

fn key_file(path: &Path) -> Result<MasterKey, SecretsError> {
    let shown = path.display().to_string();
    let io = |source| SecretsError::KeyFile {
        path: shown.clone(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::parse(&text).map_err(|message| SecretsError::KeyFileInvalid {
            path: shown.clone(),
            message,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let key = MasterKey(random_bytes::<32>()?);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            match options.open(path) {
                Ok(mut file) => {
                    writeln!(file, "{}", key.to_base64()).map_err(io)?;
                    file.sync_all().map_err(io)?;
                    Ok(key)
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => key_file(path),
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_context() {
        let sealed_box = SecretBox::new(&MasterKey([1; 32]));
        let blob = sealed_box.seal(b"whsec_abc", "wh_1").expect("seal");
        assert_eq!(sealed_box.open(&blob, "wh_1").expect("open"), b"whsec_abc");
        assert!(sealed_box.open(&blob, "wh_2").is_err());
        assert!(SecretBox::new(&MasterKey([2; 32])).open(&blob, "wh_1").is_err());
        assert!(!blob.windows(9).any(|w| w == b"whsec_abc"));
    }

    #[test]
    fn sealed_headers_open_only_as_headers_of_the_same_webhook() {
        let sealed_box = SecretBox::new(&MasterKey([1; 32]));
        let headers = CustomHeaders::parse(&serde_json::json!({"X-Api-Key": "hunter2"})).expect("valid");
        let blob = sealed_box
            .seal_headers(&headers, "wh_1")
            .expect("seal")
            .expect("some headers");
        assert!(!blob.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            sealed_box.open_headers(Some(&blob), "wh_1").expect("open"),
            headers
        );
        assert!(sealed_box.open_headers(Some(&blob), "wh_2").is_err());
        assert!(
            sealed_box.open(&blob, "wh_1").is_err(),
            "a header blob never opens as a signing secret"
        );
        let secret = sealed_box.seal(b"whsec_abc", "wh_1").expect("seal");
        assert!(
            sealed_box.open_headers(Some(&secret), "wh_1").is_err(),
            "a signing secret never opens as headers"
        );
        assert_eq!(
            sealed_box
                .seal_headers(&CustomHeaders::default(), "wh_1")
                .expect("seal"),
            None
        );
        assert!(sealed_box.open_headers(None, "wh_1").expect("none").is_empty());
    }

    #[test]
    fn signing_secrets_are_32_random_bytes_in_base64() {
        let s = new_signing_secret().expect("random");
        let body = s.strip_prefix("whsec_").expect("prefix");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("base64");
        assert_eq!(bytes.len(), 32);
        assert_ne!(s, new_signing_secret().expect("random"));
        assert_eq!(last4("whsec_abcdef"), "cdef");
    }

    #[test]
    fn tokens_are_token_len_characters_and_differ() {
        let token = new_token().expect("random");
        assert_eq!(token.len(), TOKEN_LEN);
        assert_ne!(token, new_token().expect("random"));
    }

    #[test]
    fn api_key_hashes_match_only_their_secret() {
        let hash = hash_token("s3cret");
        assert!(api_key_matches("s3cret", &hash));
        assert!(!api_key_matches("s3cres", &hash));
    }

    #[cfg(unix)]
    #[test]
    fn the_generated_master_key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data/master.key");
        let first = key_file(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(key_file(&path).expect("reuse"), first);
    }
}
