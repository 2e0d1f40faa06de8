//! `process.terminal: true` (config.md "Process", runc's terminal modes): the
//! pty master handed to a `--console-socket`, `run` in the foreground under a
//! real terminal (tmux) proxying input, output, window size and the exit
//! code, and `exec -t` with a console socket.

mod common;

use common::*;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A listening console socket in the runtime's scratch dir.
fn console_socket(rt: &Runtime, name: &str) -> (UnixListener, PathBuf) {
    let p = rt.scratch().join(name);
    let l = UnixListener::bind(&p).unwrap();
    l.set_nonblocking(true).unwrap();
    (l, p)
}

/// Accepts one connection and receives the pty master it carries; returns
/// it with the payload (runc sends the slave's path, or nothing).
fn receive_master(l: &UnixListener) -> (OwnedFd, String) {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    let conn = loop {
        match l.accept() {
            Ok((c, _)) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("nobody connected to the console socket: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, mut fds) = barge_runtime::sys::socket::recv_fds(conn.as_fd(), &mut buf, 4).unwrap();
    assert_eq!(fds.len(), 1, "one fd over the console socket");
    (
        fds.pop().unwrap(),
        String::from_utf8_lossy(&buf[..n]).into_owned(),
    )
}

/// Reads the pty master until `needle` shows up, the other side closes, or
/// `timeout` passes; returns everything read.
fn read_until(master: &OwnedFd, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut p = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(500) as i32) };
        if n <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a local buffer of the given length.
        let r = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            break; // EIO: the slave side is gone
        }
        got.extend_from_slice(&buf[..r as usize]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn write_master(master: &OwnedFd, s: &str) {
    // SAFETY: writing a valid buffer to an fd we own.
    let r = unsafe { libc::write(master.as_raw_fd(), s.as_ptr().cast(), s.len()) };
    assert_eq!(r, s.len() as isize);
}

fn terminal_bundle(args: &[&str]) -> Bundle {
    let b = Bundle::with_args(args);
    b.config(|c| c["process"]["terminal"] = json!(true));
    b
}

/// Waits for a spawned child with a timeout (killing it then).
fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn console_socket_receives_the_pty_master() {
    require_root!();
    let rt = Runtime::new();
    let (l, sock) = console_socket(&rt, "console.sock");
    let b = terminal_bundle(&[
        "sh",
        "-c",
        "echo hello; tty; [ -c /dev/console ] && echo console-exists; \
         read line; echo got:$line; echo the-end; sleep 1",
    ]);
    let id = rt.id("console");

    rt.create_with(&["--console-socket", sock.to_str().unwrap()], &id, &b)
        .ok();
    let (master, _payload) = receive_master(&l);
    let link = fs::read_link(format!("/proc/self/fd/{}", master.as_raw_fd())).unwrap();
    assert_eq!(link, Path::new("/dev/pts/ptmx"), "a pty master");
    rt.start(&id).ok();

    let out = read_until(&master, "console-exists", WAIT_TIMEOUT);
    write_master(&master, "typed-in\n");
    let out = out + &read_until(&master, "the-end", WAIT_TIMEOUT);

    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines.contains(&"hello"), "{out:?}");
    assert!(lines.contains(&"/dev/pts/0"), "tty inside: {out:?}");
    assert!(lines.contains(&"console-exists"), "{out:?}");
    assert!(
        lines.contains(&"got:typed-in"),
        "input reaches the process: {out:?}"
    );
    assert_eq!(
        rt.container_stdout(&id),
        "",
        "nothing on the create's stdio"
    );
    rt.wait_for_status(&id, "stopped");
}

#[test]
fn console_size_is_applied_to_the_pty() {
    require_root!();
    let rt = Runtime::new();
    let (l, sock) = console_socket(&rt, "console.sock");
    let b = terminal_bundle(&["sh", "-c", "stty size; echo the-end; sleep 1"]);
    b.config(|c| c["process"]["consoleSize"] = json!({ "height": 33, "width": 111 }));
    let id = rt.id("consize");

    rt.create_with(&["--console-socket", sock.to_str().unwrap()], &id, &b)
        .ok();
    let (master, _) = receive_master(&l);
    rt.start(&id).ok();

    let out = read_until(&master, "the-end", WAIT_TIMEOUT);
    assert!(out.contains("33 111"), "{out:?}");
}

#[test]
fn terminal_without_console_socket_is_refused_by_create() {
    require_root!();
    let rt = Runtime::new();
    let b = terminal_bundle(&["sh"]);
    let id = rt.id("noconsole");

    let out = rt.create(&id, &b);

    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("console"), "{out}");
    assert_eq!(rt.status(&id), None);
}

#[test]
fn exec_tty_with_console_socket() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::with_args(&["sleep", "1000"]);
    let id = rt.id("exectty");
    rt.start_container(&id, &b);
    let (l, sock) = console_socket(&rt, "exec.sock");

    let (o, e) = (rt.scratch().join("exec.out"), rt.scratch().join("exec.err"));
    let mut child = rt
        .command()
        .args([
            "exec",
            "-t",
            "--console-socket",
            sock.to_str().unwrap(),
            &id,
        ])
        .args([
            "sh",
            "-c",
            "tty; echo from-exec; read x; echo got:$x; sleep 0.5; exit 5",
        ])
        .stdout(fs::File::create(&o).unwrap())
        .stderr(fs::File::create(&e).unwrap())
        .spawn()
        .unwrap();
    let (master, _) = receive_master(&l);
    let out = read_until(&master, "from-exec", WAIT_TIMEOUT);
    write_master(&master, "abc\n");
    let out = out + &read_until(&master, "got:abc", WAIT_TIMEOUT);
    let status = wait_child(&mut child, COMMAND_TIMEOUT);

    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("/dev/pts/")),
        "{out:?}; stderr: {}",
        read_lossy(&e)
    );
    assert!(lines.contains(&"from-exec"), "{out:?}");
    assert!(lines.contains(&"got:abc"), "{out:?}");
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(5),
        "exec's exit code; stderr: {}",
        read_lossy(&e)
    );
}

