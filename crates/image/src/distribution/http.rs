//! One registry endpoint: scheme choice (https, falling back to http for an
//! insecure registry), TLS roots from `certs.d`, and the auth handshake
//! (anonymous, basic, bearer tokens cached per scope).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::auth::{lookup_credentials, parse_challenge};
use super::{is_loopback, ClientOptions, DistError};

/// A tokio runtime for one pull or push.
pub(crate) fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, DistError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.clamp(1, 4))
        .enable_all()
        .build()
        .map_err(|e| DistError::Other(format!("cannot start the I/O runtime: {e}")))
}

/// The auth scheme a registry asked for.
#[derive(Clone, Debug)]
pub(crate) enum Challenge {
    /// No auth needed.
    None,
    /// HTTP basic.
    Basic,
    /// Bearer token from `realm`.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

struct AuthState {
    challenge: Challenge,
    tokens: HashMap<String, (String, Instant)>,
}

/// A connected registry endpoint.
pub(crate) struct Registry {
    /// The registry's name (`docker.io`, `localhost:5000`): for credentials and messages.
    pub name: String,
    /// `scheme://host[:port]` actually used.
    pub base: String,
    client: reqwest::Client,
    creds: Option<(String, String)>,
    state: Mutex<AuthState>,
}

/// The endpoints to try for registry `domain`, mirrors first: `(name for
/// credentials, base URL or host)`.
pub(crate) fn endpoints(opts: &ClientOptions, domain: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if domain == "docker.io" {
        if let Some(d) = &opts.config.default_registry {
            return vec![d.clone()];
        }
        out.extend(opts.config.registry_mirrors.iter().cloned());
    }
    if let Some(m) = opts.config.mirrors.get(domain) {
        out.extend(m.iter().cloned());
    }
    out.push(domain.to_string());
    out
}

fn endpoint_host(domain: &str) -> String {
    match domain {
        "docker.io" | "index.docker.io" => "registry-1.docker.io".to_string(),
        d => d.to_string(),
    }
}

fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn looks_like_tls(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("certificate")
        || t.contains("tls")
        || t.contains("ssl")
        || t.contains("corrupt message")
        || t.contains("invalidcontenttype")
        || t.contains("handshake")
        || t.contains("unknownissuer")
}

impl Registry {
    /// Connects to `name` (through `endpoint`, a mirror URL or host, when
    /// given): builds the HTTP client, pings `/v2/` and records the auth
    /// challenge.
    pub(crate) async fn connect(
        opts: &ClientOptions,
        name: &str,
        endpoint: Option<&str>,
    ) -> Result<Registry, DistError> {
        let ep = endpoint
            .map(str::to_string)
            .unwrap_or_else(|| endpoint_host(name));
        let (scheme, host) = match ep.split_once("://") {
            Some((s, h)) => (Some(s.to_ascii_lowercase()), h.trim_end_matches('/')),
            None => (None, ep.trim_end_matches('/')),
        };
        let host = host.split('/').next().unwrap_or(host).to_string();
        let insecure = match opts.tls_verify {
            Some(false) => true,
            Some(true) => false,
            None => {
                opts.config.is_insecure(&host)
                    || opts.config.is_insecure(name)
                    || is_loopback(&host)
            }
        };
        let creds = lookup_credentials(opts, name).or_else(|| lookup_credentials(opts, &host));
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(10))
            .connect_timeout(opts.stall_timeout.max(Duration::from_secs(1)))
            .read_timeout(opts.stall_timeout)
            .pool_max_idle_per_host(16)
            .tcp_nodelay(true)
            .user_agent(concat!("barge/", env!("CARGO_PKG_VERSION")));
        if insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        for dir in &opts.config.cert_dirs {
            let d = dir.join(&host);
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "crt") {
                    let pem = std::fs::read(&p).map_err(|source| DistError::Io {
                        what: "read CA certificate".into(),
                        path: p.clone(),
                        source,
                    })?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                        DistError::Config {
                            path: p.clone(),
                            reason: format!("not a PEM certificate: {e}"),
                        }
                    })?;
                    for c in certs {
                        b = b.add_root_certificate(c);
                    }
                }
            }
        }
        let client = b
            .build()
            .map_err(|e| DistError::Other(format!("cannot set up the HTTP client: {e}")))?;
        let schemes: Vec<String> = match scheme {
            Some(s) => vec![s],
            None if insecure => vec!["https".into(), "http".into()],
            None => vec!["https".into()],
        };
        let certs_dir = opts
            .config
            .cert_dirs
            .first()
            .map(|d| d.join(&host).display().to_string())
            .unwrap_or_else(|| format!("/etc/barge/certs.d/{host}"));
        let mut last_err = None;
        for (i, s) in schemes.iter().enumerate() {
            let base = format!("{s}://{host}");
            match client.get(format!("{base}/v2/")).send().await {
                Ok(resp) => {
                    let challenge = challenge_of(resp.status(), resp.headers());
                    let status = resp.status();
                    if !(status.is_success()
                        || status == StatusCode::UNAUTHORIZED
                        || status == StatusCode::NOT_FOUND)
                    {
                        let e = http_error("GET", &format!("{base}/v2/"), resp).await;
                        if status.is_server_error() && i + 1 < schemes.len() {
                            last_err = Some(e);
                            continue;
                        }
                        return Err(e);
                    }
                    return Ok(Registry {
                        name: name.to_string(),
                        base,
                        client,
                        creds,
                        state: Mutex::new(AuthState {
                            challenge,
                            tokens: HashMap::new(),
                        }),
                    });
                }
                Err(e) => {
                    let text = chain_text(&e);
                    let tls = s == "https" && looks_like_tls(&text);
                    let err = if tls {
                        DistError::Tls {
                            registry: host.clone(),
                            reason: text,
                            certs_dir: certs_dir.clone(),
                        }
                    } else {
                        DistError::Connect {
                            registry: host.clone(),
                            reason: text,
                            hint: if e.is_timeout() {
                                "; the registry did not answer in time".into()
                            } else {
                                String::new()
                            },
                        }
                    };
                    last_err = Some(err);
                    if i + 1 < schemes.len() && (tls || e.is_connect() || e.is_request()) {
                        continue;
                    }
                    break;
                }
            }
        }
        Err(last_err.unwrap_or_else(|| DistError::Connect {
            registry: host,
            reason: "no endpoint".into(),
            hint: String::new(),
        }))
    }

    /// The challenge seen so far.
    pub(crate) fn challenge(&self) -> Challenge {
        match self.state.lock() {
            Ok(s) => s.challenge.clone(),
            Err(p) => p.into_inner().challenge.clone(),
        }
    }

    fn set_challenge(&self, c: Challenge) {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        s.challenge = c;
        s.tokens.clear();
    }

    /// The full URL of a `/v2/...` path or a `Location` returned by the registry.
    pub(crate) fn url(&self, path_or_location: &str) -> String {
        if path_or_location.starts_with("http://") || path_or_location.starts_with("https://") {
            path_or_location.to_string()
        } else if path_or_location.starts_with('/') {
            format!("{}{}", self.base, path_or_location)
        } else {
            format!("{}/{}", self.base, path_or_location)
        }
    }

    /// The HTTP client.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// A registry host for messages.
    pub(crate) fn host(&self) -> &str {
        self.base
            .split_once("://")
            .map(|x| x.1)
            .unwrap_or(&self.base)
    }

    pub(crate) async fn check_basic(&self) -> Result<(), DistError> {
        let Some((u, p)) = &self.creds else {
            return Err(self.unauthorized("", "no credentials given".into()));
        };
        let url = self.url("/v2/");
        let resp = self
            .client
            .get(&url)
            .basic_auth(u, Some(p))
            .send()
            .await
            .map_err(|e| self.net_err(e))?;
        if resp.status().is_success() {
            return Ok(());
        }
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            let detail = error_detail(resp).await;
            return Err(self.unauthorized("", detail));
        }
        Err(http_error("GET", &url, resp).await)
    }

    fn unauthorized(&self, scope: &str, reason: String) -> DistError {
        DistError::Unauthorized {
            registry: self.name.clone(),
            scope: if scope.is_empty() {
                String::new()
            } else {
                format!(" to {scope}")
            },
            reason,
        }
    }

    /// Maps a transport error.
    pub(crate) fn net_err(&self, e: reqwest::Error) -> DistError {
        DistError::Connect {
            registry: self.host().to_string(),
            reason: chain_text(&e),
            hint: String::new(),
        }
    }

    /// A bearer token for `scopes` (cached until it expires).
    pub(crate) async fn token(&self, scopes: &[String]) -> Result<String, DistError> {
        let Challenge::Bearer { realm, service } = self.challenge() else {
            return Err(DistError::Other("no bearer challenge".into()));
        };
        let key = scopes.join(" ");
        if let Ok(s) = self.state.lock() {
            if let Some((t, exp)) = s.tokens.get(&key) {
                if Instant::now() < *exp {
                    return Ok(t.clone());
                }
            }
        }
        let mut q: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = &service {
            q.push(("service", s));
        }
        for s in scopes {
            q.push(("scope", s));
        }
        let mut rb = self.client.get(&realm).query(&q);
        if let Some((u, p)) = &self.creds {
            rb = rb.basic_auth(u, Some(p));
        }
        let resp = rb.send().await.map_err(|e| DistError::Connect {
            registry: realm.clone(),
            reason: format!("token server: {}", chain_text(&e)),
            hint: String::new(),
        })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let detail = error_detail(resp).await;
            return Err(self.unauthorized(&key, format!("token server {realm}: {detail}")));
        }
        if !status.is_success() {
            return Err(http_error("GET", &realm, resp).await);
        }
        let body = resp.bytes().await.map_err(|e| self.net_err(e))?;
        #[derive(serde::Deserialize)]
        struct Tok {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let t: Tok = serde_json::from_slice(&body).map_err(|e| DistError::Protocol {
            registry: realm.clone(),
            reason: format!("token response is not valid JSON: {e}"),
        })?;
        let tok = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| DistError::Protocol {
                registry: realm.clone(),
                reason: "token response has neither token nor access_token".into(),
            })?;
        let life = Duration::from_secs(t.expires_in.unwrap_or(60).max(10));
        if let Ok(mut s) = self.state.lock() {
            s.tokens.insert(
                key,
                (tok.clone(), Instant::now() + life - Duration::from_secs(5)),
            );
        }
        Ok(tok)
    }

    async fn authorize(
        &self,
        rb: RequestBuilder,
        scopes: &[String],
    ) -> Result<RequestBuilder, DistError> {
        Ok(match self.challenge() {
            Challenge::None => rb,
            Challenge::Basic => match &self.creds {
                Some((u, p)) => rb.basic_auth(u, Some(p)),
                None => rb,
            },
            Challenge::Bearer { .. } => rb.bearer_auth(self.token(scopes).await?),
        })
    }

    /// Sends the request `mk` builds, authorised for `scopes`; on a 401,
    /// follows the new challenge and sends it once more.
    pub(crate) async fn send(
        &self,
        scopes: &[String],
        mk: &(dyn Fn() -> Result<RequestBuilder, DistError> + Sync),
    ) -> Result<Response, DistError> {
        let mut scopes = scopes.to_vec();
        for attempt in 0..3 {
            let rb = self.authorize(mk()?, &scopes).await?;
            let resp = rb.send().await.map_err(|e| self.net_err(e))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let before = self.challenge();
            let new = challenge_of(resp.status(), resp.headers());
            let hdr_scope = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|h| h.to_str().ok())
                .and_then(parse_challenge)
                .and_then(|(_, p)| p.get("scope").cloned());
            let retry = attempt < 2
                && match (&before, &new) {
                    (Challenge::None, Challenge::Basic)
                    | (Challenge::Bearer { .. }, Challenge::Basic) => self.creds.is_some(),
                    (Challenge::Basic, Challenge::Basic) => false,
                    (_, Challenge::Bearer { .. }) => attempt == 0 || hdr_scope.is_some(),
                    _ => false,
                };
            if !retry {
                let detail = error_detail(resp).await;
                let mut reason = detail;
                if self.creds.is_none() {
                    reason.push_str(" (no credentials were sent)");
                }
                return Err(self.unauthorized(&scopes.join(" "), reason));
            }
            if let Some(s) = hdr_scope {
                for one in s.split(' ') {
                    if !one.is_empty() && !scopes.iter().any(|x| x == one) {
                        scopes.push(one.to_string());
                    }
                }
            }
            self.set_challenge(new);
        }
        Err(self.unauthorized(&scopes.join(" "), "authentication loop".into()))
    }
}

