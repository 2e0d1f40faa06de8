//! Authentication: htpasswd (HTTP basic with bcrypt entries) and bearer
//! tokens (JWTs with an `access` claim, like distribution's `auth: token`).
//!
//! This module decides who may do what; it does not touch storage. bcrypt is
//! slow by design, so successful verifications are cached per (user,
//! password, stored hash) — keyed by a sha256, so no password is kept.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use axum::http::{header, Method};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::error::{ApiError, Code, RegistryError};
use crate::route::Route;
use crate::{TokenConfig, TokenKey};

/// The basic-auth realm.
pub const BASIC_REALM: &str = "barge-registry";

/// Parsed htpasswd entries: user → bcrypt hash.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    cache: Mutex<HashSet<[u8; 32]>>,
}

impl Htpasswd {
    /// Reads an htpasswd file; only bcrypt entries are accepted.
    pub fn load(path: &Path) -> Result<Htpasswd, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|e| RegistryError::Htpasswd {
            path: path.to_path_buf(),
            reason: format!("cannot read it: {e}"),
        })?;
        Htpasswd::parse(&text).map_err(|reason| RegistryError::Htpasswd {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses htpasswd text (`user:hash` lines; `#` comments and blank lines
    /// skipped).
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: expected user:hash", i + 1));
            };
            if !(hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$")) {
                return Err(format!(
                    "line {} (user {user:?}): only bcrypt entries are supported; \
                     recreate the entry with `htpasswd -B`",
                    i + 1
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Htpasswd {
            users,
            cache: Mutex::new(HashSet::new()),
        })
    }

    /// True if `user`/`password` match an entry. Blocking (bcrypt).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let mut h = Sha256::new();
        for part in [user.as_bytes(), password.as_bytes(), hash.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let key: [u8; 32] = h.finalize().into();
        if let Ok(c) = self.cache.lock() {
            if c.contains(&key) {
                return true;
            }
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            if let Ok(mut c) = self.cache.lock() {
                if c.len() > 4096 {
                    c.clear();
                }
                c.insert(key);
            }
        }
        ok
    }
}

/// Decodes `Authorization: Basic ...` into (user, password).
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// A verifier of bearer tokens.
pub struct TokenAuth {
    config: TokenConfig,
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuth")
            .field("config", &self.config)
            .finish()
    }
}

/// One entry of the `access` claim.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Access {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The resource name.
    pub name: String,
    /// Granted actions.
    #[serde(default)]
    pub actions: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    access: Vec<Access>,
}

/// What a request needs: resource type, name, actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `repository` or `registry`.
    pub kind: &'static str,
    /// The resource name.
    pub name: String,
    /// Required actions (all of them).
    pub actions: Vec<&'static str>,
}

