//! The listener: binding, TLS, the accept loop and graceful shutdown.
//!
//! [`Server::bind`] does everything that can fail on bad configuration
//! (storage, htpasswd, token key, certificates, the socket) before any
//! request is served. The accept loop hands each connection to hyper's
//! HTTP/1.1 server; on shutdown it stops accepting, asks every connection to
//! finish its current request, and waits up to [`DRAIN_TIMEOUT`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::auth::{Htpasswd, TokenAuth};
use crate::error::RegistryError;
use crate::handlers::{handle, AppState};
use crate::storage::Registry;
use crate::{Config, TlsFiles};

/// How long shutdown waits for requests in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// hyper's read buffer per connection: big, so uploads arrive in big chunks.
const READ_BUF: usize = 1 << 20;

/// Upload sessions untouched this long are removed (at startup and hourly).
const STALE_UPLOAD_SECS: u64 = 24 * 3600;

/// How long a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);

/// A bound, configured registry server, not yet serving.
pub struct Server {
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// A server running on a background thread; shuts down on
/// [`ServerHandle::shutdown`] or drop.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), RegistryError>>>,
}

fn load_tls(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, RegistryError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| RegistryError::Tls {
            reason: format!(
                "cannot read certificates from {}: {e}",
                files.cert.display()
            ),
        })?;
    if certs.is_empty() {
        return Err(RegistryError::Tls {
            reason: format!(
                "{} holds no PEM CERTIFICATE block; give the certificate chain, leaf first",
                files.cert.display()
            ),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| RegistryError::Tls {
        reason: format!(
            "cannot read a private key (PKCS#8, RSA or SEC1 PEM) from {}: {e}",
            files.key.display()
        ),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Tls {
            reason: format!("TLS setup: {e}"),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| RegistryError::Tls {
            reason: format!(
                "the key in {} does not fit the certificate in {}: {e}",
                files.key.display(),
                files.cert.display()
            ),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_htpasswd(path: &Path) -> Result<Htpasswd, RegistryError> {
    Htpasswd::load(path)
}

impl Server {
    /// Opens the storage, loads the auth and TLS files and binds the socket.
    pub fn bind(config: Config) -> Result<Server, RegistryError> {
        let reg = Registry::open(&config.root)?;
        reg.purge_uploads(STALE_UPLOAD_SECS);
        let htpasswd = config.htpasswd.as_deref().map(load_htpasswd).transpose()?;
        let token = config.token.clone().map(TokenAuth::new).transpose()?;
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
        let listener =
            std::net::TcpListener::bind(config.addr).map_err(|source| RegistryError::Bind {
                addr: config.addr,
                source,
            })?;
        let io = |what: &str| {
            let what = format!("{what} {}", config.addr);
            move |source| RegistryError::Io { what, source }
        };
        listener
            .set_nonblocking(true)
            .map_err(io("set non-blocking on"))?;
        let addr = listener.local_addr().map_err(io("query the address of"))?;
        let state = Arc::new(AppState::new(
            reg,
            htpasswd,
            token,
            config.delete_enabled,
            config.quiet,
        ));
        Ok(Server {
            state,
            listener,
            tls,
            addr,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves on a runtime of its own until SIGINT or SIGTERM, then drains
    /// requests in flight and returns.
    pub fn serve_blocking(self) -> Result<(), RegistryError> {
        let rt = runtime()?;
        rt.block_on(self.run(shutdown_signal()))
    }

    /// Serves on a background thread; for tests and embedding.
    pub fn spawn(self) -> Result<ServerHandle, RegistryError> {
        let rt = runtime()?;
        let addr = self.addr;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("barge-registry".into())
            .spawn(move || {
                rt.block_on(self.run(async {
                    let _ = rx.await;
                }))
            })
            .map_err(RegistryError::Runtime)?;
        Ok(ServerHandle {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), RegistryError> {
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(|source| {
            RegistryError::Io {
                what: format!("register the listener on {}", self.addr),
                source,
            }
        })?;
        let acceptor = self.tls.map(tokio_rustls::TlsAcceptor::from);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        let mut purge = tokio::time::interval(Duration::from_secs(3600));
        purge.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = purge.tick() => {
                    let state = self.state.clone();
                    tokio::task::spawn_blocking(move || state.reg.purge_uploads(STALE_UPLOAD_SECS));
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                acc = listener.accept() => {
                    let (tcp, _peer) = match acc {
                        Ok(x) => x,
                        Err(e) => {
                            if !self.state.quiet {
                                eprintln!("registry: accept failed: {e}");
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = tcp.set_nodelay(true);
                    let state = self.state.clone();
                    let stop = stop_rx.clone();
                    let acceptor = acceptor.clone();
                    conns.spawn(async move {
                        match acceptor {
                            None => serve_conn(TokioIo::new(tcp), state, stop).await,
                            Some(a) => {
                                let tls = tokio::time::timeout(Duration::from_secs(30), a.accept(tcp)).await;
                                if let Ok(Ok(s)) = tls {
                                    serve_conn(TokioIo::new(s), state, stop).await;
                                }
                            }
                        }
                    });
                }
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            conns.abort_all();
        }
        Ok(())
    }
}

async fn serve_conn<I>(io: I, state: Arc<AppState>, mut stop: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(state, req.map(Body::new)).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .max_buf_size(READ_BUF)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { let _ = stop.wait_for(|v| *v).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, RegistryError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("barge-registry-worker")
        .build()
        .map_err(RegistryError::Runtime)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server, waiting for requests in flight (up to
    /// [`DRAIN_TIMEOUT`]).
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
