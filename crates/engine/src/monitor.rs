//! The per-container monitor (`barge-monitor ROOT ID [--attach]`): a tiny,
//! single-threaded process that outlives the command which started the
//! container. It is a subreaper and the parent of the container's init; it
//! holds the container's stdio (pipes, or the pty master received over the
//! console socket), writes the json-file log, serves attach on
//! `containers/<id>/attach.sock`, runs health checks, records the exit
//! code, and applies the restart policy with Docker's backoff.
//!
//! It reports to the command that spawned it on its stdout, one line each:
//! `listening`, then `running <pid>` or `error <code> <message>`; then it
//! points its stdout at /dev/null.

use std::io::{IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, WaitOptions};

use crate::attach::{self, FrameBuffer};
use crate::error::{io, EngineError, Result};
use crate::logfile::{LogWriter, Stream};
use crate::record::{ContainerRecord, HealthProbe};
use crate::runtime::Runtime;
use crate::store::Engine;

/// Entry point of the `barge-monitor` binary; returns its exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: barge-monitor ROOT ID [--attach]");
        return 2;
    }
    let root = PathBuf::from(&args[1]);
    let id = args[2].clone();
    let attach = args.iter().any(|a| a == "--attach");
    let mut ready = Ready { open: true };
    match run(&root, &id, attach, &mut ready) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("barge-monitor {id}: {e}");
            ready.send(&format!(
                "error {} {}",
                e.exit_code(),
                one_line(&e.to_string())
            ));
            1
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// The line protocol to the starting command on our stdout.
struct Ready {
    open: bool,
}

impl Ready {
    fn send(&mut self, line: &str) {
        if self.open {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{line}");
            let _ = o.flush();
        }
    }

    fn close(&mut self) {
        if self.open {
            self.open = false;
            if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
                let _ = rustix::stdio::dup2_stdout(&null);
            }
        }
    }
}

/// The container's stdio as the monitor holds it.
enum Stdio3 {
    Tty {
        master: Option<OwnedFd>,
    },
    Pipes {
        out_r: OwnedFd,
        out_w: OwnedFd,
        err_r: OwnedFd,
        err_w: OwnedFd,
        in_r: Option<OwnedFd>,
        in_w: Option<OwnedFd>,
    },
}

struct Client {
    stream: UnixStream,
    frames: FrameBuffer,
}

struct Probe {
    child: Child,
    pid: i32,
    started: Instant,
    start_time: String,
    output: Vec<u8>,
    out: Option<OwnedFd>,
}

struct Monitor {
    engine: Engine,
    id: String,
    rec: ContainerRecord,
    dir: PathBuf,
    rt: Runtime,
    log: Option<LogWriter>,
    listener: UnixListener,
    _dirfd: OwnedFd,
    clients: Vec<Client>,
    stdio: Stdio3,
    pid: i32,
    pidfd: Option<OwnedFd>,
    probe: Option<Probe>,
    next_probe: Option<Instant>,
    started: Instant,
    /// Veths, embedded DNS, proxy and DNAT rules of the running process.
    net: Option<crate::network::Plumbing>,
}

fn nonblocking(fd: &OwnedFd) {
    if let Ok(fl) = rustix::fs::fcntl_getfl(fd) {
        let _ = rustix::fs::fcntl_setfl(fd, fl | rustix::fs::OFlags::NONBLOCK);
    }
}