impl Scope {
    /// The scope string for a challenge: `repository:name:pull,push`.
    pub fn to_challenge(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

/// The scope a request needs; `None` for `/v2/` (any valid token).
pub fn required_scope(method: &Method, route: &Route) -> Option<Scope> {
    if *route == Route::Catalog {
        return Some(Scope {
            kind: "registry",
            name: "catalog".into(),
            actions: vec!["*"],
        });
    }
    let name = route.repo()?.to_string();
    let actions = match *method {
        Method::GET | Method::HEAD => vec!["pull"],
        Method::DELETE => match route {
            // Cancelling an upload is part of pushing.
            Route::Upload(..) => vec!["pull", "push"],
            _ => vec!["delete"],
        },
        _ => vec!["pull", "push"],
    };
    Some(Scope {
        kind: "repository",
        name,
        actions,
    })
}

/// True if the granted `access` entries cover every action of `scope`.
pub fn access_allows(access: &[Access], scope: &Scope) -> bool {
    scope.actions.iter().all(|want| {
        access.iter().any(|a| {
            a.kind == scope.kind
                && a.name == scope.name
                && a.actions.iter().any(|g| g == want || g == "*")
        })
    })
}

impl TokenAuth {
    /// Prepares verification with the configured key.
    pub fn new(config: TokenConfig) -> Result<TokenAuth, RegistryError> {
        let (key, algs) = match &config.key {
            TokenKey::Hmac(secret) => {
                if secret.is_empty() {
                    return Err(RegistryError::TokenKey {
                        reason: "the HMAC secret is empty".into(),
                    });
                }
                (DecodingKey::from_secret(secret), vec![Algorithm::HS256])
            }
            TokenKey::PublicKeyPem(pem) => {
                if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
                    (
                        k,
                        vec![
                            Algorithm::RS256,
                            Algorithm::RS384,
                            Algorithm::RS512,
                            Algorithm::PS256,
                            Algorithm::PS384,
                            Algorithm::PS512,
                        ],
                    )
                } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
                    (k, vec![Algorithm::ES256, Algorithm::ES384])
                } else {
                    return Err(RegistryError::TokenKey {
                        reason: "not a PEM RSA or EC public key or certificate; give the \
                                 token server's public key (openssl x509 -pubkey -noout -in cert.pem)"
                            .into(),
                    });
                }
            }
        };
        let mut validation = Validation::new(algs[0]);
        validation.algorithms = algs;
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[config.service.as_str()]);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Ok(TokenAuth {
            config,
            key,
            validation,
        })
    }

    /// The `WWW-Authenticate` value for a challenge.
    pub fn challenge(&self, scope: Option<&Scope>, error: Option<&str>) -> String {
        let mut s = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.config.realm, self.config.service
        );
        if let Some(sc) = scope {
            s.push_str(&format!(",scope=\"{}\"", sc.to_challenge()));
        }
        if let Some(e) = error {
            s.push_str(&format!(",error=\"{e}\""));
        }
        s
    }

    /// Checks the `Authorization` header against the scope a request needs.
    pub fn check(
        &self,
        authorization: Option<&str>,
        scope: Option<&Scope>,
    ) -> Result<(), ApiError> {
        let unauthorized = |msg: &str, err: Option<&str>| {
            ApiError::new(Code::Unauthorized, msg)
                .with_header(header::WWW_AUTHENTICATE, &self.challenge(scope, err))
        };
        let Some(token) = authorization.and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        }) else {
            return Err(unauthorized("authentication required", None));
        };
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| unauthorized(&format!("invalid token: {e}"), Some("invalid_token")))?;
        match scope {
            None => Ok(()),
            Some(sc) if access_allows(&data.claims.access, sc) => Ok(()),
            Some(sc) => Err(unauthorized(
                &format!("the token does not grant {}", sc.to_challenge()),
                Some("insufficient_scope"),
            )),
        }
    }

    /// True if the token in `authorization` grants `pull` on `repo` (used to
    /// decide a cross-repository mount).
    pub fn can_pull(&self, authorization: Option<&str>, repo: &str) -> bool {
        let scope = Scope {
            kind: "repository",
            name: repo.to_string(),
            actions: vec!["pull"],
        };
        self.check(authorization, Some(&scope)).is_ok()
    }
}

