//! The syscall layer: the only place in Barge with `unsafe`.
//!
//! Each function is a thin, safe wrapper over one syscall (or a short fixed
//! sequence of them) and returns `std::io::Result`. Callers above this layer
//! never touch raw pointers.

pub mod bpf;
pub mod seccomp;
pub mod socket;

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Turn a libc return value into an `io::Result`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A path as a C string; a path with a NUL byte is invalid input.
pub fn cstr(p: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(p.as_ref().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// The pid of a process as seen from this process.
pub type Pid = libc::pid_t;

/// What `clone` returned: in the parent the child's pid, in the child `Child`.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// `clone(2)` with fork semantics (no shared memory, SIGCHLD on exit) and the
/// given namespace flags. The child continues from the same point with a copy
/// of the address space, exactly like `fork`.
pub fn clone_fork(ns_flags: libc::c_int) -> io::Result<Forked> {
    let flags = (ns_flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: with a NULL stack and no CLONE_VM the raw clone syscall behaves
    // like fork(2): the child gets a copy-on-write copy of this process. This
    // process is single-threaded (the runtime never starts threads), so the
    // child inherits no lock held by another thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match check_long(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as Pid)),
    }
}

pub fn setns(fd: BorrowedFd, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: setns only reads its integer arguments.
    check(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare only reads its integer argument.
    check(unsafe { libc::unshare(flags) }).map(drop)
}

/// `mount(2)`. `source`, `fstype` and `data` may be absent.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = source.map(cstr).transpose()?;
    let tgt = cstr(target)?;
    let fst = fstype.map(cstr).transpose()?;
    let dat = data.map(cstr).transpose()?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either NULL or a valid NUL-terminated string
    // that outlives the call.
    check(unsafe {
        libc::mount(
            p(&src),
            tgt.as_ptr(),
            p(&fst),
            flags,
            p(&dat) as *const libc::c_void,
        )
    })
    .map(drop)
}

pub fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let tgt = cstr(target)?;
    // SAFETY: tgt is a valid C string for the duration of the call.
    check(unsafe { libc::umount2(tgt.as_ptr(), flags) }).map(drop)
}

pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let n = cstr(new_root)?;
    let o = cstr(put_old)?;
    // SAFETY: both are valid C strings for the duration of the call.
    check_long(unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) }).map(drop)
}

pub fn chroot(path: &Path) -> io::Result<()> {
    let p = cstr(path)?;
    // SAFETY: p is a valid C string for the duration of the call.
    check(unsafe { libc::chroot(p.as_ptr()) }).map(drop)
}

pub fn fchdir(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: fchdir only reads the descriptor number.
    check(unsafe { libc::fchdir(fd.as_raw_fd()) }).map(drop)
}

pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe the bytes of `name`.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe the bytes of `name`.
    check(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }).map(drop)
}

pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the prctl options used by this crate take integer arguments only.
    check(unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
}

pub fn setresuid(uid: u32) -> io::Result<()> {
    // SAFETY: setresuid only reads its integer arguments.
    check_long(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

pub fn setresgid(gid: u32) -> io::Result<()> {
    // SAFETY: setresgid only reads its integer arguments.
    check_long(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
}

pub fn setgroups(gids: &[u32]) -> io::Result<()> {
    // SAFETY: pointer and length describe `gids`; the raw syscall applies to
    // this thread only, and the process is single-threaded.
    check_long(unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) }).map(drop)
}

pub fn umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

pub fn setrlimit(resource: libc::c_int, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit64 for the duration of the call; a NULL
    // old-limit pointer is allowed.
    check(unsafe { libc::prlimit64(0, resource as _, &lim, std::ptr::null_mut()) }).map(drop)
}

pub fn mknodat(dir: BorrowedFd, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: name is a valid C string; dir is an open descriptor.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, dev) })
        .map(drop)
}

pub fn makedev(major: u64, minor: u64) -> u64 {
    libc::makedev(major as u32, minor as u32)
}

pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let p = cstr(path)?;
    // SAFETY: p is a valid C string for the duration of the call.
    check(unsafe { libc::mkfifo(p.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn kill(pid: Pid, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill only reads its integer arguments.
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// How a waited-for child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
    /// `WNOHANG` and the child has not changed state.
    StillAlive,
}

impl WaitStatus {
    /// The shell's convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            WaitStatus::Exited(c) => c,
            WaitStatus::Signaled(s) => 128 + s,
            WaitStatus::StillAlive => 0,
        }
    }
}

/// `waitpid(2)`; retries on EINTR.
pub fn waitpid(pid: Pid, nohang: bool) -> io::Result<(Pid, WaitStatus)> {
    let mut status: libc::c_int = 0;
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: status is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Ok((0, WaitStatus::StillAlive));
        }
        let ws = if libc::WIFEXITED(status) {
            WaitStatus::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            WaitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            continue;
        };
        return Ok((r, ws));
    }
}

pub fn getpid() -> Pid {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid takes no arguments.
    check(unsafe { libc::setsid() }).map(drop)
}

