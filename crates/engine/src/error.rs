//! The engine's errors. Messages follow Docker's wording where it has one;
//! [`EngineError::exit_code`] maps them to Docker's exit codes.

use std::path::{Path, PathBuf};

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    #[error("remove {name}: volume is in use - [{ids}]")]
    VolumeInUse { name: String, ids: String },
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse { name: String, id: String },
    /// A flag or argument a user gave is wrong; the message says how.
    #[error("{0}")]
    InvalidArgument(String),
    /// The container is not in a state that allows the operation.
    #[error("{0}")]
    Conflict(String),
    /// The container's command could not be executed (exit code 126).
    #[error("{0}")]
    CannotExecute(String),
    /// The container's command was not found (exit code 127).
    #[error("{0}")]
    CommandNotFound(String),
    /// The OCI runtime failed; its own message.
    #[error("{0}")]
    Runtime(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] barge_image::store::StoreError),
    #[error(transparent)]
    Snapshot(#[from] barge_image::snapshot::SnapshotError),
    #[error(transparent)]
    Layer(#[from] barge_image::layer::LayerError),
    #[error(transparent)]
    Net(#[from] barge_net::NetError),
    #[error("{what}: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
}

impl EngineError {
    /// Docker's exit code for a failed `run`/`start`/`exec`: 126 when the
    /// command cannot be executed, 127 when it is not found, 125 for any
    /// other error of the engine.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::CannotExecute(_) => 126,
            EngineError::CommandNotFound(_) => 127,
            _ => 125,
        }
    }
}

/// `map_err` helper for I/O errors on a path.
pub fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> EngineError + 'a {
    move |source| EngineError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// `map_err` helper for rustix errors on a path.
pub fn errno<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(rustix::io::Errno) -> EngineError + 'a {
    move |e| EngineError::Io {
        what,
        path: path.to_path_buf(),
        source: e.into(),
    }
}