/// The 401 for basic auth.
pub fn basic_challenge(message: &str) -> ApiError {
    ApiError::new(Code::Unauthorized, message).with_header(
        header::WWW_AUTHENTICATE,
        &format!("Basic realm=\"{BASIC_REALM}\""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_accepts_only_bcrypt() {
        let h = bcrypt::hash("pw", 4).unwrap();
        let ht = Htpasswd::parse(&format!("# c\n\nalice:{h}\n")).unwrap();
        assert!(ht.verify("alice", "pw"));
        assert!(ht.verify("alice", "pw"), "cached");
        assert!(!ht.verify("alice", "px"));
        assert!(!ht.verify("bob", "pw"));
        let e = Htpasswd::parse("bob:{SHA}abc").unwrap_err();
        assert!(e.contains("htpasswd -B"), "{e}");
        assert!(Htpasswd::parse("nocolon").is_err());
    }

    #[test]
    fn basic_header_decodes() {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("u:p:q")
        );
        assert_eq!(parse_basic(&v), Some(("u".into(), "p:q".into())));
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn scopes_follow_methods() {
        let m = Route::Manifest("a/b".into(), "t".into());
        assert_eq!(
            required_scope(&Method::GET, &m).unwrap().to_challenge(),
            "repository:a/b:pull"
        );
        assert_eq!(
            required_scope(&Method::PUT, &m).unwrap().to_challenge(),
            "repository:a/b:pull,push"
        );
        assert_eq!(
            required_scope(&Method::DELETE, &m).unwrap().to_challenge(),
            "repository:a/b:delete"
        );
        assert_eq!(
            required_scope(&Method::GET, &Route::Catalog)
                .unwrap()
                .to_challenge(),
            "registry:catalog:*"
        );
        assert_eq!(required_scope(&Method::GET, &Route::Base), None);
    }

    #[test]
    fn access_claims_must_cover_every_action() {
        let a = |n: &str, acts: &[&str]| Access {
            kind: "repository".into(),
            name: n.into(),
            actions: acts.iter().map(|s| s.to_string()).collect(),
        };
        let push = required_scope(&Method::PUT, &Route::UploadStart("x".into())).unwrap();
        assert!(access_allows(&[a("x", &["pull", "push"])], &push));
        assert!(access_allows(&[a("x", &["*"])], &push));
        assert!(!access_allows(&[a("x", &["pull"])], &push));
        assert!(!access_allows(&[a("y", &["pull", "push"])], &push));
        assert!(access_allows(
            &[a("x", &["pull"]), a("x", &["push"])],
            &push
        ));
    }

    fn token_auth() -> TokenAuth {
        TokenAuth::new(TokenConfig {
            realm: "https://auth/token".into(),
            service: "reg".into(),
            issuer: "iss".into(),
            key: TokenKey::Hmac(b"secret".to_vec()),
        })
        .unwrap()
    }

    fn sign(claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn openssl(args: &[&str]) {
        let st = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl {args:?}");
    }

    #[test]
    fn public_key_and_certificate_pems_verify_rs256_and_es256() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &p("ec.key"),
        ]);
        openssl(&["pkey", "-in", &p("ec.key"), "-pubout", "-out", &p("ec.pub")]);
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &p("rsa.key"),
        ]);
        openssl(&[
            "req",
            "-x509",
            "-key",
            &p("rsa.key"),
            "-subj",
            "/CN=token",
            "-days",
            "1",
            "-out",
            &p("rsa.crt"),
        ]);
        let now = jsonwebtoken::get_current_timestamp();
        let claims = serde_json::json!({"iss":"iss","aud":"reg","exp":now+60,
            "access":[{"type":"repository","name":"x","actions":["pull"]}]});
        let scope = required_scope(&Method::GET, &Route::Tags("x".into()));
        for (alg, key, public) in [
            (Algorithm::ES256, "ec.key", "ec.pub"),
            (Algorithm::RS256, "rsa.key", "rsa.crt"),
        ] {
            let pem = std::fs::read(p(key)).unwrap();
            let enc = match alg {
                Algorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap(),
                _ => jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
            };
            let token =
                jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, &enc).unwrap();
            let t = TokenAuth::new(TokenConfig {
                realm: "r".into(),
                service: "reg".into(),
                issuer: "iss".into(),
                key: TokenKey::PublicKeyPem(std::fs::read(p(public)).unwrap()),
            })
            .unwrap();
            let bearer = format!("Bearer {token}");
            assert!(t.check(Some(&bearer), scope.as_ref()).is_ok(), "{alg:?}");
            // An HS256 token must not pass with the public key as a secret.
            let forged = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(&std::fs::read(p(public)).unwrap()),
            )
            .unwrap();
            assert!(t
                .check(Some(&format!("Bearer {forged}")), scope.as_ref())
                .is_err());
        }
        let e = TokenAuth::new(TokenConfig {
            realm: "r".into(),
            service: "reg".into(),
            issuer: "iss".into(),
            key: TokenKey::PublicKeyPem(b"not a pem".to_vec()),
        })
        .unwrap_err();
        assert!(e.to_string().contains("public key"), "{e}");
    }

    #[test]
    fn tokens_are_checked_for_issuer_audience_expiry_and_access() {
        let t = token_auth();
        let now = jsonwebtoken::get_current_timestamp();
        let scope = required_scope(&Method::GET, &Route::Tags("x".into()));
        let good = serde_json::json!({"iss":"iss","aud":"reg","exp":now+60,"nbf":now-1,
            "access":[{"type":"repository","name":"x","actions":["pull"]}]});
        let bearer = |c, s: &[u8]| format!("Bearer {}", sign(c, s));
        assert!(t
            .check(Some(&bearer(good.clone(), b"secret")), scope.as_ref())
            .is_ok());
        let mut aud_list = good.clone();
        aud_list["aud"] = serde_json::json!(["other", "reg"]);
        assert!(t
            .check(Some(&bearer(aud_list, b"secret")), scope.as_ref())
            .is_ok());
        assert!(t
            .check(Some(&bearer(good.clone(), b"wrong")), scope.as_ref())
            .is_err());
        for (k, v) in [
            ("iss", serde_json::json!("evil")),
            ("aud", serde_json::json!("other")),
            ("exp", serde_json::json!(now - 3600)),
            ("nbf", serde_json::json!(now + 3600)),
        ] {
            let mut c = good.clone();
            c[k] = v;
            let e = t
                .check(Some(&bearer(c, b"secret")), scope.as_ref())
                .unwrap_err();
            assert_eq!(e.code, Code::Unauthorized, "{k}");
        }
        let push = required_scope(&Method::POST, &Route::UploadStart("x".into()));
        let e = t
            .check(Some(&bearer(good, b"secret")), push.as_ref())
            .unwrap_err();
        let (_, v) = &e.headers[0];
        let v = v.to_str().unwrap();
        assert!(v.contains("error=\"insufficient_scope\""), "{v}");
        assert!(v.contains("scope=\"repository:x:pull,push\""), "{v}");
        let e = t.check(None, None).unwrap_err();
        assert_eq!(
            e.headers[0].1.to_str().unwrap(),
            "Bearer realm=\"https://auth/token\",service=\"reg\""
        );
    }
}
