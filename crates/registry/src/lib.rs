//! barge-registry: an OCI distribution server.
#![forbid(unsafe_code)]
