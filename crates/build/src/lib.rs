//! Barge's builder: `barge build` from a Dockerfile.
//!
//! - [`parser`]: Dockerfile syntax as BuildKit parses it (directives,
//!   continuations, heredocs, flags, JSON and shell forms) into typed
//!   instructions, and the shell-word expansion of ARG/ENV values.
//! - [`context`]: the build context (a directory or a tar), `.dockerignore`,
//!   COPY/ADD source selection and content hashes for the cache.

#![forbid(unsafe_code)]

pub mod context;
pub mod parser;
