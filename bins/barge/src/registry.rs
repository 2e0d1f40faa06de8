//! Registry commands: `pull`, `push`, `login`, `logout` (the client in
//! `barge_image::distribution`) and `registry serve` (the server in
//! `barge_registry`). Progress is printed as the docker CLI prints it: one
//! bar per layer on a terminal, one line per state change otherwise.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use barge_image::distribution::{
    self, ClientOptions, Progress, ProgressEvent, PullOptions, PushCompression, PushOptions,
    RegistryConfig,
};
use barge_image::store::{parse_reference, Platform, Store};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::images::open_store;

/// Options every command that talks to a registry takes.
#[derive(Args, Debug, Clone, Default)]
pub struct ClientFlags {
    /// Require HTTPS and verify certificates (false: allow plain HTTP and
    /// self-signed certificates, as podman's --tls-verify=false)
    #[arg(long = "tls-verify", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// Credentials (USERNAME[:PASSWORD]) to use instead of the stored ones
    #[arg(long, value_name = "USER:PASS")]
    pub creds: Option<String>,
    /// The credentials file (default ~/.config/barge/auth.json, $REGISTRY_AUTH_FILE)
    #[arg(long = "authfile", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// The registries configuration (default /etc/barge/registries.json, $BARGE_REGISTRIES_CONFIG)
    #[arg(long = "registries-config", value_name = "FILE")]
    pub registries_config: Option<PathBuf>,
}

impl ClientFlags {
    fn options(&self, progress: Option<Arc<dyn Progress>>) -> Result<ClientOptions> {
        let config = RegistryConfig::load(self.registries_config.as_deref())?;
        let credentials = match &self.creds {
            None => None,
            Some(c) => Some(match c.split_once(':') {
                Some((u, p)) => (u.to_string(), p.to_string()),
                None => (c.clone(), read_password(&format!("Password for {c}: "))?),
            }),
        };
        Ok(ClientOptions {
            config,
            tls_verify: self.tls_verify,
            auth_file: self.auth_file.clone(),
            credentials,
            progress,
            ..ClientOptions::default()
        })
    }
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Suppress verbose output: print only the image's name
    #[arg(short, long)]
    pub quiet: bool,
    /// Pull the image for this platform (os/arch[/variant]) instead of the host's
    #[arg(long)]
    pub platform: Option<String>,
    /// Refuse a reference that is not pinned by @sha256:... digest
    #[arg(long = "verify-digest")]
    pub verify_digest: bool,
    /// Download at most this many layers at once
    #[arg(long = "max-concurrent-downloads", default_value_t = 3)]
    pub max_concurrent: usize,
    #[command(flatten)]
    pub client: ClientFlags,
    /// NAME[:TAG|@DIGEST]
    pub image: String,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Upload blobs in chunks of this many bytes (PATCH with Content-Range)
    /// instead of one request each
    #[arg(long = "chunk-size", value_name = "BYTES")]
    pub chunk_size: Option<u64>,
    /// How to send layers stored uncompressed: gzip (as Docker), zstd, or
    /// none (as stored)
    #[arg(long = "compression-format", default_value = "gzip", value_parser = parse_compression)]
    pub compression: PushCompression,
    /// Upload at most this many layers at once
    #[arg(long = "max-concurrent-uploads", default_value_t = 3)]
    pub max_concurrent: usize,
    #[command(flatten)]
    pub client: ClientFlags,
    /// NAME[:TAG] of a local image
    pub image: String,
    /// Push to this reference instead of the image's own name
    pub destination: Option<String>,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (visible in the process list: prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    #[command(flatten)]
    pub client: ClientFlags,
    /// Registry host[:port] (default: docker.io)
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The credentials file (default ~/.config/barge/auth.json)
    #[arg(long = "authfile", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// Registry host[:port] (default: docker.io)
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub addr: SocketAddr,
    /// Storage directory (an OCI image layout plus the registry's repositories)
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Require HTTP basic auth against this htpasswd file (bcrypt entries: htpasswd -B)
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM)
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Bearer-token auth: the token service's URL sent in challenges
    #[arg(long = "token-realm", value_name = "URL", requires = "token_service")]
    pub token_realm: Option<String>,
    /// Bearer-token auth: the service name tokens must be issued for (aud)
    #[arg(long = "token-service", requires = "token_realm")]
    pub token_service: Option<String>,
    /// Bearer-token auth: the issuer tokens must carry (iss)
    #[arg(long = "token-issuer", requires = "token_realm")]
    pub token_issuer: Option<String>,
    /// Bearer-token auth: the PEM public key (RS256/ES256) verifying tokens
    #[arg(
        long = "token-key",
        value_name = "FILE",
        conflicts_with = "token_secret"
    )]
    pub token_key: Option<PathBuf>,
    /// Bearer-token auth: a file holding the HS256 shared secret
    #[arg(long = "token-secret", value_name = "FILE")]
    pub token_secret: Option<PathBuf>,
    /// Refuse DELETE requests
    #[arg(long = "no-delete")]
    pub no_delete: bool,
    /// No access log on stderr
    #[arg(short, long)]
    pub quiet: bool,
}

