//! Barge's container networking. So far: IP address management
//! ([`ipam`]), one allocator per network with its state in a directory.

#![forbid(unsafe_code)]

pub mod error;
pub mod ipam;
pub mod link;
pub mod nft;

pub use error::NetError;
