//! The syscall layer: the only place in Barge with `unsafe`.
//!
//! Each function is a thin, safe wrapper over one syscall (or a short fixed
//! sequence of them) and returns `std::io::Result`. Callers above this layer
//! never touch raw pointers.

pub mod bpf;