// ------------------------------------------------------------------ pull

/// `barge pull`.
pub fn pull(root: &Path, a: &PullArgs) -> Result<i32> {
    let store = open_store(root)?;
    let printer = (!a.quiet).then(|| Arc::new(Printer::new(Mode::Pull, false)));
    let name = pull_image(&store, &a.image, a, printer)?;
    if a.quiet {
        println!("{name}");
    }
    Ok(0)
}

/// Pulls `image` for `run`/`create` when it is not in the store, printing
/// Docker's messages on stderr (stdout is the container's).
pub fn pull_for_run(
    store: &Store,
    image: &str,
    client: &ClientFlags,
    platform: Option<&str>,
    quiet: bool,
) -> Result<()> {
    let a = PullArgs {
        quiet,
        platform: platform.map(str::to_string),
        verify_digest: false,
        max_concurrent: 3,
        client: client.clone(),
        image: image.to_string(),
    };
    let printer = (!quiet).then(|| Arc::new(Printer::new(Mode::Pull, true)));
    pull_image(store, image, &a, printer)?;
    Ok(())
}

/// The hook `barge build` calls for a `FROM` image it does not have (or
/// for every base image with `--pull`): a quiet pull into the same store.
pub fn build_pull_hook(root: &Path) -> barge_build::builder::PullHook {
    let root = root.to_path_buf();
    barge_build::builder::PullHook(Arc::new(move |image: &str| {
        let store = open_store(&root).map_err(|e| format!("{e:#}"))?;
        let a = PullArgs {
            quiet: true,
            platform: None,
            verify_digest: false,
            max_concurrent: 3,
            client: ClientFlags::default(),
            image: image.to_string(),
        };
        pull_image(&store, image, &a, None)
            .map(|_| ())
            .map_err(|e| format!("pull {image}: {e:#}"))
    }))
}

/// Pulls with Docker's output through `printer` (none: quiet); returns the
/// normalised reference.
fn pull_image(
    store: &Store,
    image: &str,
    a: &PullArgs,
    printer: Option<Arc<Printer>>,
) -> Result<String> {
    let platform = match &a.platform {
        Some(p) => parse_platform(p)?,
        None => Platform::host(),
    };
    let reference = parse_reference(image)?;
    if let Some(p) = &printer {
        let what = match (&reference.tag, &reference.digest) {
            (_, Some(d)) => d.to_string(),
            (Some(t), None) => t.clone(),
            (None, None) => "latest".into(),
        };
        p.line(&format!(
            "{what}: Pulling from {}",
            familiar_repo(&reference)
        ));
    }
    let mut opts = a
        .client
        .options(printer.clone().map(|p| p as Arc<dyn Progress>))?;
    opts.max_concurrent = a.max_concurrent.max(1);
    let report = distribution::pull(
        store,
        image,
        &opts,
        &PullOptions {
            platform,
            verify_digest: a.verify_digest,
        },
    );
    if let Some(p) = &printer {
        p.finish();
    }
    let report = report?;
    if let Some(p) = &printer {
        let familiar = parse_reference(&report.reference)
            .map(|r| r.familiar())
            .unwrap_or_else(|_| report.reference.clone());
        p.line(&format!("Digest: {}", report.digest));
        if report.up_to_date {
            p.line(&format!("Status: Image is up to date for {familiar}"));
        } else {
            p.line(&format!("Status: Downloaded newer image for {familiar}"));
        }
        if !p.to_stderr {
            p.line(&report.reference);
        }
    }
    Ok(report.reference)
}

