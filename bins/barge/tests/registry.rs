//! Registries end to end, with the peers as oracles: barge pushes to
//! Debian's `docker-registry` and pulls back the same image; skopeo copies
//! into `barge registry serve` and barge pulls it; podman pulls from
//! `barge registry serve` and runs the image; htpasswd and bearer-token auth
//! with `barge login`; TLS with a CA from a certs directory; `run` pulling a
//! missing image. Every server runs on a free 127.0.0.1 port and is stopped
//! by its own pid.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{barge_bin, check_helpers, Env, Out};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn require(tool: &str, package: &str) {
    assert!(
        have(tool),
        "{tool} is needed by this test: apt-get install -y {package}"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET on loopback; returns (status, headers+body as text).
fn http_get(addr: &str, path: &str, auth: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split(' ').nth(1)?.parse().ok()?;
    Some((code, out))
}

/// A root with no image in it.
struct Empty {
    dir: tempfile::TempDir,
}

impl Empty {
    fn new() -> Empty {
        check_helpers();
        Empty {
            dir: tempfile::Builder::new()
                .prefix("barge-reg-")
                .tempdir_in("/var/tmp")
                .unwrap(),
        }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn run(&self, args: &[&str]) -> Out {
        run_barge(self.root(), args, None)
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.code, 0, "barge {args:?}: {o}");
        o.stdout
    }
}

impl Drop for Empty {
    fn drop(&mut self) {
        let o = self.run(&["ps", "-aq", "--no-trunc"]);
        for id in o.stdout.lines() {
            let _ = self.run(&["rm", "-f", id]);
        }
        common::teardown_networks(self.root());
    }
}

fn run_barge(root: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    let mut c = Command::new(barge_bin());
    c.arg("--root")
        .arg(root)
        .args(args)
        .env("BARGE_REGISTRIES_CONFIG", "/nonexistent/registries.json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = c.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A background server, killed (by its pid) and reaped on drop.
struct Server {
    child: Child,
    addr: String,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_http(addr: &str, child: &mut Child) {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("server at {addr} exited early: {st}");
        }
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server at {addr} did not come up");
}

/// Debian's reference registry on a free port.
fn docker_registry() -> Server {
    require("docker-registry", "docker-registry");
    let dir = tempfile::Builder::new()
        .prefix("barge-docker-registry-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp: {{addr: {addr}}}\n",
            dir.path().join("storage").display()
        ),
    )
    .unwrap();
    let mut child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_http(&addr, &mut child);
    Server {
        child,
        addr,
        _dir: Some(dir),
    }
}

/// `barge registry serve` on a free port (the address read from its first line).
fn barge_registry(extra: &[&str]) -> Server {
    let dir = tempfile::Builder::new()
        .prefix("barge-registry-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let mut child = Command::new(barge_bin())
        .args(["registry", "serve", "-q", "--addr", "127.0.0.1:0", "--root"])
        .arg(dir.path().join("storage"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    wait_http(&addr, &mut child);
    Server {
        child,
        addr,
        _dir: Some(dir),
    }
}

/// The ids that must match for two stores to hold the same image.
fn ids(root: &Path, image: &str) -> (String, String) {
    let o = run_barge(
        root,
        &[
            "image",
            "inspect",
            "-f",
            "{{.Id}} {{json .RootFS.Layers}}",
            image,
        ],
        None,
    );
    assert_eq!(o.code, 0, "inspect {image}: {o}");
    let mut it = o.stdout.trim().splitn(2, ' ');
    (
        it.next().unwrap_or_default().to_string(),
        it.next().unwrap_or_default().to_string(),
    )
}

#[test]
fn push_to_docker_registry_and_pull_back() {
    let reg = docker_registry();
    let src = Env::new();
    let dest = format!("{}/barge-test/bb:v1", reg.addr);
    let o = src.run(&["push", "busybox", &dest]);
    assert_eq!(o.code, 0, "push: {o}");
    assert!(
        o.stdout.contains("The push refers to repository")
            && o.stdout.contains("v1: digest: sha256:"),
        "docker-like push output: {o}"
    );
    let pushed = o
        .stdout
        .split("digest: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    // The registry has it, under the tag.
    let (code, body) = http_get(&reg.addr, "/v2/barge-test/bb/tags/list", None).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"v1\""), "{body}");

    // Chunked uploads to another repository.
    let dest2 = format!("{}/barge-test/chunked:v2", reg.addr);
    src.ok(&["push", "-q", "--chunk-size", "65536", "busybox", &dest2]);

    for d in [&dest, &dest2] {
        let e = Empty::new();
        let o = e.run(&["pull", d]);
        assert_eq!(o.code, 0, "pull {d}: {o}");
        assert!(o.stdout.contains("Pull complete"), "{o}");
        assert!(o.stdout.contains("Status: Downloaded newer image"), "{o}");
        assert_eq!(ids(e.root(), d), ids(src.root(), "busybox"), "{d}");
        // The registry's manifest digest is the image's repo digest.
        let rd = e.ok(&["image", "inspect", "-f", "{{json .RepoDigests}}", d]);
        assert!(rd.contains(&format!("@{pushed}")), "{rd} lacks {pushed}");
        let hi = e.ok(&["run", "--rm", d, "echo", "pulled"]);
        assert_eq!(hi.trim(), "pulled");
        // Pulling again changes nothing.
        let again = e.ok(&["pull", d]);
        assert!(again.contains("Image is up to date"), "{again}");
        e.ok(&["system", "check"]);
    }
}

#[test]
fn skopeo_into_barge_registry_then_barge_pulls() {
    require("skopeo", "skopeo");
    let reg = barge_registry(&[]);
    let src = Env::new();
    // barge's store is an OCI layout: skopeo reads the image straight from it.
    let st = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!(
            "oci:{}:docker.io/library/busybox:latest",
            src.root().display()
        ))
        .arg(format!("docker://{}/skopeo/bb:latest", reg.addr))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let st = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}/skopeo/bb:latest", reg.addr))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    let e = Empty::new();
    let r = format!("{}/skopeo/bb:latest", reg.addr);
    e.ok(&["pull", "-q", &r]);
    assert_eq!(ids(e.root(), &r).1, ids(src.root(), "busybox").1);
    assert_eq!(e.ok(&["run", "--rm", &r, "echo", "ok"]).trim(), "ok");
}

/// A hard limit from /proc/self/limits (None: unlimited or unreadable).
fn hard_limit(name: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with(name))?
        .get(26..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// podman with private storage and config under `dir`. This VM's root lacks
/// CAP_SYS_RESOURCE, so podman's default ulimits are capped at ours (nproc
/// also at kernel.pid_max, which its runtime sees).
fn podman(dir: &Path) -> Command {
    let nofile = hard_limit("Max open files").unwrap_or(1_048_576);
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let nproc = hard_limit("Max processes").unwrap_or(pid_max).min(pid_max);
    let conf = dir.join("containers.conf");
    if !conf.exists() {
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(
            &conf,
            format!(
                "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\nnetns = \"none\"\nlog_driver = \"k8s-file\"\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nlock_type = \"file\"\ntmp_dir = \"{d}/tmp\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/run\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
    }
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", &conf)
        .env("CONTAINERS_STORAGE_CONF", dir.join("storage.conf"))
        .env("TMPDIR", dir.join("tmp"));
    c
}

#[test]
fn podman_pulls_from_barge_registry_and_runs() {
    require("podman", "podman");
    let reg = barge_registry(&[]);
    let src = Env::new();
    let r = format!("{}/pm/bb:1", reg.addr);
    src.ok(&["push", "-q", "busybox", &r]);
    let pd = tempfile::Builder::new()
        .prefix("barge-reg-podman-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let o = podman(pd.path())
        .args(["pull", "-q", "--tls-verify=false", &r])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "podman pull: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = podman(pd.path())
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            &r,
            "echo",
            "from-barge-registry",
        ])
        .output()
        .unwrap();
    let _ = podman(pd.path()).args(["system", "reset", "-f"]).output();
    assert!(
        o.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "from-barge-registry"
    );
}

#[test]
fn htpasswd_login_push_pull_logout() {
    require("htpasswd", "apache2-utils");
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let o = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::write(&htpasswd, &o.stdout).unwrap();
    let reg = barge_registry(&["--htpasswd", htpasswd.to_str().unwrap()]);
    let auth = dir.path().join("auth.json");
    let auth_s = auth.to_str().unwrap();
    let src = Env::new();
    let r = format!("{}/private/bb:1", reg.addr);

    let o = run_barge(
        src.root(),
        &["push", "--authfile", auth_s, "busybox", &r],
        None,
    );
    assert_ne!(o.code, 0, "push without credentials must fail: {o}");
    assert!(o.stderr.contains("login"), "the error says to log in: {o}");

    let o = run_barge(
        src.root(),
        &[
            "login",
            "--authfile",
            auth_s,
            "-u",
            "alice",
            "--password-stdin",
            &reg.addr,
        ],
        Some("wrong\n"),
    );
    assert_ne!(o.code, 0, "bad password accepted: {o}");
    assert!(!auth.exists() || !std::fs::read_to_string(&auth).unwrap().contains(&reg.addr));

    let o = run_barge(
        src.root(),
        &[
            "login",
            "--authfile",
            auth_s,
            "-u",
            "alice",
            "--password-stdin",
            &reg.addr,
        ],
        Some("s3cret\n"),
    );
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("Login Succeeded"), "{o}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "auth file mode");

    let o = run_barge(
        src.root(),
        &["push", "-q", "--authfile", auth_s, "busybox", &r],
        None,
    );
    assert_eq!(o.code, 0, "{o}");
    let e = Empty::new();
    let o = run_barge(e.root(), &["pull", "-q", "--authfile", auth_s, &r], None);
    assert_eq!(o.code, 0, "{o}");
    // --creds works without the file.
    let e2 = Empty::new();
    let o = run_barge(
        e2.root(),
        &["pull", "-q", "--creds", "alice:s3cret", &r],
        None,
    );
    assert_eq!(o.code, 0, "{o}");

    let o = run_barge(
        src.root(),
        &["logout", "--authfile", auth_s, &reg.addr],
        None,
    );
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("Removing login credentials"), "{o}");
    let e3 = Empty::new();
    let o = run_barge(e3.root(), &["pull", "-q", "--authfile", auth_s, &r], None);
    assert_ne!(o.code, 0, "pull after logout: {o}");
}

/// A token service for the bearer flow: checks Basic credentials and
/// answers with an HS256 JWT granting what was asked for.
struct TokenService {
    addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl TokenService {
    fn start(
        secret: &'static [u8],
        service: &'static str,
        user: &'static str,
        pass: &'static str,
    ) -> TokenService {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stop2, hits2) = (stop.clone(), hits.clone());
        let thread = std::thread::spawn(move || {
            use base64::Engine as _;
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            );
            while !stop2.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                let _ = r.read_line(&mut first);
                let mut authz = String::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            authz = v.trim().to_string();
                        }
                    }
                }
                hits2.fetch_add(1, Ordering::Relaxed);
                let target = first.split(' ').nth(1).unwrap_or("");
                let query = target.split_once('?').map(|x| x.1).unwrap_or("");
                let mut access = Vec::new();
                let mut svc_ok = false;
                for kv in query.split('&') {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    let v = v
                        .replace("%3A", ":")
                        .replace("%2F", "/")
                        .replace("%2C", ",");
                    if k == "service" {
                        svc_ok = v == service;
                    }
                    if k == "scope" {
                        let p: Vec<&str> = v.splitn(3, ':').collect();
                        if p.len() == 3 {
                            access.push(serde_json::json!({
                                "type": p[0], "name": p[1],
                                "actions": p[2].split(',').collect::<Vec<_>>(),
                            }));
                        }
                    }
                }
                let resp = if authz != want || !svc_ok {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                } else {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let claims = serde_json::json!({
                        "iss": "barge-test-issuer", "sub": user, "aud": service,
                        "exp": now + 300, "nbf": now - 10, "iat": now,
                        "jti": format!("{now}"), "access": access,
                    });
                    let token = jsonwebtoken::encode(
                        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                        &claims,
                        &jsonwebtoken::EncodingKey::from_secret(secret),
                    )
                    .unwrap();
                    let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = s.write_all(resp.as_bytes());
            }
        });
        TokenService {
            addr,
            stop,
            thread: Some(thread),
            hits,
        }
    }
}

