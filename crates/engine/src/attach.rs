//! Attach: the monitor's unix socket (`containers/<id>/attach.sock`) and
//! the client side used by `run`, `start -a` and `attach`.
//!
//! Frames both ways: one kind byte, a big-endian u32 length, the payload.
//! Client → monitor: stdin data, stdin closed, window resize (rows, cols as
//! u16). Monitor → client: stdout, stderr, and the exit code (i32) once the
//! container has exited for good.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::error::{errno, io, EngineError, Result};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const RESIZE: u8 = 3;
pub const STDIN_EOF: u8 = 4;
pub const EXIT: u8 = 5;
/// The container's networks changed (`network connect`/`disconnect`): the
/// monitor refreshes its DNS and resolv.conf, then answers with the same
/// kind.
pub const NETWORK: u8 = 6;

/// Largest payload accepted in a frame.
pub const MAX_FRAME: usize = 1 << 20;

pub fn write_frame(w: &mut impl Write, kind: u8, data: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(5 + data.len());
    buf.push(kind);
    buf.extend_from_slice(&(data.len() as u32).to_be_bytes());
    buf.extend_from_slice(data);
    w.write_all(&buf)
}

/// Reads one frame; `None` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "attach frame too large",
        ));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    Ok(Some((head[0], data)))
}

/// Splits a byte stream (read without blocking) into frames.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
}

impl FrameBuffer {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame; `Err` for a frame over [`MAX_FRAME`].
    pub fn next_frame(&mut self) -> io::Result<Option<(u8, Vec<u8>)>> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "attach frame too large",
            ));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let data = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, data)))
    }
}

/// A path to `name` inside `dir` that stays short (unix socket paths are
/// limited to 108 bytes): `/proc/self/fd/<dirfd>/name`. The fd is
/// returned and must stay open while the path is used.
pub fn short_path(dir: &Path, name: &str) -> Result<(std::os::fd::OwnedFd, String)> {
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(errno("open", dir))?;
    let p = format!(
        "/proc/self/fd/{}/{name}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    );
    Ok((fd, p))
}

/// Connects to a container's monitor.
pub fn connect(container_dir: &Path) -> Result<UnixStream> {
    let (_fd, p) = short_path(container_dir, "attach.sock")?;
    UnixStream::connect(&p).map_err(|e| {
        if matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
        ) {
            EngineError::Conflict("You cannot attach to a stopped container, start it first".into())
        } else {
            io("connect to the monitor of", container_dir)(e)
        }
    })
}

/// Tells the monitor of a running container that its networks changed
/// and waits (up to 5 s) until it has refreshed them.
pub fn notify_network_change(container_dir: &Path) -> Result<()> {
    let mut s = connect(container_dir)?;
    let dir = || io("notify the monitor of", container_dir);
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .map_err(dir())?;
    write_frame(&mut s, NETWORK, &[]).map_err(dir())?;
    loop {
        match read_frame(&mut s).map_err(dir())? {
            Some((NETWORK, _)) | None => return Ok(()),
            Some(_) => {}
        }
    }
}

/// How an attach session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachEnd {
    /// The container exited with this code.
    Exited(i32),
    /// The user typed the detach keys.
    Detached,
    /// The monitor closed the connection without an exit code.
    Closed,
}

/// What to relay.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    pub stdin: bool,
    pub tty: bool,
    /// Detach sequence (Docker's default: ctrl-p ctrl-q); empty = none.
    pub detach_keys: Vec<u8>,
    /// Close the container's stdin when our stdin ends.
    pub close_stdin: bool,
}

/// Parses Docker's `--detach-keys` (`ctrl-p,ctrl-q`, `a`, `ctrl-@`...).
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for k in s.split(',') {
        let k = k.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b] if b.is_ascii_lowercase() => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => {
                    return Err(EngineError::InvalidArgument(format!(
                        "Invalid detach keys ({s}) provided"
                    )))
                }
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(EngineError::InvalidArgument(format!(
                "Invalid detach keys ({s}) provided"
            )));
        }
    }
    Ok(out)
}

/// Puts the terminal on `fd` in raw mode until dropped.
pub struct RawMode {
    fd: std::os::fd::OwnedFd,
    saved: rustix::termios::Termios,
}

