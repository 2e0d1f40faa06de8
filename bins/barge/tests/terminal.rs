//! Containers on a real terminal: `run -it`, `attach` and `exec -it` driven
//! through tmux, which gives the command a pty of a known size, types keys
//! into it and shows what the screen holds. Each test starts its own tmux
//! server on a private socket (`tmux -L`) and kills only that server.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{barge_bin, Env};

/// The container shell's prompt (busybox sh takes PS1 from the environment).
const PROMPT: &str = "ctr> ";

/// A private tmux server with one window running `command` in `sh`.
struct Tmux {
    socket: String,
    /// The socket file, which `kill-server` leaves behind.
    socket_path: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        static N: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "barge-terminal-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let mut t = Tmux {
            socket,
            socket_path: String::new(),
        };
        // The server gets no user config, and the window no status line, so
        // the pane is exactly the window.
        t.ok(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "100",
            "-y",
            "30",
            command,
        ]);
        t.ok(&["set-option", "-t", "t", "status", "off"]);
        t.ok(&["set-option", "-t", "t", "remain-on-exit", "on"]);
        t.socket_path = t
            .ok(&["display-message", "-p", "#{socket_path}"])
            .trim()
            .to_string();
        t
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux (apt-get install -y tmux)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Types `text` literally (no key names).
    fn type_text(&self, text: &str) {
        self.ok(&["send-keys", "-t", "t", "-l", text]);
    }

    /// Presses keys by tmux name (`Enter`, `BSpace`, `C-c`...).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.ok(&args);
    }

    /// Types a line and presses Enter.
    fn line(&self, text: &str) {
        self.type_text(text);
        self.keys(&["Enter"]);
    }

    /// The visible screen, trailing blanks trimmed from every line.
    fn screen(&self) -> Vec<String> {
        self.ok(&["capture-pane", "-p", "-t", "t"])
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect()
    }

    /// (rows, cols) of the pane as tmux sees it.
    fn pane_size(&self) -> (u16, u16) {
        let s = self.ok(&[
            "display-message",
            "-p",
            "-t",
            "t",
            "#{pane_height} #{pane_width}",
        ]);
        let mut it = s.split_whitespace().map(|v| v.parse().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    }

    fn resize(&self, cols: u16, rows: u16) {
        self.ok(&[
            "resize-window",
            "-t",
            "t",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
    }

    /// Waits (up to 20 s) until `cond` holds for the screen; panics with the
    /// screen otherwise.
    fn wait_screen(&self, what: &str, cond: impl Fn(&[String]) -> bool) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if cond(&s) {
                return s;
            }
            if Instant::now() > until {
                panic!(
                    "timed out waiting for {what}; the screen:\n{}",
                    s.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until some screen line is exactly `text`.
    fn wait_line(&self, text: &str) -> Vec<String> {
        self.wait_screen(&format!("a line {text:?}"), |s| s.iter().any(|l| l == text))
    }

    /// Waits until the last non-empty line is the container prompt, with
    /// at least `n` prompts on the screen.
    fn wait_prompt(&self, n: usize) -> Vec<String> {
        self.wait_screen(&format!("prompt number {n}"), |s| {
            let prompts = s
                .iter()
                .filter(|l| l.starts_with(PROMPT.trim_end()))
                .count();
            last_line(s) == PROMPT.trim_end() && prompts >= n
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Only our server, by its socket.
        let _ = self.run(&["kill-server"]);
        if !self.socket_path.is_empty() {
            let _ = std::fs::remove_file(&self.socket_path);
        }
    }
}

fn last_line(screen: &[String]) -> &str {
    screen
        .iter()
        .rev()
        .find(|l| !l.is_empty())
        .map(String::as_str)
        .unwrap_or("")
}

/// `'...'` for sh.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `barge --root R ARGS...` as a sh command line.
fn barge_line(e: &Env, args: &[&str]) -> String {
    let mut v = vec![sq(barge_bin()), "--root".into(), sq(path_str(e.root()))];
    v.extend(args.iter().map(|a| sq(a)));
    v.join(" ")
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A pane command: runs `cmd`, then prints `MARK=<its exit code>` on a line
/// of its own (the container's prompt may be left without a newline) and
/// into `file`, then stays.
fn then_mark(cmd: &str, mark: &str, file: &Path) -> String {
    format!(
        "{cmd}; rc=$?; echo {mark}=$rc > {}; echo; echo {mark}=$rc; exec sleep 1000",
        sq(path_str(file))
    )
}

/// The `stty size` answer on the screen after the `n`-th time it was typed.
fn stty_answer(screen: &[String], n: usize) -> Option<String> {
    let mut seen = 0;
    let mut it = screen.iter();
    while let Some(l) = it.next() {
        if l.ends_with("stty size") {
            seen += 1;
            if seen == n {
                return it.next().cloned();
            }
        }
    }
    None
}

#[test]
fn run_it_edits_lines_resizes_interrupts_and_returns_the_exit_code() {
    let e = Env::new();
    let exit_file = e.root().join("run-exit");
    let cmd = barge_line(
        &e,
        &[
            "run",
            "-it",
            "--name",
            "tty1",
            "-e",
            "PS1=ctr> ",
            "busybox",
            "sh",
        ],
    );
    let t = Tmux::start(&then_mark(&cmd, "EXIT", &exit_file));
    t.wait_prompt(1);

    // Line editing: a typo rubbed out with backspace.
    t.type_text("echo hellx");
    t.keys(&["BSpace"]);
    t.type_text("o");
    t.keys(&["Enter"]);
    t.wait_line("hello");
    t.wait_prompt(2);

    // The container's terminal has the pane's size...
    let (rows, cols) = t.pane_size();
    assert_eq!((rows, cols), (30, 100));
    t.line("stty size");
    let s = t.wait_prompt(3);
    assert_eq!(
        stty_answer(&s, 1).as_deref(),
        Some("30 100"),
        "{}",
        s.join("\n")
    );
    // ...and follows it when the window is resized.
    t.resize(80, 24);
    assert_eq!(t.pane_size(), (24, 80));
    // The client polls the window size; give it time to pass the change on.
    std::thread::sleep(Duration::from_millis(600));
    t.line("stty size");
    let s = t.wait_prompt(4);
    assert_eq!(
        stty_answer(&s, 2).as_deref(),
        Some("24 80"),
        "{}",
        s.join("\n")
    );

    // ^C interrupts the foreground command in the container; the shell stays.
    t.line("clear");
    t.wait_screen("a cleared screen", |s| {
        s.iter().filter(|l| !l.is_empty()).count() == 1
    });
    t.line("sleep 100");
    std::thread::sleep(Duration::from_millis(800));
    let s = t.screen();
    assert_eq!(last_line(&s), "ctr> sleep 100", "{}", s.join("\n"));
    let interrupted = Instant::now();
    t.keys(&["C-c"]);
    t.wait_prompt(2);
    assert!(interrupted.elapsed() < Duration::from_secs(20));
    t.line("echo still-$((40 + 2))");
    t.wait_line("still-42");
    assert_eq!(e.status("tty1"), "running");

    // The shell's exit code is the command's.
    t.line("exit 3");
    t.wait_line("EXIT=3");
    assert_eq!(
        std::fs::read_to_string(&exit_file).unwrap().trim(),
        "EXIT=3"
    );
    assert_eq!(e.status("tty1"), "exited");
    assert_eq!(e.inspect("tty1", "{{.State.ExitCode}}"), "3");
}

#[test]
fn attach_relays_a_terminal_and_detaches_with_ctrl_p_ctrl_q() {
    let e = Env::new();
    e.ok(&[
        "run",
        "-it",
        "-d",
        "--name",
        "tty2",
        "-e",
        "PS1=ctr> ",
        "busybox",
        "sh",
    ]);
    assert_eq!(e.status("tty2"), "running");
    let mark = e.root().join("attach-exit");
    let t = Tmux::start(&then_mark(
        &barge_line(&e, &["attach", "tty2"]),
        "DETACHED",
        &mark,
    ));
    // Nothing is redrawn on attach: wait for the client to be in raw mode
    // (the pane's tty no longer canonical) before typing.
    std::thread::sleep(Duration::from_millis(800));
    t.line("echo attached-$((1 + 1))");
    t.wait_line("attached-2");
    t.wait_screen("the prompt after the echo", |s| last_line(s) == "ctr>");

    // Ctrl-P Ctrl-Q: the attach command returns 0, the container runs on.
    t.keys(&["C-p", "C-q"]);
    t.wait_line("DETACHED=0");
    assert_eq!(std::fs::read_to_string(&mark).unwrap().trim(), "DETACHED=0");
    assert_eq!(e.status("tty2"), "running");

    // The shell is still there: what it is asked later still runs.
    let o = e.ok(&["exec", "tty2", "sh", "-c", "echo alive"]);
    assert_eq!(o, "alive\n");
}

#[test]
fn exec_it_gets_its_own_pty_and_returns_the_exit_code() {
    let e = Env::new();
    e.ok(&["run", "-d", "--name", "tty3", "busybox", "sleep", "1000"]);
    let mark = e.root().join("exec-exit");
    let t = Tmux::start(&then_mark(
        &barge_line(&e, &["exec", "-it", "-e", "PS1=ctr> ", "tty3", "sh"]),
        "EXEC",
        &mark,
    ));
    t.wait_prompt(1);
    t.line("tty");
    let s = t.wait_prompt(2);
    let answer = s
        .iter()
        .skip_while(|l| !l.ends_with("> tty"))
        .nth(1)
        .cloned()
        .unwrap_or_default();
    assert!(
        answer.starts_with("/dev/pts/"),
        "tty printed {answer:?}:\n{}",
        s.join("\n")
    );
    t.line("stty size");
    let s = t.wait_prompt(3);
    assert_eq!(
        stty_answer(&s, 1).as_deref(),
        Some("30 100"),
        "{}",
        s.join("\n")
    );
    t.line("exit 7");
    t.wait_line("EXEC=7");
    assert_eq!(std::fs::read_to_string(&mark).unwrap().trim(), "EXEC=7");
    // Only the exec'd shell ended.
    assert_eq!(e.status("tty3"), "running");
}
