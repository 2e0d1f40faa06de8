//! barge-runtime: the OCI runtime-spec implementation for Linux.
//!
//! This crate owns everything that happens between reading a bundle's
//! `config.json` and `execve` of the container's process: namespaces, the
//! rootfs (mounts, pivot_root, devices, masked paths), cgroups (v1 and v2
//! behind one trait), capabilities, seccomp, hooks and the console socket.
//! It is synchronous and single-threaded on purpose: it forks.
//!
//! `unsafe` lives only in [`sys`] (the syscall layer); every other module
//! uses its safe wrappers.

pub mod capabilities;
pub mod cgroups;
pub mod config;
pub mod container;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod log;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod state;
pub mod sys;
pub mod tty;
pub mod utils;

pub use error::{Result, RuntimeError};
pub mod reexec;
