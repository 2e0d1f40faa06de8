//! The sync channel between the runtime (parent) and a process it starts in
//! the container (container init, or an exec'd process).
//!
//! A SOCK_SEQPACKET socketpair: every message is one packet, a tag byte and
//! a payload, optionally with file descriptors. The handshake, numbered:
//!
//! ```text
//! parent                                   child (after clone)
//!   write uid/gid maps
//!   1. Go(pid)  ------------------------->  join namespaces, hostname, rootfs bind
//!   join the cgroup (a cgroup v1 move can
//!   wait an RCU grace period: the child
//!   works meanwhile)
//!   1b. Cgroup ------------------------->   cgroup namespace, mounts, /dev
//!                <-----------------------  2. Hooks   (only if prestart/createRuntime hooks exist)
//!   run prestart + createRuntime hooks
//!   3. HooksDone ------------------------>  createContainer hooks, pivot_root, ...
//!                <-----------------------  [Pty(master fd)] (foreground run/exec with a terminal)
//!                <-----------------------  4. Ready [+ seccomp notify fd]
//!   write state.json, pid file
//!   5. Start (run only; create uses the exec FIFO instead)  --> startContainer hooks, execve
//!
//! any time: child --- Error(message) ---> parent, and the child exits 1
//! ```

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::{Result, RuntimeError};
use crate::sys;

pub const GO: u8 = b'G';
pub const CGROUP: u8 = b'C';
/// Two-stage start (new user namespace + joined ones): stage 1 asks for
/// its uid/gid maps, then reports the pid of the init it forked.
pub const USERNS: u8 = b'U';
pub const USERNS_DONE: u8 = b'u';
pub const INIT_PID: u8 = b'I';
pub const HOOKS: u8 = b'H';
pub const HOOKS_DONE: u8 = b'h';
pub const READY: u8 = b'R';
pub const START: u8 = b'S';
pub const ERROR: u8 = b'E';
pub const PTY: u8 = b'P';

pub struct Channel {
    fd: OwnedFd,
}

/// One received message.
pub struct Message {
    pub tag: u8,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

impl Message {
    /// A message that is not the one expected: the init's own error, or a
    /// protocol error.
    pub fn into_error(self) -> RuntimeError {
        if self.tag == ERROR {
            RuntimeError::Init(String::from_utf8_lossy(&self.payload).into_owned())
        } else {
            RuntimeError::Other(format!("sync: unexpected message '{}'", self.tag as char))
        }
    }
}

impl Channel {
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = sys::socketpair().map_err(|e| crate::error::io_err("socketpair", e))?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn send(&self, tag: u8, payload: &[u8]) -> Result<()> {
        self.send_fds(tag, payload, &[])
    }

    pub fn send_fds(&self, tag: u8, payload: &[u8], fds: &[BorrowedFd]) -> Result<()> {
        let mut buf = Vec::with_capacity(payload.len() + 1);
        buf.push(tag);
        buf.extend_from_slice(payload);
        sys::socket::send_fds(self.fd.as_fd(), fds, &buf)
            .map_err(|e| crate::error::io_err("sync socket send", e))
    }

    /// Receive one message; `None` when the peer closed its end.
    pub fn recv(&self) -> Result<Option<Message>> {
        let mut buf = vec![0u8; 64 * 1024];
        let (n, fds) = sys::socket::recv_fds(self.fd.as_fd(), &mut buf, 4)
            .map_err(|e| crate::error::io_err("sync socket receive", e))?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        let tag = buf[0];
        buf.remove(0);
        Ok(Some(Message {
            tag,
            payload: buf,
            fds,
        }))
    }

    /// Wait for a message with the given tag; an Error message or a closed
    /// channel becomes an error.
    pub fn expect(&self, tag: u8) -> Result<Message> {
        match self.recv()? {
            Some(m) if m.tag == tag => Ok(m),
            Some(m) => Err(m.into_error()),
            None => Err(RuntimeError::Other("sync: the other side exited".into())),
        }
    }
}