fn run(root: &Path, id: &str, attach_first: bool, ready: &mut Ready) -> Result<()> {
    let _ = rustix::process::setsid();
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    let engine = Engine::open(root)?;
    let rec = engine.record(id)?;
    let dir = engine.dir(id);
    let rt = Runtime::new(
        PathBuf::from(&rec.runtime_path),
        engine.runtime_root(&rec.runtime_path),
    );
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let me_start = crate::store::proc_start_time(me).map(|t| t.0).unwrap_or(0);
    engine.update_state(id, |s| {
        s.monitor_pid = me;
        s.monitor_start = me_start;
        s.manual_stop = false;
    })?;

    let log = if rec.host_config.log_config.kind == "none" {
        None
    } else {
        let (max_size, max_file) =
            crate::logfile::parse_log_opts(&rec.host_config.log_config.config)?;
        Some(LogWriter::open(
            &dir.join(format!("{id}-json.log")),
            max_size,
            max_file,
        )?)
    };

    let (dirfd, sock) = attach::short_path(&dir, "attach.sock")?;
    let _ = std::fs::remove_file(dir.join("attach.sock"));
    let listener = UnixListener::bind(&sock).map_err(io("listen on", &dir.join("attach.sock")))?;
    listener
        .set_nonblocking(true)
        .map_err(io("listen on", &dir))?;
    ready.send("listening");

    let stdio = if rec.config.tty {
        Stdio3::Tty { master: None }
    } else {
        let (out_r, out_w) =
            rustix::pipe::pipe().map_err(|e| EngineError::Runtime(format!("pipe: {e}")))?;
        let (err_r, err_w) =
            rustix::pipe::pipe().map_err(|e| EngineError::Runtime(format!("pipe: {e}")))?;
        nonblocking(&out_r);
        nonblocking(&err_r);
        let (in_r, in_w) = if rec.config.open_stdin {
            let (r, w) =
                rustix::pipe::pipe().map_err(|e| EngineError::Runtime(format!("pipe: {e}")))?;
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        Stdio3::Pipes {
            out_r,
            out_w,
            err_r,
            err_w,
            in_r,
            in_w,
        }
    };

    let mut m = Monitor {
        engine,
        id: id.to_string(),
        rec,
        dir,
        rt,
        log,
        listener,
        _dirfd: dirfd,
        clients: Vec::new(),
        stdio,
        pid: 0,
        pidfd: None,
        probe: None,
        next_probe: None,
        started: Instant::now(),
        net: None,
    };

    m.create()?;
    if attach_first {
        m.wait_first_client(Duration::from_secs(30));
    }
    m.start()?;
    ready.send(&format!("running {}", m.pid));
    ready.close();
    m.supervise()
}

impl Monitor {
    fn create(&mut self) -> Result<()> {
        // A leftover of an earlier run (a killed monitor) would make create
        // fail; every runtime keeps its state in <root>/<id>.
        if self.rt.root.join(&self.id).exists() {
            let _ = self.rt.delete(&self.id);
        }
        let pid_file = self.dir.join("init.pid");
        let _ = std::fs::remove_file(&pid_file);
        let log = self.dir.join("runtime.log");
        let _ = std::fs::remove_file(&log);
        let mut cmd = self.rt.command();
        cmd.arg("--log")
            .arg(&log)
            .arg("--log-format")
            .arg("json")
            .arg("create")
            .arg("--bundle")
            .arg(&self.dir)
            .arg("--pid-file")
            .arg(&pid_file);
        let mut console: Option<(UnixListener, PathBuf)> = None;
        match &self.stdio {
            Stdio3::Tty { .. } => {
                // The runtime connects by path from its own process: a
                // real path, short enough for a unix socket (108 bytes).
                let path = console_socket_path(&self.dir, &self.id)?;
                let _ = std::fs::remove_file(&path);
                let l = UnixListener::bind(&path).map_err(io("listen on", &path))?;
                cmd.arg("--console-socket").arg(&path);
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                console = Some((l, path));
            }
            Stdio3::Pipes {
                out_w, err_w, in_r, ..
            } => {
                let dup = |fd: &OwnedFd| -> Result<Stdio> {
                    fd.try_clone()
                        .map(Stdio::from)
                        .map_err(|e| EngineError::Runtime(format!("dup: {e}")))
                };
                cmd.stdin(match in_r {
                    Some(r) => dup(r)?,
                    None => Stdio::null(),
                });
                cmd.stdout(dup(out_w)?).stderr(dup(err_w)?);
            }
        }
        cmd.arg(&self.id);
        let out = cmd
            .output()
            .map_err(|e| EngineError::Runtime(format!("run {}: {e}", self.rt.path.display())))?;
        if !out.status.success() {
            if let Some((_, path)) = &console {
                let _ = std::fs::remove_file(path);
            }
            // The runtime's own words: its log, else its stderr (which for a
            // non-tty container is the container's stderr pipe: drain it so
            // none of it reaches the container's log).
            let mut msg = crate::runtime::last_log_error(&log);
            if let Stdio3::Pipes { err_r, out_r, .. } = &self.stdio {
                let e = drain(err_r);
                let _ = drain(out_r);
                if msg.is_none() {
                    msg = Some(crate::runtime::error_text(&e));
                }
            }
            let msg = msg.unwrap_or_else(|| crate::runtime::error_text(&out.stderr));
            let _ = self.rt.delete(&self.id);
            return Err(crate::runtime::classify(&msg));
        }
        if let Some((l, path)) = console {
            let master = receive_fd(&l);
            let _ = std::fs::remove_file(&path);
            let master = master?;
            nonblocking(&master);
            self.stdio = Stdio3::Tty {
                master: Some(master),
            };
        }
        let pid_text = std::fs::read_to_string(&pid_file).map_err(io("read", &pid_file))?;
        let pid: i32 = pid_text.trim().parse().map_err(|_| {
            EngineError::Runtime(format!("the runtime wrote a bad pid file: {pid_text:?}"))
        })?;
        // The runtime made the network namespace; the process has not
        // started yet: connect it to its network now.
        match crate::network::plug(self.engine.root(), &self.rec, pid) {
            Ok(p) => self.net = Some(p),
            Err(e) => {
                let _ = self.rt.delete(&self.id);
                return Err(e);
            }
        }
        self.pid = pid;
        self.pidfd = Pid::from_raw(pid).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        Ok(())
    }

    fn start(&mut self) -> Result<()> {
        if let Err(e) = self.rt.start(&self.id) {
            let _ = self.rt.delete(&self.id);
            self.unplug();
            return Err(e);
        }
        self.started = Instant::now();
        let pid = self.pid;
        let restarting = self
            .engine
            .raw_state(&self.id)
            .map(|s| s.restarting)
            .unwrap_or(false);
        self.engine.update_state(&self.id, |s| {
            s.status = "running".into();
            s.running = true;
            s.paused = false;
            s.restarting = false;
            s.pid = pid;
            s.exit_code = 0;
            s.error.clear();
            s.started_at = crate::time::now_rfc3339();
            if let Some(h) = &mut s.health {
                h.status = "starting".into();
                h.failing_streak = 0;
            }
        })?;
        if self.healthcheck().is_some() {
            self.engine.update_state(&self.id, |s| {
                let mut h = s.health.take().unwrap_or_default();
                h.status = "starting".into();
                s.health = Some(h);
            })?;
            self.next_probe = Some(Instant::now() + self.probe_interval());
        }
        let ev = if restarting { "restart" } else { "start" };
        self.event(ev, &[]);
        Ok(())
    }

    /// After `network connect`/`disconnect` of the running container.
    fn refresh_network(&mut self) {
        if self.pid <= 0 {
            return;
        }
        if let Some(p) = &mut self.net {
            if let Err(e) = crate::network::refresh(self.engine.root(), &self.rec, self.pid, p) {
                eprintln!("barge-monitor {}: refresh the network: {e}", self.id);
            }
        }
    }

    fn unplug(&mut self) {
        if let Some(p) = self.net.take() {
            crate::network::unplug(self.engine.root(), &self.id, p);
        }
    }

    fn event(&self, action: &str, extra: &[(&str, String)]) {
        crate::events::emit_container(self.engine.root(), action, &self.rec, extra);
    }

    fn wait_first_client(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.clients.is_empty() && Instant::now() < deadline {
            let mut fds = [PollFd::new(&self.listener, PollFlags::IN)];
            let _ = rustix::event::poll(&mut fds, Some(&ts(Duration::from_millis(100))));
            self.accept();
        }
    }

    fn accept(&mut self) {
        while let Ok((s, _)) = self.listener.accept() {
            let _ = s.set_nonblocking(false);
            let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
            self.clients.push(Client {
                stream: s,
                frames: FrameBuffer::default(),
            });
        }
    }

    /// Output of the container: to the log and every attached client.
    fn output(&mut self, stream: Stream, data: &[u8]) {
        if let Some(l) = &mut self.log {
            if let Err(e) = l.write(stream, data) {
                eprintln!("barge-monitor {}: log: {e}", self.id);
            }
        }
        let kind = match stream {
            Stream::Stdout => attach::STDOUT,
            Stream::Stderr => attach::STDERR,
        };
        self.clients
            .retain_mut(|c| attach::write_frame(&mut c.stream, kind, data).is_ok());
    }

    fn write_stdin(&mut self, data: &[u8]) {
        let fd = match &self.stdio {
            Stdio3::Tty { master: Some(m) } => m.as_fd(),
            Stdio3::Pipes { in_w: Some(w), .. } => w.as_fd(),
            _ => return,
        };
        let mut off = 0;
        let mut spins = 0;
        while off < data.len() {
            match rustix::io::write(fd, &data[off..]) {
                Ok(n) => off += n,
                Err(rustix::io::Errno::AGAIN) if spins < 200 => {
                    spins += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return,
            }
        }
    }

    fn client_frame(&mut self, kind: u8, data: &[u8]) {
        match kind {
            attach::STDIN => self.write_stdin(data),
            attach::STDIN_EOF => {
                if self.rec.config.stdin_once {
                    if let Stdio3::Pipes { in_w, .. } = &mut self.stdio {
                        *in_w = None;
                    }
                } else if let Stdio3::Tty { master: Some(m) } = &self.stdio {
                    // EOF on a terminal: ^D.
                    let _ = rustix::io::write(m, &[4]);
                }
            }
            attach::RESIZE if data.len() >= 4 => {
                if let Stdio3::Tty { master: Some(m) } = &self.stdio {
                    let ws = rustix::termios::Winsize {
                        ws_row: u16::from_be_bytes([data[0], data[1]]),
                        ws_col: u16::from_be_bytes([data[2], data[3]]),
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let _ = rustix::termios::tcsetwinsize(m, ws);
                }
            }
            _ => {}
        }
    }

    /// Serves the container until it has exited for good.
    fn supervise(&mut self) -> Result<()> {
        loop {
            let code = self.serve_until_exit();
            let code = match code {
                Some(c) => c,
                None => continue,
            };
            self.drain_output();
            if let Some(l) = &mut self.log {
                let _ = l.flush_partial();
            }
            let ran = self.started.elapsed();
            // Before `delete` removes the cgroup: did the OOM killer strike?
            let oom = oom_killed(&self.id);
            if oom {
                self.event("oom", &[]);
            }
            let _ = self.rt.delete(&self.id);
            self.unplug();
            self.pid = 0;
            self.pidfd = None;
            self.kill_probe();
            let state = self.engine.raw_state(&self.id).unwrap_or_default();
            let policy = &self.rec.host_config.restart_policy;
            let restart = !state.manual_stop
                && !self.rec.host_config.auto_remove
                && match policy.name.as_str() {
                    "always" | "unless-stopped" => true,
                    "on-failure" => {
                        code != 0
                            && (policy.maximum_retry_count <= 0
                                || state.restart_count < policy.maximum_retry_count)
                    }
                    _ => false,
                };
            let finished = crate::time::now_rfc3339();
            self.engine.update_state(&self.id, |s| {
                s.running = false;
                s.paused = false;
                s.pid = 0;
                s.exit_code = code;
                s.oom_killed = oom;
                s.finished_at = finished.clone();
                if restart {
                    s.status = "restarting".into();
                    s.restarting = true;
                } else {
                    s.status = "exited".into();
                    s.restarting = false;
                }
                if let Some(h) = &mut s.health {
                    h.status = "unhealthy".into();
                }
            })?;
            self.event("die", &[("exitCode", code.to_string())]);
            if !restart {
                return self.finish(code);
            }
            // Docker's backoff: 100 ms doubling per quick restart, reset
            // after a run of 10 s, at most a minute.
            let count = state.restart_count;
            let delay = if ran >= Duration::from_secs(10) {
                Duration::from_millis(100)
            } else {
                Duration::from_millis(100u64.saturating_mul(1u64 << count.clamp(0, 10)))
                    .min(Duration::from_secs(60))
            };
            if !self.restart_wait(delay) {
                self.engine.update_state(&self.id, |s| {
                    s.status = "exited".into();
                    s.restarting = false;
                })?;
                return self.finish(code);
            }
            self.engine.update_state(&self.id, |s| {
                s.restart_count += 1;
            })?;
            if let Err(e) = self.create().and_then(|_| self.start()) {
                let msg = e.to_string();
                self.engine.update_state(&self.id, |s| {
                    s.status = "exited".into();
                    s.restarting = false;
                    s.error = msg.clone();
                    s.exit_code = e.exit_code();
                })?;
                return self.finish(e.exit_code());
            }
        }
    }

    /// Waits out the restart delay while serving clients; false if the
    /// user stopped or removed the container meanwhile.
    fn restart_wait(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        while Instant::now() < until {
            match self.engine.raw_state(&self.id) {
                Ok(s) if !s.manual_stop => {}
                _ => return false,
            }
            let mut fds = [PollFd::new(&self.listener, PollFlags::IN)];
            let left = until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            let _ = rustix::event::poll(&mut fds, Some(&ts(left)));
            self.accept();
        }
        self.engine
            .raw_state(&self.id)
            .is_ok_and(|s| !s.manual_stop)
    }

    /// After the last exit: tell attached clients, unmount, remove if asked.
    fn finish(&mut self, code: i32) -> Result<()> {
        let _ = crate::lifecycle::unmount_rootfs(&self.dir);
        if self.rec.host_config.auto_remove {
            let _ = crate::lifecycle::remove_files(&self.engine, &self.id);
            self.event("destroy", &[]);
        }
        let bytes = code.to_be_bytes();
        for c in &mut self.clients {
            let _ = attach::write_frame(&mut c.stream, attach::EXIT, &bytes);
        }
        let _ = std::fs::remove_file(self.dir.join("attach.sock"));
        Ok(())
    }

    /// Relays I/O until the container's init exits; its exit code.
    fn serve_until_exit(&mut self) -> Option<i32> {
        loop {
            if let Some(code) = self.reap() {
                return Some(code);
            }
            self.health_tick();
            let timeout = self.poll_timeout();
            let mut kinds: Vec<u8> = Vec::new();
            let mut fds: Vec<PollFd<'_>> = Vec::new();
            // Collect raw fds first to keep the borrow checker calm.
            let listener = self.listener.as_fd();
            fds.push(PollFd::new(&listener, PollFlags::IN));
            kinds.push(0);
            let pidfd = self.pidfd.as_ref().map(|p| p.as_fd());
            if let Some(p) = &pidfd {
                fds.push(PollFd::new(p, PollFlags::IN));
                kinds.push(1);
            }
            let (a, b): (Option<BorrowedFd<'_>>, Option<BorrowedFd<'_>>) = match &self.stdio {
                Stdio3::Tty { master } => (master.as_ref().map(|m| m.as_fd()), None),
                Stdio3::Pipes { out_r, err_r, .. } => (Some(out_r.as_fd()), Some(err_r.as_fd())),
            };
            if let Some(a) = &a {
                fds.push(PollFd::new(a, PollFlags::IN));
                kinds.push(2);
            }
            if let Some(b) = &b {
                fds.push(PollFd::new(b, PollFlags::IN));
                kinds.push(3);
            }
            let client_fds: Vec<BorrowedFd<'_>> =
                self.clients.iter().map(|c| c.stream.as_fd()).collect();
            for c in &client_fds {
                fds.push(PollFd::new(c, PollFlags::IN));
                kinds.push(4);
            }
            let probe_fd = self
                .probe
                .as_ref()
                .and_then(|p| p.out.as_ref().map(|o| o.as_fd()));
            if let Some(p) = &probe_fd {
                fds.push(PollFd::new(p, PollFlags::IN));
                kinds.push(5);
            }
            let _ = rustix::event::poll(&mut fds, Some(&ts(timeout)));
            let ready: Vec<(u8, usize, PollFlags)> = fds
                .iter()
                .enumerate()
                .map(|(i, f)| (kinds[i], i, f.revents()))
                .collect();
            drop(fds);
            drop(client_fds);
            let mut client_index = 0usize;
            let mut dead_clients = Vec::new();
            for (kind, _, rev) in ready {
                let readable = rev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR);
                match kind {
                    0 if readable => self.accept(),
                    2 if readable => self.read_output(true),
                    3 if readable => self.read_output(false),
                    4 => {
                        let idx = client_index;
                        client_index += 1;
                        if readable && !self.read_client(idx) {
                            dead_clients.push(idx);
                        }
                    }
                    5 if readable => self.read_probe(),
                    _ => {}
                }
            }
            for i in dead_clients.into_iter().rev() {
                if i < self.clients.len() {
                    self.clients.remove(i);
                }
            }
        }
    }

    fn poll_timeout(&self) -> Duration {
        let mut t = Duration::from_secs(1);
        if self.probe.is_some() {
            t = Duration::from_millis(50);
        }
        if let Some(n) = self.next_probe {
            t = t.min(n.saturating_duration_since(Instant::now()));
        }
        t
    }

    /// Reads a client's frames; false when it has gone.
    fn read_client(&mut self, idx: usize) -> bool {
        let mut buf = [0u8; 16384];
        let Some(c) = self.clients.get_mut(idx) else {
            return false;
        };
        let _ = c.stream.set_nonblocking(true);
        let n = c.stream.read(&mut buf);
        let _ = c.stream.set_nonblocking(false);
        match n {
            Ok(0) => {
                // A client that hung up with stdin_once: its stdin ends.
                false
            }
            Ok(n) => {
                c.frames.push(&buf[..n]);
                let mut frames = Vec::new();
                loop {
                    match c.frames.next_frame() {
                        Ok(Some(f)) => frames.push(f),
                        Ok(None) => break,
                        Err(_) => return false,
                    }
                }
                for (k, d) in frames {
                    if k == attach::NETWORK {
                        self.refresh_network();
                        if let Some(c) = self.clients.get_mut(idx) {
                            let _ = attach::write_frame(&mut c.stream, attach::NETWORK, &[]);
                        }
                    } else {
                        self.client_frame(k, &d);
                    }
                }
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            Err(_) => false,
        }
    }

    fn read_output(&mut self, first: bool) {
        let mut buf = vec![0u8; 65536];
        for _ in 0..16 {
            let r = {
                let fd = match (&self.stdio, first) {
                    (Stdio3::Tty { master: Some(m) }, true) => m.as_fd(),
                    (Stdio3::Pipes { out_r, .. }, true) => out_r.as_fd(),
                    (Stdio3::Pipes { err_r, .. }, false) => err_r.as_fd(),
                    _ => return,
                };
                rustix::io::read(fd, &mut buf)
            };
            match r {
                Ok(0) => return,
                Ok(n) => {
                    let stream = if first {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    };
                    let data = buf[..n].to_vec();
                    self.output(stream, &data);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return,
            }
        }
    }

    /// Everything still buffered in the pipes/pty after the init exited.
    fn drain_output(&mut self) {
        for first in [true, false] {
            for _ in 0..64 {
                let mut buf = vec![0u8; 65536];
                let r = {
                    let fd = match (&self.stdio, first) {
                        (Stdio3::Tty { master: Some(m) }, true) => m.as_fd(),
                        (Stdio3::Pipes { out_r, .. }, true) => out_r.as_fd(),
                        (Stdio3::Pipes { err_r, .. }, false) => err_r.as_fd(),
                        _ => break,
                    };
                    rustix::io::read(fd, &mut buf)
                };
                match r {
                    Ok(n) if n > 0 => {
                        let stream = if first {
                            Stream::Stdout
                        } else {
                            Stream::Stderr
                        };
                        self.output(stream, &buf[..n]);
                    }
                    _ => break,
                }
            }
        }
        if let Stdio3::Tty { master } = &mut self.stdio {
            // The pty dies with the container; a restart gets a new one.
            *master = None;
        }
    }

    /// Reaps children; the init's exit code once it has exited.
    fn reap(&mut self) -> Option<i32> {
        // Looked at before reaping: an init that exits after this look is
        // reaped below or on the next round, never taken for a vanished one.
        let gone = self.pid > 0 && !crate::store::process_alive(self.pid, 0);
        let mut result = None;
        while let Ok(Some((pid, status))) = rustix::process::wait(WaitOptions::NOHANG) {
            let p = pid.as_raw_nonzero().get();
            let code = status
                .exit_status()
                .or_else(|| status.terminating_signal().map(|s| 128 + s))
                .unwrap_or(0);
            if p == self.pid {
                result = Some(code);
            } else if self.probe.as_ref().is_some_and(|pr| pr.pid == p) {
                self.probe_done(code);
            }
        }
        if result.is_none() && gone {
            // Not our child (e.g. the runtime's init was not reparented):
            // its status is gone with it.
            result = Some(137);
        }
        result
    }

    // ------------------------------------------------------------ health

    fn healthcheck(&self) -> Option<&crate::record::HealthConfig> {
        self.rec
            .config
            .healthcheck
            .as_ref()
            .filter(|h| !h.test.is_empty() && h.test[0] != "NONE")
    }

    fn probe_interval(&self) -> Duration {
        let i = self.healthcheck().map(|h| h.interval).unwrap_or(0);
        if i > 0 {
            Duration::from_nanos(i as u64)
        } else {
            Duration::from_secs(30)
        }
    }

    fn probe_timeout(&self) -> Duration {
        let t = self.healthcheck().map(|h| h.timeout).unwrap_or(0);
        if t > 0 {
            Duration::from_nanos(t as u64)
        } else {
            Duration::from_secs(30)
        }
    }

    fn health_tick(&mut self) {
        if let Some(p) = &self.probe {
            if p.started.elapsed() > self.probe_timeout() {
                let msg = format!("Health check exceeded timeout ({:?})", self.probe_timeout());
                self.kill_probe();
                self.record_probe(-1, msg);
            }
            return;
        }
        let Some(at) = self.next_probe else { return };
        if Instant::now() < at || self.pid == 0 {
            return;
        }
        self.next_probe = Some(Instant::now() + self.probe_interval());
        let Some(h) = self.healthcheck().cloned() else {
            return;
        };
        let args: Vec<String> = match h.test[0].as_str() {
            "CMD" => h.test[1..].to_vec(),
            "CMD-SHELL" => vec!["/bin/sh".into(), "-c".into(), h.test[1..].join(" ")],
            _ => h.test.clone(),
        };
        let Ok((r, w)) = rustix::pipe::pipe() else {
            return;
        };
        nonblocking(&r);
        let Ok(w2) = w.try_clone() else { return };
        let mut cmd = self.rt.command();
        cmd.arg("exec").arg(&self.id).args(&args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(w))
            .stderr(Stdio::from(w2));
        if let Ok(child) = cmd.spawn() {
            let pid = child.id() as i32;
            self.probe = Some(Probe {
                child,
                pid,
                started: Instant::now(),
                start_time: crate::time::now_rfc3339(),
                output: Vec::new(),
                out: Some(r),
            });
        }
    }

    fn read_probe(&mut self) {
        let Some(p) = &mut self.probe else { return };
        let Some(fd) = &p.out else { return };
        let mut buf = [0u8; 4096];
        match rustix::io::read(fd, &mut buf) {
            Ok(0) | Err(_) => p.out = None,
            Ok(n) => {
                if p.output.len() < 4096 {
                    p.output.extend_from_slice(&buf[..n]);
                    p.output.truncate(4096);
                }
            }
        }
    }

    fn kill_probe(&mut self) {
        if let Some(mut p) = self.probe.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    fn probe_done(&mut self, code: i32) {
        self.read_probe();
        if let Some(p) = &mut self.probe {
            if let Some(fd) = &p.out {
                let mut buf = [0u8; 4096];
                while let Ok(n) = rustix::io::read(fd, &mut buf) {
                    if n == 0 || p.output.len() >= 4096 {
                        break;
                    }
                    p.output.extend_from_slice(&buf[..n]);
                }
            }
        }
        let out = self
            .probe
            .as_ref()
            .map(|p| String::from_utf8_lossy(&p.output).into_owned())
            .unwrap_or_default();
        self.record_probe(code, out);
    }

    fn record_probe(&mut self, code: i32, output: String) {
        let Some(p) = self.probe.take() else { return };
        let retries = self
            .healthcheck()
            .map(|h| h.retries)
            .filter(|r| *r > 0)
            .unwrap_or(3);
        let start_period = self
            .healthcheck()
            .map(|h| Duration::from_nanos(h.start_period.max(0) as u64))
            .unwrap_or_default();
        let in_start_period = self.started.elapsed() < start_period;
        let probe = HealthProbe {
            start: p.start_time,
            end: crate::time::now_rfc3339(),
            exit_code: code,
            output,
        };
        let mut changed: Option<String> = None;
        let _ = self.engine.update_state(&self.id, |s| {
            let h = s.health.get_or_insert_with(Default::default);
            let before = h.status.clone();
            if code == 0 {
                h.failing_streak = 0;
                h.status = "healthy".into();
            } else if !in_start_period {
                h.failing_streak += 1;
                if h.failing_streak >= retries {
                    h.status = "unhealthy".into();
                }
            }
            h.log.push(probe);
            if h.log.len() > 5 {
                let extra = h.log.len() - 5;
                h.log.drain(..extra);
            }
            if h.status != before {
                changed = Some(h.status.clone());
            }
        });
        if let Some(st) = changed {
            self.event(&format!("health_status: {st}"), &[]);
        }
    }
}

/// Whether the kernel's OOM killer killed a process of the container's
/// cgroup (`cgroupsPath` is `/barge/<id>`): v1 `memory.oom_control`, v2
/// `memory.events`.
fn oom_killed(id: &str) -> bool {
    let count = |path: String, key: &str| -> u64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse().ok()).flatten()
                })
            })
            .unwrap_or(0)
    };
    count(
        format!("/sys/fs/cgroup/memory/barge/{id}/memory.oom_control"),
        "oom_kill",
    ) > 0
        || count(
            format!("/sys/fs/cgroup/barge/{id}/memory.events"),
            "oom_kill",
        ) > 0
}

