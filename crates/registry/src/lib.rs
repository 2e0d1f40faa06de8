//! barge-registry: an OCI distribution server (distribution spec v1.1).
//!
//! The crate owns the HTTP side of a registry: routing (`route`), the
//! handlers (`handlers`), authentication (`auth`), TLS and the accept loop
//! (`server`), and the registry metadata kept beside the blobs (`storage`).
//! Blobs live in a [`barge_image::store::Store`], so the storage root is an
//! OCI image layout; the crate never writes a blob except by verifying it and
//! renaming it into `blobs/sha256/`.
//!
//! ```no_run
//! use barge_registry::{Config, Server};
//! let config = Config::new("127.0.0.1:5000".parse().unwrap(), "/var/lib/registry".into());
//! Server::bind(config)?.serve_blocking()?;
//! # Ok::<(), barge_registry::RegistryError>(())
//! ```
#![forbid(unsafe_code)]

mod auth;
mod error;
mod handlers;
mod route;
mod server;
mod storage;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use error::RegistryError;
pub use server::{Server, ServerHandle};
pub use storage::{gc, REGISTRY_PIN};

/// How the server is configured; build it with [`Config::new`] and set the
/// optional fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address to listen on (port 0 picks a free port).
    pub addr: SocketAddr,
    /// The storage root (an OCI image layout plus registry metadata).
    pub root: PathBuf,
    /// An Apache htpasswd file with bcrypt entries (`htpasswd -B`); when set,
    /// every request needs HTTP basic authentication.
    pub htpasswd: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain and key.
    pub tls: Option<TlsFiles>,
    /// Bearer-token authentication (like distribution's `auth: token`).
    pub token: Option<TokenConfig>,
    /// Allow DELETE of manifests, tags and blobs (default true).
    pub delete_enabled: bool,
    /// Do not write access log lines to stderr.
    pub quiet: bool,
}

impl Config {
    /// A configuration with no authentication, no TLS, deletes enabled and
    /// access logging on.
    pub fn new(addr: SocketAddr, root: PathBuf) -> Config {
        Config {
            addr,
            root,
            htpasswd: None,
            tls: None,
            token: None,
            delete_enabled: true,
            quiet: false,
        }
    }
}

/// PEM files for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, RSA or SEC1).
    pub key: PathBuf,
}

/// Bearer-token authentication: tokens are JWTs issued by an external token
/// server, carrying an `access` claim with the granted scopes.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The token server URL sent in the `WWW-Authenticate` challenge.
    pub realm: String,
    /// The service name: sent in the challenge and required in `aud`.
    pub service: String,
    /// The required `iss` of tokens.
    pub issuer: String,
    /// The key that verifies token signatures.
    pub key: TokenKey,
}

/// The key that verifies token signatures.
#[derive(Clone)]
pub enum TokenKey {
    /// An HS256 shared secret.
    Hmac(Vec<u8>),
    /// A PEM public key (RSA for RS256, EC P-256/P-384 for ES256/ES384).
    PublicKeyPem(Vec<u8>),
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenKey::Hmac(_) => f.write_str("Hmac(<secret>)"),
            TokenKey::PublicKeyPem(p) => write!(f, "PublicKeyPem({} bytes)", p.len()),
        }
    }
}
