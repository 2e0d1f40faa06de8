//! Barge's builder: `barge build` from a Dockerfile.
//!
//! - [`parser`]: Dockerfile syntax as BuildKit parses it (directives,
//!   continuations, heredocs, flags, JSON and shell forms) into typed
//!   instructions, and the shell-word expansion of ARG/ENV values.
//! - [`context`]: the build context (a directory or a tar), `.dockerignore`,
//!   COPY/ADD source selection and content hashes for the cache.
//! - [`builder`]: running the stages a target needs: metadata steps change
//!   the config, RUN runs in a container, COPY/ADD write into an overlay;
//!   filesystem steps become layers and are cached.
//! - [`image`]: a stage's image (manifest and config) while it is built.

#![forbid(unsafe_code)]

pub mod builder;
pub mod context;
pub mod error;
pub mod image;
pub mod parser;

pub use error::{BuildError, Result};