impl Drop for TokenService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn bearer_token_flow() {
    const SECRET: &[u8] = b"barge-test-secret-0123456789";
    let tokens = TokenService::start(SECRET, "barge-test", "bob", "hunter2");
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let realm = format!("http://{}/token", tokens.addr);
    let reg = barge_registry(&[
        "--token-realm",
        &realm,
        "--token-service",
        "barge-test",
        "--token-issuer",
        "barge-test-issuer",
        "--token-secret",
        secret.to_str().unwrap(),
    ]);
    // The registry challenges with the realm.
    let (code, resp) = http_get(&reg.addr, "/v2/", None).unwrap();
    assert_eq!(code, 401, "{resp}");
    assert!(resp.contains("Bearer realm="), "{resp}");

    let src = Env::new();
    let r = format!("{}/tok/bb:1", reg.addr);
    let o = src.run(&["push", "-q", "busybox", &r]);
    assert_ne!(o.code, 0, "anonymous push must be refused: {o}");
    let o = src.run(&["push", "-q", "--creds", "bob:wrong", "busybox", &r]);
    assert_ne!(o.code, 0, "bad password accepted: {o}");
    let o = src.run(&["push", "-q", "--creds", "bob:hunter2", "busybox", &r]);
    assert_eq!(o.code, 0, "{o}");
    let e = Empty::new();
    let o = e.run(&["pull", "-q", "--creds", "bob:hunter2", &r]);
    assert_eq!(o.code, 0, "{o}");
    assert!(
        tokens.hits.load(Ordering::Relaxed) >= 2,
        "the token service was used"
    );
    assert_eq!(ids(e.root(), &r), ids(src.root(), "busybox"));
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made by
/// openssl: (ca.crt, server cert, server key).
fn ca_and_server_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=barge test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        p("ext.cnf"),
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    ]);
    (p("ca.crt"), p("server.crt"), p("server.key"))
}

