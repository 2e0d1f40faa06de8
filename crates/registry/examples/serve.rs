//! Runs a registry: `cargo run -p barge-registry --example serve -- ADDR ROOT`.

use barge_registry::{Config, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:5000".into());
    let root = args.next().unwrap_or_else(|| "registry-root".into());
    let server = Server::bind(Config::new(addr.parse()?, root.into()))?;
    eprintln!("serving on {}", server.local_addr());
    server.serve_blocking()?;
    Ok(())
}
