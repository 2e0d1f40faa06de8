//! File-descriptor passing over Unix sockets (`SCM_RIGHTS`).
//!
//! Used to hand the seccomp notify fd to the agent at `listenerPath` and for
//! the console socket (the pty master). [`send_fds`] and [`recv_fds`] are
//! the only places that build `msghdr`/`cmsghdr` by hand.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The most descriptors Linux accepts in one `SCM_RIGHTS` message
/// (`SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// Size in bytes of the control buffer for `n` descriptors, and the
/// `cmsg_len` of the single `SCM_RIGHTS` header carrying them.
fn cmsg_sizes(n: usize) -> (usize, usize) {
    // `n <= MAX_FDS`, so the byte count fits easily in a `c_uint`.
    let bytes = (n * mem::size_of::<RawFd>()) as libc::c_uint;
    // SAFETY: CMSG_SPACE and CMSG_LEN are pure arithmetic on their argument.
    unsafe {
        (
            libc::CMSG_SPACE(bytes) as usize,
            libc::CMSG_LEN(bytes) as usize,
        )
    }
}

/// A control-message buffer aligned for `cmsghdr` (8 bytes on every Linux
/// target).
fn cmsg_buffer(space: usize) -> Vec<u64> {
    vec![0u64; space.div_ceil(mem::size_of::<u64>())]
}

fn empty_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is a plain C struct (pointers, lengths, flags and, on
    // some libcs, padding); all-zero bytes is a valid, empty value.
    unsafe { mem::zeroed() }
}