/// Make `fd` the controlling terminal of this (session leader) process.
pub fn set_controlling_tty(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}

pub fn dup2(old: RawFd, new: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only reads its integer arguments; replacing `new` is the intent.
    check(unsafe { libc::dup2(old, new) }).map(drop)
}

/// Open the pty master in the devpts instance behind `ptmx` (a path or an
/// fd-relative path) and return (master, slave path inside that devpts).
pub fn open_pty(ptmx: &Path) -> io::Result<(OwnedFd, String)> {
    let p = cstr(ptmx)?;
    // SAFETY: p is a valid C string; the returned fd is owned below.
    let fd =
        check(unsafe { libc::open(p.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
    // SAFETY: fd was just returned by open and is owned by nobody else.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int through the pointer.
    check(unsafe { libc::ioctl(fd, libc::TIOCSPTLCK, &mut unlock) })?;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int through the pointer.
    check(unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut n) })?;
    Ok((master, format!("/dev/pts/{n}")))
}

/// Set a terminal's window size.
pub fn set_winsize(fd: BorrowedFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize through the pointer.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// A terminal's window size, if `fd` is a terminal.
pub fn get_winsize(fd: BorrowedFd) -> Option<(u16, u16)> {
    // SAFETY: an all-zero winsize is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize through the pointer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Put a terminal in raw mode; returns the previous settings to restore.
pub fn make_raw(fd: BorrowedFd) -> io::Result<libc::termios> {
    // SAFETY: an all-zero termios is a valid value to be overwritten.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr writes a termios through the pointer.
    check(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) })?;
    let old = t;
    // SAFETY: cfmakeraw only modifies the struct.
    unsafe { libc::cfmakeraw(&mut t) };
    // SAFETY: tcsetattr reads a valid termios.
    check(unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &t) })?;
    Ok(old)
}

pub fn restore_term(fd: BorrowedFd, t: &libc::termios) {
    // SAFETY: tcsetattr reads a valid termios.
    unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, t) };
}

/// Mark every descriptor from `first` upward close-on-exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Old kernel: walk /proc/self/fd.
    for e in std::fs::read_dir("/proc/self/fd")? {
        let Ok(e) = e else { continue };
        if let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            if fd >= first as i32 {
                set_cloexec(fd, true);
            }
        }
    }
    Ok(())
}

/// Set or clear FD_CLOEXEC on a descriptor; errors (a closed fd) are ignored.
pub fn set_cloexec(fd: RawFd, on: bool) {
    // SAFETY: fcntl F_GETFD/F_SETFD only read and write descriptor flags.
    unsafe {
        let f = libc::fcntl(fd, libc::F_GETFD);
        if f >= 0 {
            let nf = if on {
                f | libc::FD_CLOEXEC
            } else {
                f & !libc::FD_CLOEXEC
            };
            libc::fcntl(fd, libc::F_SETFD, nf);
        }
    }
}

