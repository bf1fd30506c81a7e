//! Gossip packet framing and encryption, like Consul's `-encrypt`.
//!
//! Every datagram the gossip runtime sends goes through [`seal`] and every datagram it
//! receives through [`open`], so the SWIM core (foca) never sees ciphertext or a foreign
//! protocol version. Layout:
//!
//! ```text
//! plaintext : [version]                 [payload]
//! encrypted : [version | 0x80][nonce 12][AES-GCM(payload) + tag 16]
//! ```
//!
//! foca versions nothing and encrypts nothing (caio/foca#17), hence the version byte. The
//! encrypted flag lives in the version byte so a node without a key rejects encrypted
//! traffic (and vice versa) with a clear error instead of a decode failure deep in foca.
//! The version byte is also the AEAD associated data, so it cannot be flipped in transit.

use aes_gcm::aead::Aead;
use aes_gcm::aead::Payload;
use aes_gcm::aead::consts::U12;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, KeyInit, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore as _;

/// The gossip wire protocol version we speak (low 7 bits of the first byte).
pub const PROTOCOL_VERSION: u8 = 1;
/// Set in the first byte when the rest is `[nonce][ciphertext+tag]`.
const ENCRYPTED_FLAG: u8 = 0x80;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Bytes an encrypted frame adds to the payload (version + nonce + tag).
pub const ENCRYPTION_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

type Aes192Gcm = AesGcm<aes_gcm::aes::Aes192, U12>;

/// Errors from key parsing, keyring management and packet opening.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The key is not valid base64.
    #[error("invalid gossip key: not base64: {0}")]
    KeyNotBase64(String),
    /// The decoded key is not 16, 24 or 32 bytes.
    #[error("invalid gossip key: {0} bytes, must be 16, 24 or 32")]
    KeyLength(usize),
    /// `use`/`remove` named a key that is not installed.
    #[error("requested key is not in the keyring")]
    KeyNotInstalled,
    /// The primary key cannot be removed.
    #[error("removing the primary key is not allowed")]
    RemovePrimary,
    /// The packet is shorter than its header.
    #[error("gossip packet too short ({0} bytes)")]
    TooShort(usize),
    /// The sender speaks another protocol version.
    #[error("unsupported gossip protocol version {0}")]
    Version(u8),
    /// We have a keyring but the packet is plaintext.
    #[error("received an unencrypted gossip packet but encryption is enabled")]
    Unencrypted,
    /// We have no keyring but the packet is encrypted.
    #[error("received an encrypted gossip packet but encryption is not configured")]
    NoKeyring,
    /// No installed key authenticates the packet.
    #[error("no installed key could decrypt the gossip packet")]
    Decrypt,
}

/// One AES-GCM key, sized by its length like Consul (16 → AES-128, 24 → AES-192,
/// 32 → AES-256).
#[derive(Clone)]
struct GossipKey {
    raw: Vec<u8>,
    cipher: Cipher,
}

#[derive(Clone)]
enum Cipher {
    A128(Box<Aes128Gcm>),
    A192(Box<Aes192Gcm>),
    A256(Box<Aes256Gcm>),
}

impl GossipKey {
    fn parse(b64: &str) -> Result<Self, CryptoError> {
        let raw = B64
            .decode(b64.trim())
            .map_err(|e| CryptoError::KeyNotBase64(e.to_string()))?;
        let cipher = match raw.len() {
            16 => Cipher::A128(Box::new(Aes128Gcm::new_from_slice(&raw).expect("16 bytes"))),
            24 => Cipher::A192(Box::new(Aes192Gcm::new_from_slice(&raw).expect("24 bytes"))),
            32 => Cipher::A256(Box::new(Aes256Gcm::new_from_slice(&raw).expect("32 bytes"))),
            n => return Err(CryptoError::KeyLength(n)),
        };
        Ok(GossipKey { raw, cipher })
    }

    fn encoded(&self) -> String {
        B64.encode(&self.raw)
    }