/// Sends `payload` with `fds` attached as `SCM_RIGHTS` on the connected Unix
/// socket `sock`.
///
/// The descriptors travel with the first `sendmsg(2)`; if a stream socket
/// accepts only part of the payload, the rest follows in plain sends without
/// descriptors (as the OCI spec allows for the container process state). An
/// empty `payload` with descriptors is sent as a single NUL byte, since a
/// stream socket drops ancillary data that comes with no data byte.
/// `SIGPIPE` is suppressed (`MSG_NOSIGNAL`): a closed peer gives `EPIPE`.
pub fn send_fds(sock: BorrowedFd<'_>, fds: &[BorrowedFd<'_>], payload: &[u8]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot send {} file descriptors in one message (at most {MAX_FDS})",
                fds.len()
            ),
        ));
    }
    const NUL: [u8; 1] = [0];
    let data: &[u8] = if payload.is_empty() && !fds.is_empty() {
        &NUL
    } else {
        payload
    };

    let mut sent = 0;
    if !fds.is_empty() {
        let (space, len) = cmsg_sizes(fds.len());
        let mut cbuf = cmsg_buffer(space);
        let mut iov = libc::iovec {
            iov_base: data.as_ptr().cast_mut().cast(),
            iov_len: data.len(),
        };
        let mut msg = empty_msghdr();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` = CMSG_SPACE(fds bytes)
        // zeroed bytes, aligned for cmsghdr, so CMSG_FIRSTHDR returns a
        // non-null header with room for `fds.len()` ints after CMSG_DATA.
        // The writes stay inside `cbuf`, which outlives this block.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = len as _;
            let out = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                out.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
        sent = loop {
            // SAFETY: `msg` points at live buffers (`iov` -> `data`, `cbuf`)
            // of the lengths it declares; sendmsg only reads them.
            let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
            if n >= 0 {
                break n as usize;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        };
    }

    while sent < data.len() {
        let rest = &data[sent..];
        // SAFETY: `rest` is a live slice; send only reads `rest.len()` bytes.
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        sent += n as usize;
    }
    Ok(())
}

/// Receives one message from `sock` into `buf`, accepting up to `max_fds`
/// descriptors (capped at [`MAX_FDS`]) passed with `SCM_RIGHTS`.
///
/// Returns the number of payload bytes (0 at end of stream) and the received
/// descriptors, in order, all close-on-exec. On a stream socket one call may
/// return only part of what the peer sent: read on for the rest. If the peer
/// sent more descriptors than `max_fds`, the ones that arrived are closed and
/// an error is returned.
pub fn recv_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let max_fds = max_fds.min(MAX_FDS);
    let (space, _) = if max_fds == 0 {
        (0, 0)
    } else {
        cmsg_sizes(max_fds)
    };
    let mut cbuf = cmsg_buffer(space);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg = empty_msghdr();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if space > 0 {
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
    }

    let n = loop {
        // SAFETY: `msg` points at live, writable buffers (`iov` -> `buf`,
        // `cbuf`) of exactly the lengths it declares.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };

    let mut fds = Vec::new();
    if space > 0 && msg.msg_controllen > 0 {
        let (_, header_len) = cmsg_sizes(0);
        // SAFETY: the kernel filled `cbuf` with msg_controllen bytes of
        // well-formed control messages; CMSG_FIRSTHDR/CMSG_NXTHDR stay within
        // that length and return null past the end. For SCM_RIGHTS the data
        // is `(cmsg_len - CMSG_LEN(0)) / 4` descriptors that the kernel has
        // just installed in our table: nobody else owns them.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let count = ((*cmsg).cmsg_len as usize).saturating_sub(header_len)
                        / mem::size_of::<RawFd>();
                    let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                    for i in 0..count {
                        fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
    }
    // CMSG_SPACE rounds up, so a few more than `max_fds` may fit without
    // MSG_CTRUNC: refuse those too.
    if msg.msg_flags & libc::MSG_CTRUNC != 0 || fds.len() > max_fds {
        // `fds` is dropped here, closing what did arrive.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer sent more file descriptors than the {max_fds} expected"),
        ));
    }
    Ok((n, fds))
}

/// Duplicates the raw descriptor `fd` (close-on-exec) into a new descriptor
/// owned by the caller; the original is left as it is.
///
/// This is how safe code adopts a descriptor that a C library hands out as a
/// bare integer it keeps owning (libseccomp's notify fd).
pub fn dup_raw_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) touches no memory of ours; on a number
    // that is not an open descriptor it fails with EBADF.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just created by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::{UnixDatagram, UnixStream};

    #[test]
    fn socket_round_trip_over_socketpair() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"hello").unwrap();
        let (_r, w) = UnixStream::pair().unwrap();

        send_fds(a.as_fd(), &[file.as_fd(), w.as_fd()], b"payload").unwrap();
        let mut buf = [0u8; 64];
        let (n, fds) = recv_fds(b.as_fd(), &mut buf, 4).unwrap();
        assert_eq!(&buf[..n], b"payload");
        assert_eq!(fds.len(), 2);

        // The first fd shares the open file description: same offset/content.
        let mut got = File::from(fds.into_iter().next().unwrap());
        got.rewind().unwrap();
        let mut s = String::new();
        got.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
    }

    #[test]
    fn socket_received_fds_are_cloexec_and_usable() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r, w) = UnixStream::pair().unwrap();
        send_fds(a.as_fd(), &[w.as_fd()], b"x").unwrap();
        drop(w);
        let mut buf = [0u8; 8];
        let (n, mut fds) = recv_fds(b.as_fd(), &mut buf, 1).unwrap();
        assert_eq!(n, 1);
        let w2 = fds.pop().unwrap();
        let flags = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", w2.as_raw_fd()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("flags:").map(|v| v.trim().to_string()))
            .unwrap();
        let flags = u32::from_str_radix(&flags, 8).unwrap();
        assert_ne!(
            flags & libc::O_CLOEXEC as u32,
            0,
            "received fd must be O_CLOEXEC"
        );
        let mut w2 = UnixStream::from(w2);
        w2.write_all(b"through").unwrap();
        drop(w2);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "through");
    }

    #[test]
    fn socket_empty_payload_still_carries_fds() {
        let (a, b) = UnixStream::pair().unwrap();
        let f = tempfile::tempfile().unwrap();
        send_fds(a.as_fd(), &[f.as_fd()], b"").unwrap();
        let mut buf = [0u8; 8];
        let (n, fds) = recv_fds(b.as_fd(), &mut buf, 1).unwrap();
        assert_eq!((n, buf[0], fds.len()), (1, 0, 1));
    }

    #[test]
    fn socket_no_fds_and_eof() {
        let (a, b) = UnixStream::pair().unwrap();
        send_fds(a.as_fd(), &[], b"plain").unwrap();
        drop(a);
        let mut buf = [0u8; 16];
        let (n, fds) = recv_fds(b.as_fd(), &mut buf, 0).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"plain"[..], 0));
        let (n, fds) = recv_fds(b.as_fd(), &mut buf, 2).unwrap();
        assert_eq!((n, fds.len()), (0, 0));
    }

    #[test]
    fn socket_too_many_fds_is_an_error() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let f1 = tempfile::tempfile().unwrap();
        let f2 = tempfile::tempfile().unwrap();
        let f3 = tempfile::tempfile().unwrap();
        let mut buf = [0u8; 8];
        // Two fds fit the padded buffer for one; three are truncated.
        send_fds(a.as_fd(), &[f1.as_fd(), f2.as_fd()], b"two").unwrap();
        let err = recv_fds(b.as_fd(), &mut buf, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        send_fds(a.as_fd(), &[f1.as_fd(), f2.as_fd(), f3.as_fd()], b"three").unwrap();
        let err = recv_fds(b.as_fd(), &mut buf, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Nothing leaked: the next message is received normally.
        send_fds(a.as_fd(), &[f1.as_fd()], b"one").unwrap();
        let (n, fds) = recv_fds(b.as_fd(), &mut buf, 1).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"one"[..], 1));
    }

    #[test]
    fn socket_dup_raw_fd() {
        let f = tempfile::tempfile().unwrap();
        let d = dup_raw_fd(f.as_raw_fd()).unwrap();
        assert_ne!(d.as_raw_fd(), f.as_raw_fd());
        assert!(dup_raw_fd(-1).is_err());
    }
}
