//! Processes the runtime starts in a container: the container's init
//! ([`init`]) and exec'd processes ([`exec`]), the sync [`channel`] between
//! them and the runtime, and the steps both share before `execve`
//! ([`finalize`]).

pub mod channel;
pub mod finalize;
pub mod init;
