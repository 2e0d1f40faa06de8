//! The runtime in the foreground (`run` without `--detach`, `exec` without
//! `--detach`): forward signals to the container's process, proxy a pty
//! between our stdio and the container's terminal, and wait for the exit.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::{io_err, Result};
use crate::sys::{self, Pid, WaitStatus};

/// Signals a foreground runtime passes on to the container (as runc does).
const FORWARDED: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCHLD,
    libc::SIGCONT,
    libc::SIGALRM,
    libc::SIGPIPE,
];

/// Blocks the forwarded signals and returns the signalfd; call before the
/// child may exit, then [`wait_forwarding`].
pub fn block_signals() -> Result<OwnedFd> {
    sys::signalfd(FORWARDED).map_err(|e| io_err("signalfd", e))
}

fn copy_winsize(from: BorrowedFd, to: BorrowedFd) {
    if let Some((r, c)) = sys::get_winsize(from) {
        let _ = sys::set_winsize(to, r, c);
    }
}

/// Wait for `pid` (our child) while forwarding signals and, with a pty
/// master, proxying stdin → master and master → stdout. Returns the exit
/// code in the shell's convention.
pub fn wait_forwarding(pid: Pid, sigfd: OwnedFd, master: Option<OwnedFd>) -> Result<i32> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stdin_fd = stdin.as_fd();
    let stdout_fd = stdout.as_fd();
    let saved = match &master {
        Some(m) => {
            copy_winsize(stdin_fd, m.as_fd());
            sys::make_raw(stdin_fd).ok()
        }
        None => None,
    };
    let result = proxy_loop(
        pid,
        sigfd.as_fd(),
        master.as_ref().map(|m| m.as_fd()),
        stdin_fd,
        stdout_fd,
    );
    if let Some(t) = saved {
        sys::restore_term(stdin_fd, &t);
    }
    result
}

fn proxy_loop(
    pid: Pid,
    sigfd: BorrowedFd,
    master: Option<BorrowedFd>,
    stdin: BorrowedFd,
    stdout: BorrowedFd,
) -> Result<i32> {
    // The child may have exited before the signalfd existed.
    if let Ok((p, st)) = sys::waitpid(pid, true) {
        if p == pid && st != WaitStatus::StillAlive {
            if let Some(m) = master {
                drain(m, stdout);
            }
            return Ok(st.code());
        }
    }
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut fds = vec![(sigfd, libc::POLLIN)];
        if let Some(m) = master.filter(|_| master_open) {
            fds.push((m, libc::POLLIN));
            if stdin_open {
                fds.push((stdin, libc::POLLIN));
            }
        }
        let rev = match sys::poll(&fds, -1) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("poll", e)),
        };
        if rev[0] & libc::POLLIN != 0 {
            let sig = sys::read_signal(sigfd).map_err(|e| io_err("read signalfd", e))?;
            match sig {
                libc::SIGCHLD => loop {
                    match sys::waitpid(-1, true) {
                        Ok((p, st)) if p == pid => {
                            if let Some(m) = master {
                                drain(m, stdout);
                            }
                            return Ok(st.code());
                        }
                        Ok((0, _)) | Err(_) => break,
                        Ok(_) => continue,
                    }
                },
                libc::SIGWINCH => {
                    if let Some(m) = master {
                        copy_winsize(stdin, m);
                    }
                }
                s => {
                    let _ = sys::kill(pid, s);
                }
            }
        }
        if let Some(m) = master.filter(|_| master_open) {
            if rev.len() > 1 && rev[1] != 0 {
                match sys::read(m, &mut buf) {
                    Ok(0) | Err(_) => master_open = false,
                    Ok(n) => {
                        let _ = sys::write_all(stdout, &buf[..n]);
                    }
                }
            }
            if stdin_open && rev.len() > 2 && rev[2] != 0 {
                match sys::read(stdin, &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = sys::write_all(m, &buf[..n]);
                    }
                }
            }
        }
    }
}

/// Copy what is left in the pty to stdout after the process exited.
fn drain(master: BorrowedFd, stdout: BorrowedFd) {
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(r) = sys::poll(&[(master, libc::POLLIN)], 0) {
        if r[0] & libc::POLLIN == 0 {
            break;
        }
        match sys::read(master, &mut buf) {
            Ok(n) if n > 0 => {
                let _ = sys::write_all(stdout, &buf[..n]);
            }
            _ => break,
        }
    }
}
