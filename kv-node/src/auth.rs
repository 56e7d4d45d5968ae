//! Who may talk to a node: the cluster secret peers prove, and the client
//! password.
//!
//! Peers prove they hold the cluster secret with a challenge-response: both
//! sides pick a fresh random nonce, and each sends an HMAC-SHA256 of the
//! whole exchange (versions, both nonces, both node ids) under the secret,
//! with a different label per direction so that one side's proof can never
//! be replayed as the other's. The secret itself never crosses the wire,
//! a recorded exchange is useless for a later one (fresh nonces), and both
//! directions are proven: a follower checks that the node it subscribed to
//! knows the secret before it applies anything from it.
//!
//! Comparisons of proofs and passwords take the same time whatever the
//! bytes (`hmac`'s `verify_slice`, and an HMAC of both passwords under a
//! random key for the password), so timing does not leak them.

use std::path::Path;

use hmac::{Hmac, Mac};
use kv_router::NodeId;
use rand::RngCore;
use sha2::Sha256;

use crate::error::{Error, Result};

/// Length of a handshake nonce.
pub const NONCE_BYTES: usize = 32;

/// Shortest accepted secret: anything shorter is guessable.
pub const MIN_SECRET_BYTES: usize = 16;

/// A handshake nonce.
pub type Nonce = [u8; NONCE_BYTES];

type HmacSha256 = Hmac<Sha256>;

/// The cluster secret every node holds. Its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterSecret(<{} bytes>)", self.0.len())
    }
}

impl ClusterSecret {
    /// A secret from raw bytes; surrounding whitespace (a trailing newline
    /// in a file or a variable) is not part of it.
    pub fn new(bytes: impl AsRef<[u8]>) -> Result<ClusterSecret> {
        let trimmed = bytes.as_ref().trim_ascii();
        if trimmed.len() < MIN_SECRET_BYTES {
            return Err(Error::BadSecret(format!(
                "the cluster secret has {} bytes; at least {MIN_SECRET_BYTES} are needed",
                trimmed.len()
            )));
        }
        Ok(ClusterSecret(trimmed.to_vec()))
    }

    /// Reads a secret file (`[security] secret_file`).
    pub fn from_file(path: &Path) -> Result<ClusterSecret> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("reading secret file {}", path.display()), e))?;
        ClusterSecret::new(bytes)
            .map_err(|e| Error::BadSecret(format!("secret file {}: {e}", path.display())))
    }

    /// A fresh random secret (an embedded cluster makes one per run).
    pub fn random() -> ClusterSecret {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        ClusterSecret(bytes.to_vec())
    }

    fn mac(&self, label: &[u8], exchange: &Exchange) -> HmacSha256 {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail;
        // the fallback keeps this function total anyway.
        let mut mac = HmacSha256::new_from_slice(&self.0)
            .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
        mac.update(label);
        mac.update(&exchange.version.to_be_bytes());
        mac.update(&exchange.dialer_nonce);
        mac.update(&exchange.server_nonce);
        mac.update(&exchange.dialer.to_be_bytes());
        mac.update(&exchange.server.to_be_bytes());
        mac
    }

    /// The server's proof for this exchange.
    #[cfg(feature = "server")]
    pub(crate) fn server_proof(&self, exchange: &Exchange) -> Vec<u8> {
        self.mac(SERVER_LABEL, exchange)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// The dialing peer's proof for this exchange.
    pub(crate) fn dialer_proof(&self, exchange: &Exchange) -> Vec<u8> {
        self.mac(DIALER_LABEL, exchange)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Checks a server proof in constant time.
    pub(crate) fn verify_server(&self, exchange: &Exchange, proof: &[u8]) -> bool {
        self.mac(SERVER_LABEL, exchange).verify_slice(proof).is_ok()
    }

    /// Checks a dialer proof in constant time.
    #[cfg(feature = "server")]
    pub(crate) fn verify_dialer(&self, exchange: &Exchange, proof: &[u8]) -> bool {
        self.mac(DIALER_LABEL, exchange).verify_slice(proof).is_ok()
    }
}

const SERVER_LABEL: &[u8] = b"kv-handshake server proof\0";
const DIALER_LABEL: &[u8] = b"kv-handshake peer proof\0";

/// Everything both proofs of one handshake cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exchange {
    pub version: u16,
    pub dialer: NodeId,
    pub server: NodeId,
    pub dialer_nonce: Nonce,
    pub server_nonce: Nonce,
}

/// A fresh random nonce.
pub(crate) fn nonce() -> Nonce {
    let mut n = [0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut n);
    n
}

/// Whether a presented password matches the configured one, in time that
/// does not depend on where they differ: both are run through HMAC under
/// a fresh random key and the tags compared with `verify_slice`.
#[cfg(feature = "server")]
pub(crate) fn password_matches(configured: &str, presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    let key = nonce();
    let tag = |s: &str| {
        let mut mac = HmacSha256::new_from_slice(&key)
            .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
        mac.update(s.as_bytes());
        mac
    };
    let expected = tag(configured).finalize().into_bytes();
    tag(presented).verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange() -> Exchange {
        Exchange {
            version: 1,
            dialer: 2,
            server: 0,
            dialer_nonce: nonce(),
            server_nonce: nonce(),
        }
    }

    #[test]
    fn proofs_verify_only_under_the_same_secret_exchange_and_direction() {
        let secret = ClusterSecret::new("correct horse battery staple").unwrap();
        let other = ClusterSecret::new("another secret, sixteen+").unwrap();
        let ex = exchange();
        let server = secret.server_proof(&ex);
        let dialer = secret.dialer_proof(&ex);
        assert_eq!(server.len(), 32);
        assert!(secret.verify_server(&ex, &server));
        assert!(secret.verify_dialer(&ex, &dialer));
        // No reflection: one direction's proof is not the other's.
        assert!(!secret.verify_dialer(&ex, &server));
        assert!(!secret.verify_server(&ex, &dialer));
        assert!(!other.verify_server(&ex, &server));
        let mut replayed = ex.clone();
        replayed.server_nonce = nonce();
        assert!(!secret.verify_server(&replayed, &server));
        let mut claimed = ex.clone();
        claimed.dialer = 1;
        assert!(!secret.verify_dialer(&claimed, &dialer));
        assert!(!secret.verify_server(&ex, &server[..31]));
    }

    #[test]
    fn short_secrets_are_refused_and_whitespace_is_trimmed() {
        assert!(matches!(
            ClusterSecret::new("short"),
            Err(Error::BadSecret(_))
        ));
        let a = ClusterSecret::new("0123456789abcdef\n").unwrap();
        let b = ClusterSecret::new("0123456789abcdef").unwrap();
        assert_eq!(a, b);
        assert!(!format!("{a:?}").contains("0123"));
        assert_ne!(ClusterSecret::random(), ClusterSecret::random());
    }

    #[test]
    fn passwords_compare_exactly() {
        assert!(password_matches("hunter2", Some("hunter2")));
        assert!(!password_matches("hunter2", Some("hunter3")));
        assert!(!password_matches("hunter2", Some("hunter22")));
        assert!(!password_matches("hunter2", None));
    }
}