fn challenge_of(status: StatusCode, headers: &HeaderMap) -> Challenge {
    if status != StatusCode::UNAUTHORIZED {
        return Challenge::None;
    }
    for h in headers.get_all(WWW_AUTHENTICATE) {
        let Some((scheme, p)) = h.to_str().ok().and_then(parse_challenge) else {
            continue;
        };
        if scheme == "bearer" {
            if let Some(realm) = p.get("realm") {
                return Challenge::Bearer {
                    realm: realm.clone(),
                    service: p.get("service").cloned(),
                };
            }
        }
    }
    Challenge::Basic
}

/// The registry's error message from a response body (`{"errors":[...]}`),
/// or the start of the body.
pub(crate) async fn error_detail(resp: Response) -> String {
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<E>,
    }
    #[derive(serde::Deserialize)]
    struct E {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_slice::<Errs>(&body) {
        let msgs: Vec<String> = e
            .errors
            .iter()
            .map(|x| {
                format!(
                    "{}{}",
                    x.code
                        .as_deref()
                        .map(|c| format!("{c}: "))
                        .unwrap_or_default(),
                    x.message.as_deref().unwrap_or("")
                )
            })
            .collect();
        if !msgs.is_empty() {
            return msgs.join("; ");
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)])
        .trim()
        .to_string();
    if text.is_empty() {
        status.to_string()
    } else {
        text
    }
}

/// An unexpected status as an error.
pub(crate) async fn http_error(method: &str, url: &str, resp: Response) -> DistError {
    let status = resp.status().as_u16();
    DistError::Http {
        method: method.to_string(),
        url: url.to_string(),
        status,
        detail: error_detail(resp).await,
    }
}