fn parse_compression(s: &str) -> std::result::Result<PushCompression, String> {
    s.parse()
}

fn familiar_repo(r: &barge_image::store::Reference) -> String {
    if r.domain == barge_image::store::DEFAULT_DOMAIN {
        r.path.clone()
    } else {
        r.name()
    }
}

fn parse_platform(s: &str) -> Result<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    let bad = || {
        anyhow::anyhow!(
            "invalid platform {s:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
        )
    };
    if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    Ok(Platform {
        os: parts[0].to_string(),
        architecture: parts[1].to_string(),
        variant: parts.get(2).map(|v| v.to_string()),
    })
}

// ------------------------------------------------------------------ push

/// `barge push`.
pub fn push(root: &Path, a: &PushArgs) -> Result<i32> {
    let store = open_store(root)?;
    let dest = a.destination.as_deref().unwrap_or(&a.image);
    let reference = parse_reference(dest)?;
    let printer = (!a.quiet).then(|| Arc::new(Printer::new(Mode::Push, false)));
    if let Some(p) = &printer {
        p.line(&format!(
            "The push refers to repository [{}]",
            reference.name()
        ));
    }
    let mut opts = a
        .client
        .options(printer.clone().map(|p| p as Arc<dyn Progress>))?;
    opts.max_concurrent = a.max_concurrent.max(1);
    if a.chunk_size == Some(0) {
        bail!("--chunk-size must be at least 1 byte");
    }
    let report = distribution::push(
        &store,
        &a.image,
        a.destination.as_deref(),
        &opts,
        &PushOptions {
            chunk_size: a.chunk_size,
            compression: a.compression,
        },
    );
    if let Some(p) = &printer {
        p.finish();
    }
    let report = report?;
    if let Some(n) = &report.note {
        eprintln!("Note: {n}");
    }
    if a.quiet {
        println!("{}", report.reference);
    } else {
        let r = parse_reference(&report.reference)?;
        println!(
            "{}: digest: {} size: {}",
            r.tag.as_deref().unwrap_or("latest"),
            report.digest,
            report.size
        );
    }
    Ok(0)
}

// ------------------------------------------------------------ login/logout

/// `barge login`.
pub fn login(a: &LoginArgs) -> Result<i32> {
    let server = a.server.clone().unwrap_or_else(|| "docker.io".to_string());
    let username = match &a.username {
        Some(u) => u.clone(),
        None => {
            if a.password_stdin {
                bail!("--password-stdin needs --username");
            }
            prompt("Username: ")?
        }
    };
    if username.is_empty() {
        bail!("the username is empty: pass --username NAME");
    }
    let password = if a.password_stdin {
        if a.password.is_some() {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        let mut s = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut s)
            .context("read the password from stdin")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match &a.password {
            Some(p) => {
                eprintln!(
                    "WARNING! Using --password via the CLI is insecure. Use --password-stdin."
                );
                p.clone()
            }
            None => read_password("Password: ")?,
        }
    };
    if password.is_empty() {
        bail!("the password is empty: pass it on stdin with --password-stdin");
    }
    let opts = a.client.options(None)?;
    let file = distribution::login(&server, &username, &password, &opts)?;
    eprintln!("Credentials saved in {}", file.display());
    println!("Login Succeeded");
    Ok(0)
}