impl RawMode {
    pub fn enter(fd: impl AsFd) -> Option<RawMode> {
        let fd = fd.as_fd().try_clone_to_owned().ok()?;
        let saved = rustix::termios::tcgetattr(&fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            &self.fd,
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

fn winsize_frame() -> Option<Vec<u8>> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    let mut d = Vec::with_capacity(4);
    d.extend_from_slice(&ws.ws_row.to_be_bytes());
    d.extend_from_slice(&ws.ws_col.to_be_bytes());
    Some(d)
}

/// Relays our stdio to and from an attached container until it exits, the
/// user detaches, or the monitor hangs up.
pub fn session(stream: UnixStream, opts: &AttachOptions) -> Result<AttachEnd> {
    let is_tty_in = rustix::termios::isatty(std::io::stdin());
    let _raw = if opts.tty && opts.stdin && is_tty_in {
        RawMode::enter(std::io::stdin())
    } else {
        None
    };
    let writer = stream
        .try_clone()
        .map_err(|e| EngineError::Runtime(format!("attach: {e}")))?;
    let (detach_tx, detach_rx) = std::sync::mpsc::channel::<()>();
    if opts.tty && rustix::termios::isatty(std::io::stdout()) {
        // Window size now and on change (polled: no signal handler needed).
        let mut w = writer
            .try_clone()
            .map_err(|e| EngineError::Runtime(format!("attach: {e}")))?;
        std::thread::spawn(move || {
            let mut last = None;
            loop {
                let cur = winsize_frame();
                if cur.is_some() && cur != last {
                    if let Some(f) = &cur {
                        if write_frame(&mut w, RESIZE, f).is_err() {
                            return;
                        }
                    }
                    last = cur;
                }
                std::thread::sleep(std::time::Duration::from_millis(150));
            }
        });
    }
    if opts.stdin {
        let mut w = writer;
        let keys = opts.detach_keys.clone();
        let close = opts.close_stdin;
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 8192];
            let mut matched = 0usize;
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        if close {
                            let _ = write_frame(&mut w, STDIN_EOF, &[]);
                        }
                        return;
                    }
                    Ok(n) => n,
                };
                let mut out = Vec::with_capacity(n);
                for &b in &buf[..n] {
                    if !keys.is_empty() && b == keys[matched] {
                        matched += 1;
                        if matched == keys.len() {
                            let _ = detach_tx.send(());
                            let _ = w.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                        continue;
                    }
                    if matched > 0 {
                        out.extend_from_slice(&keys[..matched]);
                        matched = 0;
                    }
                    out.push(b);
                }
                if !out.is_empty() && write_frame(&mut w, STDIN, &out).is_err() {
                    return;
                }
            }
        });
    }
    let mut r = std::io::BufReader::new(stream);
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    loop {
        let frame = read_frame(&mut r).unwrap_or_default();
        let Some((kind, data)) = frame else {
            if detach_rx.try_recv().is_ok() {
                return Ok(AttachEnd::Detached);
            }
            return Ok(AttachEnd::Closed);
        };
        match kind {
            STDOUT => {
                let mut o = stdout.lock();
                let _ = o.write_all(&data);
                let _ = o.flush();
            }
            STDERR => {
                let mut e = stderr.lock();
                let _ = e.write_all(&data);
                let _ = e.flush();
            }
            EXIT => {
                let code = data
                    .get(..4)
                    .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                return Ok(AttachEnd::Exited(code));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut v = Vec::new();
        write_frame(&mut v, STDOUT, b"hello").unwrap();
        write_frame(&mut v, EXIT, &3i32.to_be_bytes()).unwrap();
        let mut fb = FrameBuffer::default();
        fb.push(&v[..3]);
        assert!(fb.next_frame().unwrap().is_none());
        fb.push(&v[3..]);
        assert_eq!(fb.next_frame().unwrap(), Some((STDOUT, b"hello".to_vec())));
        assert_eq!(fb.next_frame().unwrap().unwrap().0, EXIT);
        let mut c = std::io::Cursor::new(v);
        assert_eq!(read_frame(&mut c).unwrap().unwrap().1, b"hello");
        let mut huge = vec![STDIN];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut fb = FrameBuffer::default();
        fb.push(&huge);
        assert!(fb.next_frame().is_err());
    }

    #[test]
    fn detach_keys() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(parse_detach_keys("ctrl-").is_err());
        assert!(parse_detach_keys("abc").is_err());
    }
}