    fn encrypt(&self, nonce: &Nonce<U12>, payload: Payload<'_, '_>) -> Vec<u8> {
        let out = match &self.cipher {
            Cipher::A128(c) => c.encrypt(nonce, payload),
            Cipher::A192(c) => c.encrypt(nonce, payload),
            Cipher::A256(c) => c.encrypt(nonce, payload),
        };
        // AES-GCM only fails on inputs of many GiB; a datagram can never get there.
        out.expect("aes-gcm encrypt of a datagram")
    }

    fn decrypt(&self, nonce: &Nonce<U12>, payload: Payload<'_, '_>) -> Option<Vec<u8>> {
        match &self.cipher {
            Cipher::A128(c) => c.decrypt(nonce, payload).ok(),
            Cipher::A192(c) => c.decrypt(nonce, payload).ok(),
            Cipher::A256(c) => c.decrypt(nonce, payload).ok(),
        }
    }
}

/// Consul's gossip keyring: one primary key that encrypts, and every installed key
/// (primary included) tried in turn to decrypt, so keys can be rotated without a
/// flag day (`keyring -install`, `-use`, `-remove`).
#[derive(Clone)]
pub struct Keyring {
    /// Installed keys; index 0 is always the primary.
    keys: Vec<GossipKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Keyring")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Keyring {
    /// A keyring whose only (and primary) key is `primary` (base64).
    pub fn new(primary: &str) -> Result<Self, CryptoError> {
        Ok(Keyring {
            keys: vec![GossipKey::parse(primary)?],
        })
    }

    /// Installs a secondary key (decrypt only). Installing an existing key is a no-op.
    pub fn install(&mut self, key: &str) -> Result<(), CryptoError> {
        let key = GossipKey::parse(key)?;
        if !self.keys.iter().any(|k| k.raw == key.raw) {
            self.keys.push(key);
        }
        Ok(())
    }

    /// Makes an installed key the primary (the one that encrypts).
    pub fn use_key(&mut self, key: &str) -> Result<(), CryptoError> {
        let key = GossipKey::parse(key)?;
        let pos = self
            .keys
            .iter()
            .position(|k| k.raw == key.raw)
            .ok_or(CryptoError::KeyNotInstalled)?;
        self.keys.swap(0, pos);
        Ok(())
    }

    /// Removes a secondary key.
    pub fn remove(&mut self, key: &str) -> Result<(), CryptoError> {
        let key = GossipKey::parse(key)?;
        match self.keys.iter().position(|k| k.raw == key.raw) {
            Some(0) => Err(CryptoError::RemovePrimary),
            Some(pos) => {
                self.keys.remove(pos);
                Ok(())
            }
            None => Err(CryptoError::KeyNotInstalled),
        }
    }

    /// The primary key, base64.
    pub fn primary(&self) -> String {
        self.keys[0].encoded()
    }

    /// Every installed key, base64, primary first.
    pub fn keys(&self) -> Vec<String> {
        self.keys.iter().map(GossipKey::encoded).collect()
    }

    fn seal(&self, payload: &[u8]) -> Vec<u8> {
        let version = [PROTOCOL_VERSION | ENCRYPTED_FLAG];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let nonce = Nonce::<U12>::from(nonce);
        let ct = self.keys[0].encrypt(
            &nonce,
            Payload {
                msg: payload,
                aad: &version,
            },
        );
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(version[0]);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    fn open(&self, packet: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if packet.len() < ENCRYPTION_OVERHEAD {
            return Err(CryptoError::TooShort(packet.len()));
        }
        let (version, rest) = packet.split_at(1);
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::<U12>::try_from(nonce).expect("12-byte slice");
        self.keys
            .iter()
            .find_map(|k| {
                k.decrypt(
                    &nonce,
                    Payload {
                        msg: ct,
                        aad: version,
                    },
                )
            })
            .ok_or(CryptoError::Decrypt)
    }
}

/// Frames `payload` for the wire: version byte, then plaintext or (with a keyring)
/// nonce + ciphertext under the primary key.
pub fn seal(keyring: Option<&Keyring>, payload: &[u8]) -> Vec<u8> {
    match keyring {
        Some(ring) => ring.seal(payload),
        None => {
            let mut out = Vec::with_capacity(payload.len() + 1);
            out.push(PROTOCOL_VERSION);
            out.extend_from_slice(payload);
            out
        }
    }
}

/// Checks the version byte and decrypts with any installed key. Plaintext is refused
/// when a keyring is configured (Consul's default `encrypt_verify_incoming = true`).
pub fn open(keyring: Option<&Keyring>, packet: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let first = *packet.first().ok_or(CryptoError::TooShort(0))?;
    let version = first & !ENCRYPTED_FLAG;
    if version != PROTOCOL_VERSION {
        return Err(CryptoError::Version(version));
    }
    match (keyring, first & ENCRYPTED_FLAG != 0) {
        (Some(ring), true) => ring.open(packet),
        (Some(_), false) => Err(CryptoError::Unencrypted),
        (None, true) => Err(CryptoError::NoKeyring),
        (None, false) => Ok(packet[1..].to_vec()),
    }
}

/// `consul keygen`: 32 random bytes from the OS-seeded CSPRNG, base64 (44 chars).
pub fn keygen() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    B64.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_is_44_chars_and_a_valid_key() {
        let k = keygen();
        assert_eq!(k.len(), 44);
        assert!(Keyring::new(&k).is_ok());
        assert_ne!(k, keygen());
    }