// ---------------------------------------------------------------------------
// `run` in the foreground under tmux

/// A private tmux server (`tmux -S <socket in a tempdir> -f /dev/null`,
/// like `-L <unique name>` but leaving no socket file behind), killed on
/// drop by its socket.
struct Tmux {
    dir: tempfile::TempDir,
}

impl Tmux {
    fn new() -> Tmux {
        Tmux {
            dir: tempfile::Builder::new()
                .prefix("barge-tmux-")
                .tempdir()
                .unwrap(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Out {
        let sock = self.dir.path().join("sock");
        let mut a = vec!["-S", sock.to_str().unwrap(), "-f", "/dev/null"];
        a.extend_from_slice(args);
        host("tmux", &a)
    }

    fn capture(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "t", "-S", "-100"])
            .stdout
    }

    fn send(&self, keys: &str) {
        self.cmd(&["send-keys", "-t", "t", "-l", keys]).ok();
        self.cmd(&["send-keys", "-t", "t", "Enter"]).ok();
    }

    /// Waits until the pane shows a line equal to `line` (after `after`
    /// occurrences of it); returns the pane.
    #[track_caller]
    fn wait_line(&self, line: &str, count: usize) -> String {
        let mut pane = String::new();
        let ok = wait_until(WAIT_TIMEOUT, || {
            pane = self.capture();
            pane.lines().filter(|l| l.trim_end() == line).count() >= count
        });
        assert!(ok, "pane never showed {line:?} ({count}x):\n{pane}");
        pane
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn foreground_run_in_a_real_terminal() {
    require_root!();
    if Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("SKIPPED: tmux is not installed");
        return;
    }
    let rt = Runtime::new();
    let b = terminal_bundle(&["sh"]);
    b.config(|c| c["process"]["env"] = json!(["PATH=/bin", "TERM=xterm", "PS1=$ "]));
    let id = rt.id("tmux");
    let code_file = rt.scratch().join("code");
    let script = rt.scratch().join("run.sh");
    fs::write(
        &script,
        format!(
            "'{}' --root '{}' run --bundle '{}' '{}'\necho $? > '{}'\n",
            rt.bin().display(),
            rt.root().display(),
            b.path().display(),
            id,
            code_file.display()
        ),
    )
    .unwrap();
    let tmux = Tmux::new();

    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "30",
        &format!("sh {}", script.display()),
    ])
    .ok();
    rt.wait_for_status(&id, "running");

    tmux.send("echo $((6*7))");
    tmux.wait_line("42", 1);

    tmux.send("stty size");
    tmux.wait_line("30 100", 1);

    tmux.send("tty");
    tmux.wait_line("/dev/pts/0", 1);

    tmux.cmd(&["resize-window", "-t", "t", "-x", "120", "-y", "40"])
        .ok();
    let resized = wait_until(WAIT_TIMEOUT, || {
        tmux.cmd(&[
            "display-message",
            "-p",
            "-t",
            "t",
            "#{pane_width}x#{pane_height}",
        ])
        .stdout
        .trim()
            == "120x40"
    });
    assert!(resized, "tmux did not resize its window");
    // SIGWINCH reaches the runtime, which passes the size on.
    let mut pane = String::new();
    let followed = wait_until(WAIT_TIMEOUT, || {
        tmux.send("stty size");
        std::thread::sleep(Duration::from_millis(300));
        pane = tmux.capture();
        pane.lines().any(|l| l.trim_end() == "40 120")
    });
    assert!(followed, "stty size did not follow the resize:\n{pane}");

    tmux.send("exit 3");
    let code = wait_for_file(&code_file);
    assert_eq!(code.trim(), "3", "run's exit code is the shell's");
    assert_eq!(
        rt.status(&id),
        None,
        "a foreground run deletes its container"
    );
}

#[test]
fn foreground_run_in_a_terminal_forwards_ctrl_c_to_the_container() {
    require_root!();
    let rt = Runtime::new();
    let b = terminal_bundle(&["sh"]);
    b.config(|c| c["process"]["env"] = json!(["PATH=/bin", "TERM=xterm", "PS1=$ "]));
    let id = rt.id("tmuxint");
    let code_file = rt.scratch().join("code");
    let script = rt.scratch().join("run.sh");
    fs::write(
        &script,
        format!(
            "'{}' --root '{}' run --bundle '{}' '{}'\necho $? > '{}'\n",
            rt.bin().display(),
            rt.root().display(),
            b.path().display(),
            id,
            code_file.display()
        ),
    )
    .unwrap();
    let tmux = Tmux::new();
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "80",
        "-y",
        "24",
        &format!("sh {}", script.display()),
    ])
    .ok();
    rt.wait_for_status(&id, "running");

    // Ctrl-C goes through the pty (raw mode on the outside) to the
    // container's foreground job, not to the runtime.
    tmux.send("sleep 100; echo after-sleep");
    std::thread::sleep(Duration::from_millis(500));
    tmux.cmd(&["send-keys", "-t", "t", "C-c"]).ok();
    tmux.send("echo still-$((1+1))");
    tmux.wait_line("still-2", 1);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));

    tmux.send("exit 0");
    let code = wait_for_file(&code_file);
    assert_eq!(code.trim(), "0");
}
