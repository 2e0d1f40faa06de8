//! Barge's container networking, as building blocks the engine uses for
//! its default `bridge` network: IP address management ([`ipam`]: one
//! allocator per network, its state in a directory), links ([`link`]: bridges and veth pairs into a
//! container's network namespace over netlink, with a fake for tests) and
//! Barge's own nftables table ([`nft`]: masquerade, isolation between
//! bridges, DNAT for published ports).

#![forbid(unsafe_code)]

pub mod dns;
pub mod error;
pub mod ipam;
pub mod link;
pub mod nft;
pub mod proxy;

pub use error::NetError;