/// `barge logout`.
pub fn logout(a: &LogoutArgs) -> Result<i32> {
    let server = a.server.clone().unwrap_or_else(|| "docker.io".to_string());
    let opts = ClientOptions {
        auth_file: a.auth_file.clone(),
        ..ClientOptions::default()
    };
    if distribution::logout(&server, &opts)? {
        println!("Removing login credentials for {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(0)
}

fn prompt(what: &str) -> Result<String> {
    eprint!("{what}");
    let _ = std::io::stderr().flush();
    let mut s = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut s)
        .context("read from stdin")?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// Reads a password from the terminal without echo (or a line of stdin).
fn read_password(what: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return prompt(what);
    }
    let fd = rustix::stdio::stdin();
    let old = rustix::termios::tcgetattr(fd).context("read the terminal mode")?;
    let mut quiet = old.clone();
    quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
    rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, &quiet)
        .context("turn off echo")?;
    let r = prompt(what);
    let _ = rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, &old);
    eprintln!();
    r
}

// ------------------------------------------------------------------ serve

/// `barge registry serve`.
pub fn serve(barge_root: &Path, a: &ServeArgs) -> Result<i32> {
    let root = a
        .root
        .clone()
        .unwrap_or_else(|| barge_root.join("registry"));
    let mut c = barge_registry::Config::new(a.addr, root.clone());
    c.htpasswd = a.htpasswd.clone();
    c.delete_enabled = !a.no_delete;
    c.quiet = a.quiet;
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        c.tls = Some(barge_registry::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    if let (Some(realm), Some(service)) = (&a.token_realm, &a.token_service) {
        let key = match (&a.token_key, &a.token_secret) {
            (Some(k), _) => barge_registry::TokenKey::PublicKeyPem(
                std::fs::read(k).with_context(|| format!("read --token-key {}", k.display()))?,
            ),
            (None, Some(s)) => barge_registry::TokenKey::Hmac(
                std::fs::read(s)
                    .with_context(|| format!("read --token-secret {}", s.display()))?
                    .trim_ascii()
                    .to_vec(),
            ),
            (None, None) => bail!(
                "bearer-token auth needs the key that verifies tokens: --token-key PEM or --token-secret FILE"
            ),
        };
        c.token = Some(barge_registry::TokenConfig {
            realm: realm.clone(),
            service: service.clone(),
            issuer: a.token_issuer.clone().unwrap_or_default(),
            key,
        });
    } else if a.token_key.is_some() || a.token_secret.is_some() || a.token_issuer.is_some() {
        bail!("--token-key/--token-secret/--token-issuer need --token-realm and --token-service");
    }
    if c.htpasswd.is_some() && c.token.is_some() {
        bail!("choose one kind of auth: --htpasswd or --token-realm");
    }
    let server = barge_registry::Server::bind(c)?;
    let scheme = if a.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    eprintln!(
        "barge registry listening on {scheme}://{} (storage {})",
        server.local_addr(),
        root.display()
    );
    server.serve_blocking()?;
    Ok(0)
}

// --------------------------------------------------------------- progress

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pull,
    Push,
}

/// Renders progress events: indicatif bars on a terminal, Docker's plain
/// lines (one per state change) otherwise.
struct Printer {
    mode: Mode,
    bars: Option<MultiProgress>,
    to_stderr: bool,
    state: Mutex<Vec<(String, ProgressBar)>>,
    last: Mutex<HashMap<String, &'static str>>,
    finished: std::sync::atomic::AtomicBool,
}