/// `execve(2)`: only returns on error.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and point at C strings that
    // live until execve returns (it only returns on failure).
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// `fexecve(2)` of an open executable (used to re-run from a sealed memfd).
pub fn fexecve(fd: BorrowedFd, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: as for execve; fd is an open descriptor.
    unsafe { libc::fexecve(fd.as_raw_fd(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

pub fn memfd_create(name: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: name is a valid C string; the new fd is owned below.
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), flags) })?;
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Copy `len` bytes from `src` to `dst` inside the kernel.
pub fn sendfile(dst: BorrowedFd, src: BorrowedFd, len: usize) -> io::Result<usize> {
    // SAFETY: both are open descriptors; a NULL offset uses the file position.
    let r = unsafe { libc::sendfile(dst.as_raw_fd(), src.as_raw_fd(), std::ptr::null_mut(), len) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

pub fn fcntl_int(fd: BorrowedFd, cmd: libc::c_int, arg: libc::c_int) -> io::Result<libc::c_int> {
    // SAFETY: the fcntl commands used here take and return integers.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, arg) })
}

/// A connected pair of SOCK_SEQPACKET unix sockets, close-on-exec.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid out-array of two ints.
    check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The `open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// `openat2(2)`: open `path` relative to `dir` with resolve restrictions.
pub fn openat2(
    dir: BorrowedFd,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let p = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: p is a valid C string and `how` a valid open_how of the given size.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                p.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            // EAGAIN: a concurrent rename raced the lookup; try again.
            if e.raw_os_error() == Some(libc::EAGAIN) {
                continue;
            }
            return Err(e);
        }
        // SAFETY: r is a new descriptor owned by nobody else.
        return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
    }
}

pub fn mkdirat(dir: BorrowedFd, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: name is a valid C string; dir is an open descriptor.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn symlinkat(target: &CStr, dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: both are valid C strings; dir is an open descriptor.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

pub fn fchownat_empty(fd: BorrowedFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: AT_EMPTY_PATH with "" operates on fd itself.
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `statfs(2)` mount flags (ST_RDONLY, ST_NOSUID, ...) of the mount holding `path`.
pub fn statvfs_flags(path: &Path) -> io::Result<u64> {
    let p = cstr(path)?;
    // SAFETY: an all-zero statvfs is a valid value to be overwritten.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: p is a valid C string and s a valid out-pointer.
    check(unsafe { libc::statvfs(p.as_ptr(), &mut s) })?;
    Ok(s.f_flag)
}

/// `fstatfs(2)` filesystem magic of an open file.
pub fn fs_magic(fd: BorrowedFd) -> io::Result<i64> {
    // SAFETY: an all-zero statfs is a valid value to be overwritten.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: s is a valid out-pointer and fd an open descriptor.
    check(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut s) })?;
    Ok(s.f_type as i64)
}

/// Join (create) a new anonymous session keyring, as runc does.
pub fn join_session_keyring(name: &CStr) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: name is a valid C string for the duration of the call.
    check_long(unsafe {
        libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr())
    })
    .map(drop)
}

/// Write to an fd fully.
pub fn write_all(fd: BorrowedFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: pointer and length describe `buf`.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// One `read(2)`, retried on EINTR.
pub fn read(fd: BorrowedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: pointer and length describe `buf`.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(n as usize);
    }
}

/// `poll(2)` on a set of (fd, events); returns revents per entry.
pub fn poll(
    fds: &[(BorrowedFd, libc::c_short)],
    timeout_ms: i32,
) -> io::Result<Vec<libc::c_short>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, ev)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: *ev,
            revents: 0,
        })
        .collect();
    // SAFETY: p is a valid array of pollfd of the given length.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(p.iter().map(|x| x.revents).collect())
}

/// A signalfd for the given signals (which are blocked for this process).
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    // SAFETY: an all-zero sigset is valid; sigemptyset/sigaddset initialise it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for s in signals {
        // SAFETY: set is a valid sigset_t.
        unsafe { libc::sigaddset(&mut set, *s) };
    }
    // SAFETY: set is valid; a NULL old-set pointer is allowed.
    check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) })?;
    // SAFETY: set is valid; the returned fd is owned below.
    let fd = check(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) })?;
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Unblock every signal (a child must not inherit the parent's mask).
pub fn unblock_all_signals() {
    // SAFETY: an all-zero sigset is valid and sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t; a NULL old-set pointer is allowed.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Read one signal number from a signalfd.
pub fn read_signal(fd: BorrowedFd) -> io::Result<i32> {
    let mut buf = [0u8; 128];
    let n = read(fd, &mut buf)?;
    if n < 4 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "short signalfd read",
        ));
    }
    Ok(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as i32)
}

/// Every catchable signal back to its default disposition. A signal
/// ignored by whoever started the runtime (`nohup`, a shell's background
/// job ignoring SIGINT) would otherwise stay ignored in the container, and a
/// shell there cannot even trap it: containers start as Docker's do, with
/// default dispositions. Errors (glibc's reserved real-time signals) are
/// ignored.
pub fn default_all_signals() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is a valid disposition; signals the kernel or libc
        // refuse fail with EINVAL and change nothing.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// Reset a signal's disposition to the default.
pub fn reset_signal(sig: libc::c_int) {
    // SAFETY: SIG_DFL is a valid disposition for any catchable signal.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open only reads its integer arguments.
    let r = check_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: r is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(fd: BorrowedFd, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a NULL siginfo is allowed; the rest are integers.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<u8>(),
            0,
        )
    })
    .map(drop)
}

/// Exit the process immediately, without running destructors or atexit
/// handlers (used by forked children).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is safe to call at any point.
    unsafe { libc::_exit(code) }
}

pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// What `uname(2)` says about the running kernel and machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uname {
    /// The kernel release (`6.1.0-18-amd64`).
    pub release: String,
    /// The kernel build (`#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 ...`).
    pub version: String,
    /// The hardware (`x86_64`).
    pub machine: String,
}

pub fn uname() -> io::Result<Uname> {
    // SAFETY: utsname is arrays of c_char, for which all-zero bytes are valid.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname for the duration of the call.
    check(unsafe { libc::uname(&mut u) })?;
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok(Uname {
        release: field(&u.release),
        version: field(&u.version),
        machine: field(&u.machine),
    })
}

/// Number of clock ticks per second (for /proc/<pid>/stat times).
pub fn clock_ticks() -> i64 {
    // SAFETY: sysconf only reads its integer argument.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as i64 }
}

/// `personality(2)`.
pub fn personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: personality only reads its integer argument.
    check(unsafe { libc::personality(persona) }).map(drop)
}

/// `ioprio_set(2)` for the calling process.
pub fn ioprio_set_self(class: i64, level: i64) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let prio = (class << 13) | level;
    // SAFETY: ioprio_set only reads its integer arguments.
    check_long(unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) })
        .map(drop)
}

/// The `sched_attr` of sched_setattr(2).
#[repr(C)]
#[derive(Default)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
}

/// `sched_setattr(2)` for the calling thread.
pub fn sched_setattr_self(attr: &mut SchedAttr) -> io::Result<()> {
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: attr points at a valid sched_attr whose size field is set.
    check_long(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *mut SchedAttr, 0) })
        .map(drop)
}
