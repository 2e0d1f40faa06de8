//! Build errors. A failing step says which one (line and instruction).

pub type Result<T, E = BuildError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] crate::parser::ParseError),
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
    #[error(transparent)]
    Store(#[from] barge_image::store::StoreError),
    #[error(transparent)]
    Snapshot(#[from] barge_image::snapshot::SnapshotError),
    #[error(transparent)]
    Engine(#[from] barge_engine::EngineError),
    /// A step failed: `dockerfile:LINE: INSTRUCTION: why`.
    #[error("Dockerfile:{line}: {instruction}: {message}")]
    Step {
        line: usize,
        instruction: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("JSON: {0}")]
    Json(serde_json::Error),
}

impl BuildError {
    pub fn json(e: serde_json::Error) -> BuildError {
        BuildError::Json(e)
    }
}

/// `map_err` helper for I/O errors on a path.
pub fn io<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> BuildError + 'a {
    move |source| BuildError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