impl Printer {
    fn new(mode: Mode, to_stderr: bool) -> Printer {
        let tty = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let target = || {
            if to_stderr {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::stdout()
            }
        };
        Printer {
            mode,
            bars: tty.then(|| MultiProgress::with_draw_target(target())),
            to_stderr,
            state: Mutex::new(Vec::new()),
            last: Mutex::new(HashMap::new()),
            finished: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn line(&self, s: &str) {
        let live = !self.finished.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(m) = self.bars.as_ref().filter(|_| live) {
            let _ = m.println(s);
        } else if self.to_stderr {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }

    fn bar(&self, id: &str) -> Option<ProgressBar> {
        let m = self.bars.as_ref()?;
        let mut st = self.state.lock().ok()?;
        if let Some((_, b)) = st.iter().find(|(i, _)| i == id) {
            return Some(b.clone());
        }
        let b = m.add(ProgressBar::new(0));
        b.set_style(
            ProgressStyle::with_template(
                "{prefix}: {msg:<18} [{bar:40}] {bytes:>10}/{total_bytes:<10}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.set_prefix(id.to_string());
        st.push((id.to_string(), b.clone()));
        Some(b)
    }

    /// A state line for `id`, printed once per state in plain mode.
    fn status(&self, id: &str, what: &'static str) {
        if let Some(b) = self.bar(id) {
            b.set_message(what);
            return;
        }
        if let Ok(mut last) = self.last.lock() {
            if last.get(id) == Some(&what) {
                return;
            }
            last.insert(id.to_string(), what);
        }
        self.line(&format!("{id}: {what}"));
    }

    fn bytes(&self, id: &str, what: &'static str, done: u64, total: u64) {
        match self.bar(id) {
            Some(b) => {
                b.set_length(total);
                b.set_position(done);
                b.set_message(what);
            }
            None => self.status(id, what),
        }
    }

    fn done(&self, id: &str, what: &'static str) {
        match self.bar(id) {
            Some(b) => {
                b.set_style(
                    ProgressStyle::with_template("{prefix}: {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.finish_with_message(what);
            }
            None => self.status(id, what),
        }
    }

    /// Freezes the bars as they are (each layer's last state stays on
    /// screen, as Docker leaves it) and stops drawing, so later lines go
    /// below them.
    fn finish(&self) {
        let Some(m) = &self.bars else {
            return;
        };
        if let Ok(st) = self.state.lock() {
            for (_, b) in st.iter() {
                if !b.is_finished() {
                    b.abandon();
                }
            }
        }
        m.set_draw_target(ProgressDrawTarget::hidden());
        self.finished
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Progress for Printer {
    fn event(&self, e: &ProgressEvent) {
        match e {
            ProgressEvent::Resolving { .. } | ProgressEvent::Resolved { .. } => {}
            ProgressEvent::LayerExists { id } => match self.mode {
                Mode::Pull => self.done(id, "Already exists"),
                Mode::Push => self.done(id, "Layer already exists"),
            },
            ProgressEvent::Waiting { id, .. } => match self.mode {
                Mode::Pull => self.status(id, "Pulling fs layer"),
                Mode::Push => self.status(id, "Preparing"),
            },
            ProgressEvent::Downloading { id, done, total } => {
                self.bytes(id, "Downloading", *done, *total)
            }
            ProgressEvent::Retrying { id, attempt, error } => {
                self.line(&format!("{id}: Retrying (attempt {attempt}): {error}"));
            }
            ProgressEvent::Verifying { id } => self.status(id, "Verifying Checksum"),
            ProgressEvent::Extracting { id, done, total } => {
                self.bytes(id, "Extracting", *done, *total)
            }
            ProgressEvent::PullComplete { id } => self.done(id, "Pull complete"),
            ProgressEvent::Pushing { id, done, total } => self.bytes(id, "Pushing", *done, *total),
            ProgressEvent::Mounted { id, from } => {
                let msg: &'static str = "Mounted from";
                match self.bar(id) {
                    Some(b) => {
                        b.set_style(
                            ProgressStyle::with_template("{prefix}: {msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        b.finish_with_message(format!("{msg} {from}"));
                    }
                    None => self.line(&format!("{id}: {msg} {from}")),
                }
            }
            ProgressEvent::Pushed { id } => self.done(id, "Pushed"),
            ProgressEvent::ManifestWritten { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(p.architecture, "arm64");
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert!(parse_platform("linux").is_err());
        assert!(parse_platform("linux//v8").is_err());
        assert!(parse_platform("a/b/c/d").is_err());
    }

    #[test]
    fn client_flags_creds() {
        let f = ClientFlags {
            creds: Some("u:p:q".into()),
            registries_config: Some(PathBuf::from("/nonexistent/registries.json")),
            ..ClientFlags::default()
        };
        // A missing config file is the defaults.
        let o = f.options(None).unwrap();
        assert_eq!(o.credentials, Some(("u".into(), "p:q".into())));
    }

    #[test]
    fn plain_progress_prints_each_state_once() {
        let mut p = Printer::new(Mode::Pull, true);
        p.bars = None;
        p.status("abc", "Downloading");
        p.status("abc", "Downloading");
        assert_eq!(p.last.lock().unwrap().get("abc"), Some(&"Downloading"));
    }
}