#[test]
fn tls_with_a_ca_from_the_certs_dir() {
    require("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_server_cert(dir.path());
    let reg = barge_registry(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let src = Env::new();
    let r = format!("{}/tls/bb:1", reg.addr);
    // Verification on and no CA: refused, with a hint.
    let o = src.run(&["push", "-q", "--tls-verify", "busybox", &r]);
    assert_ne!(o.code, 0, "unverified certificate accepted: {o}");
    assert!(
        o.stderr.contains("certificate") || o.stderr.contains("tls"),
        "the error names the certificate problem: {o}"
    );
    // The CA in <certs dir>/<host:port>/ca.crt: accepted with verification on.
    let certs = dir.path().join("certs.d");
    std::fs::create_dir_all(certs.join(&reg.addr)).unwrap();
    std::fs::copy(&ca, certs.join(&reg.addr).join("ca.crt")).unwrap();
    let conf = dir.path().join("registries.json");
    std::fs::write(
        &conf,
        serde_json::json!({"certs-dirs": [certs]}).to_string(),
    )
    .unwrap();
    let conf_s = conf.to_str().unwrap();
    let o = src.run(&[
        "push",
        "-q",
        "--tls-verify",
        "--registries-config",
        conf_s,
        "busybox",
        &r,
    ]);
    assert_eq!(o.code, 0, "{o}");
    // --tls-verify=false: no CA needed.
    let e = Empty::new();
    let o = e.run(&["pull", "-q", "--tls-verify=false", &r]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(ids(e.root(), &r), ids(src.root(), "busybox"));
}

#[test]
fn run_pulls_a_missing_image_and_pull_policy() {
    let reg = barge_registry(&[]);
    let src = Env::new();
    let r = format!("{}/auto/bb:1", reg.addr);
    src.ok(&["push", "-q", "busybox", &r]);
    let e = Empty::new();
    let o = e.run(&["run", "--rm", "--pull", "never", &r, "true"]);
    assert_ne!(o.code, 0, "--pull never must not pull: {o}");
    let o = e.run(&["run", "--rm", &r, "echo", "auto-pulled"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout.trim(), "auto-pulled", "{o}");
    assert!(o.stderr.contains("Unable to find image"), "{o}");
    let o = e.run(&["run", "--rm", "--pull", "sometimes", &r, "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("invalid pull option"), "{o}");

    // `build` pulls a FROM image it does not have.
    let b = Empty::new();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {r}\nRUN echo built-on-pulled > /x\n"),
    )
    .unwrap();
    let o = b.run(&[
        "build",
        "-q",
        "-t",
        "on-pulled",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(
        b.ok(&["run", "--rm", "on-pulled", "cat", "/x"]).trim(),
        "built-on-pulled"
    );
    assert_eq!(ids(b.root(), &r), ids(src.root(), "busybox"));
}

#[test]
fn pull_errors_are_clear_and_change_nothing() {
    let reg = barge_registry(&[]);
    let e = Empty::new();
    let o = e.run(&["pull", &format!("{}/nope/missing:1", reg.addr)]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("not found") || o.stderr.contains("unknown"),
        "names what is missing: {o}"
    );
    let o = e.run(&["pull", "--verify-digest", &format!("{}/x/y:1", reg.addr)]);
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("digest"), "{o}");
    // A policy requiring digest pins for this registry.
    let src = Env::new();
    let r = format!("{}/pinned/bb:1", reg.addr);
    let pushed = src.ok(&["push", "busybox", &r]);
    let digest = pushed
        .split("digest: ")
        .nth(1)
        .and_then(|x| x.split_whitespace().next())
        .unwrap()
        .to_string();
    let conf = e.root().join("policy.json");
    std::fs::write(
        &conf,
        serde_json::json!({"require-digest": [reg.addr]}).to_string(),
    )
    .unwrap();
    let conf_s = conf.to_str().unwrap();
    let o = e.run(&["pull", "--registries-config", conf_s, &r]);
    assert_ne!(
        o.code, 0,
        "unpinned pull allowed by a require-digest policy: {o}"
    );
    assert!(o.stderr.contains("digest"), "{o}");
    // Nothing is listed after the failures.
    let list = e.ok(&["images", "-q"]);
    assert!(list.trim().is_empty(), "{list}");
    e.ok(&["system", "check"]);
    let pinned = format!("{}/pinned/bb@{digest}", reg.addr);
    e.ok(&["pull", "-q", "--registries-config", conf_s, &pinned]);
    assert_eq!(ids(e.root(), &pinned), ids(src.root(), "busybox"));
}
