//! Barge's container engine: container records and their state, the OCI
//! bundle built from an image and Docker's flags, the OCI runtime run as a
//! separate binary, the per-container monitor (stdio, logs, exit codes,
//! restart policies, health checks), attach, events, and the file-system
//! operations on a container (cp, diff, export, commit).
//!
//! Daemonless: every command works on the state directory directly; file
//! locks make concurrent commands safe and the monitor is the only process
//! that outlives a command.

#![forbid(unsafe_code)]

pub mod attach;
pub mod error;
pub mod events;
pub mod fsops;
pub mod ids;
pub mod lifecycle;
pub mod logfile;
pub mod monitor;
pub mod network;
pub mod opts;
pub mod record;
pub mod runtime;
pub mod spec;
pub mod store;
pub mod time;
pub mod volumes;

pub use error::{EngineError, Result};
