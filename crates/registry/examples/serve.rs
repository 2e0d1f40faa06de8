//! Runs a registry: `cargo run -p barge-registry --example serve -- ADDR ROOT`.
//! Optional environment: `HTPASSWD=<file>`, `TLS_CERT=<pem>` with
//! `TLS_KEY=<pem>`, `QUIET=1`.

use barge_registry::{Config, Server, TlsFiles};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:5000".into());
    let root = args.next().unwrap_or_else(|| "registry-root".into());
    let mut config = Config::new(addr.parse()?, root.into());
    config.htpasswd = std::env::var_os("HTPASSWD").map(Into::into);
    if let (Some(cert), Some(key)) = (std::env::var_os("TLS_CERT"), std::env::var_os("TLS_KEY")) {
        config.tls = Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        });
    }
    config.quiet = std::env::var_os("QUIET").is_some();
    let server = Server::bind(config)?;
    eprintln!("serving on {}", server.local_addr());
    server.serve_blocking()?;
    Ok(())
}