/// `containers/<id>/console.sock`, or `/run/barge/<id>.console` when the
/// engine root makes that too long for a unix socket address.
fn console_socket_path(dir: &Path, id: &str) -> Result<PathBuf> {
    let p = dir.join("console.sock");
    if p.as_os_str().len() < 100 {
        return Ok(p);
    }
    let run = Path::new("/run/barge");
    std::fs::create_dir_all(run).map_err(io("create", run))?;
    let _ = std::fs::set_permissions(run, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    Ok(run.join(format!("{id}.console")))
}

fn ts(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// Reads what is buffered in a non-blocking pipe.
fn drain(fd: &OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = rustix::io::read(fd, &mut buf) {
        if n == 0 || out.len() > 1 << 20 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Accepts the runtime's connection on the console socket and takes the
/// pty master it sends.
fn receive_fd(l: &UnixListener) -> Result<OwnedFd> {
    l.set_nonblocking(true)
        .map_err(|e| EngineError::Runtime(format!("console socket: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let conn: UnixStream = loop {
        match l.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                let mut fds = [PollFd::new(l, PollFlags::IN)];
                let _ = rustix::event::poll(&mut fds, Some(&ts(Duration::from_millis(50))));
            }
            Err(e) => {
                return Err(EngineError::Runtime(format!(
                    "the runtime did not send the terminal: {e}"
                )))
            }
        }
    };
    let _ = conn.set_nonblocking(false);
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 4096];
    rustix::net::recvmsg(
        &conn,
        &mut [IoSliceMut::new(&mut buf)],
        &mut cmsg,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| EngineError::Runtime(format!("receive the terminal: {e}")))?;
    let mut master = None;
    for m in cmsg.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(fds) = m {
            for fd in fds {
                if master.is_none() {
                    master = Some(fd);
                }
            }
        }
    }
    let _ = conn.as_raw_fd();
    master.ok_or_else(|| EngineError::Runtime("the runtime sent no terminal".into()))
}
