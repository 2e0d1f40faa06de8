//! The runtime's error type: one enum gathering every module's failures.
//!
//! Messages are lower-case, without a trailing period, and name the object
//! that was wrong (a path, a container id, a config field) so that the CLI can
//! print them as one line.

use std::io;

use crate::cgroups::CgroupError;
use crate::seccomp::SeccompError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// config.json is unreadable, not JSON, or violates the spec.
    #[error("invalid config: {0}")]
    Config(String),
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container with id \"{0}\" already exists")]
    Exists(String),
    #[error("invalid container id \"{0}\": use letters, digits, '_', '+', '-' and '.' only")]
    InvalidId(String),
    /// An operation is not valid in the container's current status.
    #[error("{0}")]
    State(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error("{0}")]
    Hook(String),
    /// The container's init process reported a failure during setup.
    #[error("{0}")]
    Init(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// Attach a description of what was being done to an I/O error.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| RuntimeError::Io {
            context: what(),
            source,
        })
    }
}

/// Shorthand for an I/O error with context when there is no `io::Result`.
pub fn io_err(context: impl Into<String>, source: io::Error) -> RuntimeError {
    RuntimeError::Io {
        context: context.into(),
        source,
    }
}