    #[test]
    fn key_sizes_16_24_32_accepted_others_refused() {
        for n in [16usize, 24, 32] {
            let k = B64.encode(vec![7u8; n]);
            let ring = Keyring::new(&k).unwrap();
            let pkt = seal(Some(&ring), b"hello");
            assert_eq!(pkt.len(), 5 + ENCRYPTION_OVERHEAD);
            assert_eq!(open(Some(&ring), &pkt).unwrap(), b"hello");
        }
        assert_eq!(
            Keyring::new(&B64.encode([1u8; 20])).unwrap_err(),
            CryptoError::KeyLength(20)
        );
        assert!(matches!(
            Keyring::new("not base64!"),
            Err(CryptoError::KeyNotBase64(_))
        ));
    }

    #[test]
    fn plaintext_frames_carry_the_version_byte() {
        let pkt = seal(None, b"abc");
        assert_eq!(pkt, [PROTOCOL_VERSION, b'a', b'b', b'c']);
        assert_eq!(open(None, &pkt).unwrap(), b"abc");
        assert_eq!(open(None, &[9, 1, 2]).unwrap_err(), CryptoError::Version(9));
    }

    #[test]
    fn mismatched_encryption_settings_are_refused() {
        let ring = Keyring::new(&keygen()).unwrap();
        let other = Keyring::new(&keygen()).unwrap();
        let enc = seal(Some(&ring), b"x");
        assert_eq!(open(None, &enc).unwrap_err(), CryptoError::NoKeyring);
        assert_eq!(
            open(Some(&ring), &seal(None, b"x")).unwrap_err(),
            CryptoError::Unencrypted
        );
        assert_eq!(open(Some(&other), &enc).unwrap_err(), CryptoError::Decrypt);
        // Tampering with the version byte (the AAD) breaks authentication.
        let mut bad = enc.clone();
        bad[0] ^= 0x80;
        assert!(open(Some(&ring), &bad).is_err());
    }

    #[test]
    fn keyring_rotation_install_use_remove() {
        let (k1, k2) = (keygen(), keygen());
        let mut old = Keyring::new(&k1).unwrap();
        let mut new = Keyring::new(&k2).unwrap();
        // Rollout: everyone installs k2 while k1 stays primary.
        old.install(&k2).unwrap();
        new.install(&k1).unwrap();
        assert_eq!(open(Some(&new), &seal(Some(&old), b"a")).unwrap(), b"a");
        assert_eq!(open(Some(&old), &seal(Some(&new), b"b")).unwrap(), b"b");
        old.use_key(&k2).unwrap();
        assert_eq!(old.primary(), k2);
        assert_eq!(old.keys(), vec![k2.clone(), k1.clone()]);
        assert_eq!(old.remove(&k2).unwrap_err(), CryptoError::RemovePrimary);
        old.remove(&k1).unwrap();
        assert_eq!(old.remove(&k1).unwrap_err(), CryptoError::KeyNotInstalled);
        assert_eq!(
            old.use_key(&keygen()).unwrap_err(),
            CryptoError::KeyNotInstalled
        );
        assert!(format!("{old:?}").contains("keys: 1"));
    }
}
