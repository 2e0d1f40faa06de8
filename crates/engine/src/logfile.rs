//! Docker's `json-file` log driver: the container's monitor writes
//! `containers/<id>/<id>-json.log` (one JSON object per line, rotated by
//! `--log-opt max-size/max-file`) and `barge logs` reads it back.
//!
//! The writer owns the files: it is the only process that appends, renames
//! or removes them. The reader never writes and never takes a lock; it runs
//! in another process, so it copes with rotation happening under it (files
//! are told apart by inode) and skips lines it cannot parse (a torn write
//! after a crash) instead of failing.
//!
//! What matches Docker byte for byte: the entry encoding (moby's
//! `jsonlog.JSONLogs`: escaping, `\ufffd` per invalid byte, time as Go's
//! RFC3339Nano), 16 KiB pieces for long lines, rotated file names, the
//! `--since`/`--until`/`--tail` semantics of moby's reader and the
//! `--log-opt` values and messages. Where it differs: compression is not
//! supported, and `labels`/`env`/`tag` are accepted but add no `attrs`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::error::{io, EngineError, Result};

/// Docker's copier buffer: a line that reaches this many bytes without a
/// newline is logged in pieces of this size, without `\n`.
const MAX_PIECE: usize = 16 * 1024;
/// How often a follower looks for new entries.
const POLL: Duration = Duration::from_millis(50);
/// Read size of the reader (forwards and backwards).
const READ_BLOCK: usize = 64 * 1024;
/// Longest line the reader holds on to. An entry is at most 16 KiB of log
/// escaped (6 bytes a byte at worst) plus the stream and time; anything
/// longer is not ours and is skipped without being kept in memory.
const MAX_LINE: usize = 1024 * 1024;
/// Permissions of a log file, as Docker's.
const LOG_MODE: u32 = 0o640;

/// Which of the container's outputs a piece of log came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// Appends a container's output to its json-file log, rotating it.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    /// Bytes in the current file.
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    /// A line started but not finished, per stream (stdout, stderr).
    pending: [Vec<u8>; 2],
}

impl LogWriter {
    /// Opens (or creates) the log at `path` (`containers/<id>/<id>-json.log`)
    /// for appending. `max_size` `None` never rotates; `max_file` is the
    /// number of files kept, the current one included (Docker's default 1;
    /// 0 is taken as 1).
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> Result<LogWriter> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(LOG_MODE)
            .open(path)
            .map_err(io("open log file", path))?;
        let size = file.metadata().map_err(io("stat log file", path))?.len();
        let mut writer = LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
            pending: [Vec::new(), Vec::new()],
        };
        // A crash can leave a torn last line; end it so that the next entry
        // starts a line of its own (the reader skips the torn one).
        if size > 0 {
            let mut last = [0u8];
            writer
                .file
                .read_exact_at(&mut last, size - 1)
                .map_err(io("read log file", path))?;
            if last[0] != b'\n' {
                writer.append(b"\n")?;
            }
        }
        Ok(writer)
    }

    /// Logs bytes as read from the container's stdout or stderr pipe (a pty
    /// is `Stdout`). Every complete line becomes an entry now; the rest of a
    /// line waits for its newline (per stream), except that 16 KiB of it
    /// are logged as an entry of their own without `\n`, as Docker does.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<()> {
        let idx = stream.index();
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            if self.pending[idx].is_empty() {
                self.log_line(stream, &rest[..nl], true)?;
            } else {
                let mut line = std::mem::take(&mut self.pending[idx]);
                line.extend_from_slice(&rest[..nl]);
                self.log_line(stream, &line, true)?;
                line.clear();
                self.pending[idx] = line;
            }
            rest = &rest[nl + 1..];
        }
        if !rest.is_empty() {
            let mut line = std::mem::take(&mut self.pending[idx]);
            line.extend_from_slice(rest);
            let logged = self.log_line(stream, &line, false)?;
            line.drain(..logged);
            self.pending[idx] = line;
        }
        Ok(())
    }

    /// Logs the unfinished lines of both streams without `\n`; for when the
    /// container has exited and no newline will come.
    pub fn flush_partial(&mut self) -> Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let line = std::mem::take(&mut self.pending[stream.index()]);
            if !line.is_empty() {
                self.log_entry(stream, &line, false)?;
            }
        }
        Ok(())
    }

    /// Logs `line` (its newline stripped) in pieces of [`MAX_PIECE`] bytes
    /// without `\n` and, if `complete`, the rest with `\n` (an empty line
    /// too). Returns how many bytes of `line` were logged.
    fn log_line(&mut self, stream: Stream, line: &[u8], complete: bool) -> Result<usize> {
        let mut pieces = line.chunks_exact(MAX_PIECE);
        for piece in &mut pieces {
            self.log_entry(stream, piece, false)?;
        }
        let rest = pieces.remainder();
        if complete {
            self.log_entry(stream, rest, true)?;
            Ok(line.len())
        } else {
            Ok(line.len() - rest.len())
        }
    }

    fn log_entry(&mut self, stream: Stream, log: &[u8], newline: bool) -> Result<()> {
        let (secs, nanos) = unix_time(SystemTime::now());
        let entry = encode_entry(stream, log, newline, secs, nanos);
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + entry.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.append(&entry)
    }

    /// One `write` for the whole entry, so that a reader sees it at once.
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(io("write log file", &self.path))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// `path.{n-2}` -> `path.{n-1}` (dropping the old one), ..., `path` ->
    /// `path.1`, then a new empty `path`. With one file, `path` is removed
    /// and created again (a follower holding it still reads it to the end).
    fn rotate(&mut self) -> Result<()> {
        let path = self.path.clone();
        if self.max_file >= 2 {
            let oldest = self.max_file - 1;
            // Only the files that exist are moved: max_file may be large.
            let mut top = 0;
            while top < oldest && fs::symlink_metadata(rotated_path(&path, top + 1)).is_ok() {
                top += 1;
            }
            if top == oldest {
                let last = rotated_path(&path, oldest);
                remove_if_exists(&last)?;
                top -= 1;
            }
            for i in (1..=top).rev() {
                let from = rotated_path(&path, i);
                fs::rename(&from, rotated_path(&path, i + 1))
                    .map_err(io("rotate log file", &from))?;
            }
            fs::rename(&path, rotated_path(&path, 1)).map_err(io("rotate log file", &path))?;
        } else {
            remove_if_exists(&path)?;
        }
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(LOG_MODE)
            .open(&path)
            .map_err(io("open log file", &path))?;
        self.size = 0;
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io("remove log file", path)(e)),
        _ => Ok(()),
    }
}

/// `path.i`, the i-th newest rotated file.
fn rotated_path(path: &Path, i: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{i}"));
    PathBuf::from(name)
}

/// One line of the log, as moby's `jsonlog.JSONLogs.MarshalJSONBuf` writes
/// it: `{"log":"hello\n","stream":"stdout","time":"..."}` and a newline.
fn encode_entry(stream: Stream, log: &[u8], newline: bool, secs: i64, nanos: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(log.len() + 80);
    out.extend_from_slice(b"{");
    if !log.is_empty() || newline {
        out.extend_from_slice(b"\"log\":\"");
        escape_json(&mut out, log);
        if newline {
            out.extend_from_slice(b"\\n");
        }
        out.extend_from_slice(b"\",");
    }
    out.extend_from_slice(b"\"stream\":\"");
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    out.extend_from_slice(go_rfc3339_nano(secs, nanos).as_bytes());
    out.extend_from_slice(b"\"}\n");
    out
}

/// Docker's string escaping (moby `ffjsonWriteJSONBytesAsString`): `\"`,
/// `\\`, `\n`, `\r`; other control characters and `<`, `>`, `&` as
/// `\u00XX`; each byte that is not part of valid UTF-8 as `\ufffd` (as Go's
/// `utf8.DecodeRune` sees it); U+2028 and U+2029 escaped.
fn escape_json(out: &mut Vec<u8>, mut bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    while !bytes.is_empty() {
        let (valid, invalid) = match std::str::from_utf8(bytes) {
            Ok(s) => (s, false),
            // valid_up_to is a char boundary, so this cannot fail.
            Err(e) => (
                std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
                true,
            ),
        };
        for c in valid.chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\u{0}'..='\u{1f}' | '<' | '>' | '&' => {
                    let b = c as u8;
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
                '\u{2028}' => out.extend_from_slice(b"\\u2028"),
                '\u{2029}' => out.extend_from_slice(b"\\u2029"),
                _ => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        bytes = &bytes[valid.len()..];
        if invalid {
            out.extend_from_slice(b"\\ufffd");
            bytes = &bytes[1..];
        }
    }
}

/// Go's `time.RFC3339Nano` in UTC: the fraction without trailing zeros,
/// none at all on a whole second.
fn go_rfc3339_nano(secs: i64, nanos: u32) -> String {
    let fixed = barge_runtime::utils::rfc3339(secs, nanos);
    let body = fixed.strip_suffix('Z').unwrap_or(&fixed);
    let body = body.trim_end_matches('0').trim_end_matches('.');
    format!("{body}Z")
}

/// Seconds and nanoseconds since the epoch (negative before it).
fn unix_time(t: SystemTime) -> (i64, u32) {
    let nanos = unix_nanos(t);
    (
        nanos.div_euclid(1_000_000_000) as i64,
        nanos.rem_euclid(1_000_000_000) as u32,
    )
}

fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// Docker's `--log-opt` values for the json-file driver: `max-size` (a
/// size such as `10m`, `1k`, `100`; k, m, g, t, p with an optional `b` or
/// `ib`, case-insensitive, all powers of 1000 as Docker's
/// `units.FromHumanSize`) and `max-file` (at least 1). Returns
/// `(max_size, max_file)`; `(None, 1)` when neither is given.
pub fn parse_log_opts(opts: &BTreeMap<String, String>) -> Result<(Option<u64>, u32)> {
    let invalid = |m: String| EngineError::InvalidArgument(m);
    for key in opts.keys() {
        match key.as_str() {
            "max-file" | "max-size" | "compress" | "labels" | "labels-regex" | "env"
            | "env-regex" | "tag" => {}
            _ => {
                return Err(invalid(format!(
                    "unknown log opt '{key}' for json-file log driver"
                )))
            }
        }
    }
    let max_size = match opts.get("max-size") {
        None => None,
        Some(v) => {
            let size = parse_human_size(v).map_err(invalid)?;
            if size == 0 {
                return Err(invalid("max-size must be a positive number".into()));
            }
            Some(size)
        }
    };
    let max_file = match opts.get("max-file") {
        None => 1,
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| invalid(format!("strconv.Atoi: parsing {v:?}: invalid syntax")))?;
            if n < 1 {
                return Err(invalid("max-file cannot be less than 1".into()));
            }
            u32::try_from(n)
                .map_err(|_| invalid(format!("strconv.Atoi: parsing {v:?}: value out of range")))?
        }
    };
    if let Some(v) = opts.get("compress") {
        let compress = match v.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => {
                return Err(invalid(format!(
                    "strconv.ParseBool: parsing {v:?}: invalid syntax"
                )))
            }
        };
        if compress {
            if max_file == 1 || max_size.is_none() {
                return Err(invalid(
                    "compress cannot be true when max-file is less than 2 or max-size is not set"
                        .into(),
                ));
            }
            return Err(invalid(
                "compress is not supported by the json-file log driver of barge; remove --log-opt compress=true".into(),
            ));
        }
    }
    Ok((max_size, max_file))
}

/// go-units `parseSize` with the decimal map: a number, an optional space,
/// an optional suffix (`b`, or k/m/g/t/p followed by nothing, `b` or `ib`).
fn parse_human_size(s: &str) -> std::result::Result<u64, String> {
    let bad = || format!("invalid size: '{s}'");
    let Some(sep) = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(bad());
    };
    let (num, suffix) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..=sep], &s[sep + 1..])
    };
    let size: f64 = num.parse().map_err(|_| bad())?;
    if !size.is_finite() || size < 0.0 {
        return Err(bad());
    }
    let suffix_lc = suffix.to_ascii_lowercase();
    let bad_suffix = || format!("invalid suffix: '{suffix_lc}'");
    let mul: f64 = match suffix_lc.as_bytes() {
        [] | [b'b'] => 1.0,
        [unit, rest @ ..] => {
            let mul = match unit {
                b'k' => 1e3,
                b'm' => 1e6,
                b'g' => 1e9,
                b't' => 1e12,
                b'p' => 1e15,
                _ => return Err(bad_suffix()),
            };
            match rest {
                [] | [b'b'] | [b'i', b'b'] => mul,
                _ => return Err(bad_suffix()),
            }
        }
    };
    // As Go's int64(float64): truncated (and saturated here).
    Ok((size * mul) as u64)
}

/// What `barge logs` asked for.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Only entries at or after this time (seconds, nanoseconds).
    pub since: Option<(i64, u32)>,
    /// Only entries at or before this time; reading stops at the first
    /// entry after it.
    pub until: Option<(i64, u32)>,
    /// Only the last N entries of the log (over all its files), before
    /// `since`/`until` filter them, as Docker does.
    pub tail: Option<usize>,
    /// Prefix every entry with its time and a space (`docker logs -t`).
    pub timestamps: bool,
    /// Keep reading new entries until the container stops.
    pub follow: bool,
}

/// Writes the entries of the log at `path` (oldest rotated file first,
/// then the current one) to `out_stdout` or `out_stderr` by stream. With
/// `follow`, then waits for new entries (polling, across rotations) until
/// `is_running()` says no and all that was written has been read. A missing
/// log writes nothing; a reader gone (EPIPE) ends reading quietly; lines
/// that are not entries are skipped.
pub fn read_logs(
    path: &Path,
    opts: &ReadOptions,
    out_stdout: &mut dyn Write,
    out_stderr: &mut dyn Write,
    is_running: &mut dyn FnMut() -> bool,
) -> Result<()> {
    let Some(chain) = open_chain(path, None)? else {
        return Ok(());
    };
    let mut sink = Sink {
        opts,
        stdout: out_stdout,
        stderr: out_stderr,
        path,
    };
    // Oldest first; the current file last.
    let mut files: Vec<(File, PathBuf)> = chain.rotated.into_iter().rev().collect();
    files.push((chain.current, path.to_path_buf()));
    let mut starts = vec![0u64; files.len()];
    if let Some(n) = opts.tail {
        let mut need = n;
        let last = files.len() - 1;
        for (i, (file, name)) in files.iter().enumerate().rev() {
            let len = file.metadata().map_err(io("stat log file", name))?.len();
            // The current file is scanned even for 0 lines: reading starts
            // after its last complete line, not inside an entry being written.
            if need == 0 && i != last {
                starts[i] = len;
                continue;
            }
            let (start, found) = tail_start(file, len, need).map_err(io("read log file", name))?;
            starts[i] = start;
            need -= found;
        }
    }
    let mut cursors: Vec<Cursor> = files
        .into_iter()
        .zip(starts)
        .map(|((file, name), start)| Cursor::new(file, name, start))
        .collect();
    let Some(mut current) = cursors.pop() else {
        return Ok(());
    };
    for mut rotated in cursors {
        if rotated.drain(&mut sink)? == Flow::Stop {
            return sink.flush().map(drop);
        }
    }
    if current.drain(&mut sink)? == Flow::Stop || !opts.follow {
        return sink.flush().map(drop);
    }
    loop {
        // Asked before reading: once the container is seen stopped, one
        // more pass reads everything it wrote.
        let running = is_running();
        if follow_once(path, &mut current, &mut sink)? == Flow::Stop
            || sink.flush()? == Flow::Stop
            || !running
        {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

/// Reads what was appended to the followed file; when `path` is no longer
/// that file (rotated), reads the rest of it, the rotated files newer than
/// it and moves on to the new `path`.
fn follow_once(path: &Path, current: &mut Cursor, sink: &mut Sink) -> Result<Flow> {
    if current.drain(sink)? == Flow::Stop {
        return Ok(Flow::Stop);
    }
    let on_disk = match fs::metadata(path) {
        Ok(m) => m,
        // Between removal and creation (max-file 1), or the container is
        // being removed: nothing new yet.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Flow::Go),
        Err(e) => return Err(io("stat log file", path)(e)),
    };
    let ours = current.file.metadata().map_err(io("stat log file", path))?;
    if (on_disk.dev(), on_disk.ino()) == (ours.dev(), ours.ino()) {
        if on_disk.len() < current.offset {
            // Truncated in place (not by us): start over.
            current.offset = 0;
            current.line.clear();
            return current.drain(sink);
        }
        return Ok(Flow::Go);
    }
    // Rotated: the writer no longer appends to our file, so this reads it
    // to its true end.
    if current.drain(sink)? == Flow::Stop {
        return Ok(Flow::Stop);
    }
    let Some(chain) = open_chain(path, Some((ours.dev(), ours.ino())))? else {
        return Ok(Flow::Go);
    };
    // Several rotations since the last look: the files between ours and
    // the new current one, oldest first.
    for (file, name) in chain.rotated.into_iter().rev() {
        if Cursor::new(file, name, 0).drain(sink)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    *current = Cursor::new(chain.current, path.to_path_buf(), 0);
    current.drain(sink)
}

/// The current log file and the rotated ones, newest first.
struct Chain {
    current: File,
    rotated: Vec<(File, PathBuf)>,
}

/// Opens `path`, then `path.1`, `path.2`, ... until one is missing or is
/// the file `stop_at` (device, inode). A file seen twice (rotated while
/// the chain was opened) is kept once. `None` if `path` does not exist.
fn open_chain(path: &Path, stop_at: Option<(u64, u64)>) -> Result<Option<Chain>> {
    let current = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("open log file", path)(e)),
    };
    let id = |f: &File, p: &Path| -> Result<(u64, u64)> {
        let m = f.metadata().map_err(io("stat log file", p))?;
        Ok((m.dev(), m.ino()))
    };
    let mut seen = vec![id(&current, path)?];
    let mut rotated = Vec::new();
    for i in 1.. {
        let name = rotated_path(path, i);
        let file = match File::open(&name) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(io("open log file", &name)(e)),
        };
        let file_id = id(&file, &name)?;
        if Some(file_id) == stop_at {
            break;
        }
        if !seen.contains(&file_id) {
            seen.push(file_id);
            rotated.push((file, name));
        }
    }
    Ok(Some(Chain { current, rotated }))
}

/// Where the last `need` complete lines of the first `len` bytes of `file`
/// start, and how many there are (fewer if the file has fewer). Bytes after
/// the last newline are not a line.
fn tail_start(file: &File, len: u64, need: usize) -> io::Result<(u64, usize)> {
    let mut newlines = 0usize;
    let mut end = len;
    let mut buf = vec![0u8; READ_BLOCK];
    while end > 0 {
        let start = end.saturating_sub(READ_BLOCK as u64);
        let block = &mut buf[..(end - start) as usize];
        file.read_exact_at(block, start)?;
        for (j, &b) in block.iter().enumerate().rev() {
            if b == b'\n' {
                // The k-th newline from the end ends the k-th line from the
                // end; the one after `need` of them is where they begin.
                if newlines == need {
                    return Ok((start + j as u64 + 1, need));
                }
                newlines += 1;
            }
        }
        end = start;
    }
    Ok((0, newlines))
}

/// Reads one log file forwards from an offset, line by line.
struct Cursor {
    file: File,
    name: PathBuf,
    offset: u64,
    /// The start of a line whose newline has not been read yet.
    line: Vec<u8>,
    /// The line being read is longer than [`MAX_LINE`]: drop it.
    skipping: bool,
    buf: Vec<u8>,
}

impl Cursor {
    fn new(file: File, name: PathBuf, offset: u64) -> Cursor {
        Cursor {
            file,
            name,
            offset,
            line: Vec::new(),
            skipping: false,
            buf: vec![0u8; READ_BLOCK],
        }
    }

    /// Gives every complete line up to the end of the file to `sink`; an
    /// unfinished last line is kept for the next call.
    fn drain(&mut self, sink: &mut Sink) -> Result<Flow> {
        loop {
            let n = loop {
                match self.file.read_at(&mut self.buf, self.offset) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io("read log file", &self.name)(e)),
                }
            };
            if n == 0 {
                return Ok(Flow::Go);
            }
            self.offset += n as u64;
            let mut data = &self.buf[..n];
            while let Some(nl) = data.iter().position(|&b| b == b'\n') {
                let flow = if self.skipping {
                    self.skipping = false;
                    Flow::Go
                } else if self.line.is_empty() {
                    sink.entry(&data[..nl])?
                } else {
                    self.line.extend_from_slice(&data[..nl]);
                    let flow = sink.entry(&self.line)?;
                    self.line.clear();
                    flow
                };
                if flow == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                data = &data[nl + 1..];
            }
            if !self.skipping {
                self.line.extend_from_slice(data);
                if self.line.len() > MAX_LINE {
                    self.line = Vec::new();
                    self.skipping = true;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    /// Past `--until`, or whoever reads our output is gone.
    Stop,
}

/// Where entries go: filtered, prefixed, split by stream.
struct Sink<'a> {
    opts: &'a ReadOptions,
    stdout: &'a mut dyn Write,
    stderr: &'a mut dyn Write,
    path: &'a Path,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default, borrow)]
    log: Cow<'a, str>,
    #[serde(default, borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

impl Sink<'_> {
    fn entry(&mut self, line: &[u8]) -> Result<Flow> {
        let Ok(entry) = serde_json::from_slice::<Entry>(line) else {
            return Ok(Flow::Go);
        };
        let Some(time) = parse_rfc3339(&entry.time) else {
            return Ok(Flow::Go);
        };
        if self.opts.since.is_some_and(|since| time < since) {
            return Ok(Flow::Go);
        }
        if self.opts.until.is_some_and(|until| time > until) {
            return Ok(Flow::Stop);
        }
        let out: &mut dyn Write = if entry.stream == "stderr" {
            &mut *self.stderr
        } else {
            &mut *self.stdout
        };
        let written = if self.opts.timestamps {
            let stamp = barge_runtime::utils::rfc3339(time.0, time.1);
            out.write_all(stamp.as_bytes())
                .and_then(|()| out.write_all(b" "))
                .and_then(|()| out.write_all(entry.log.as_bytes()))
        } else {
            out.write_all(entry.log.as_bytes())
        };
        self.written(written)
    }

    fn flush(&mut self) -> Result<Flow> {
        let flushed = self.stdout.flush().and_then(|()| self.stderr.flush());
        self.written(flushed)
    }

    fn written(&self, result: io::Result<()>) -> Result<Flow> {
        match result {
            Ok(()) => Ok(Flow::Go),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Flow::Stop),
            Err(e) => Err(io("write the entries of log file", self.path)(e)),
        }
    }
}

/// Docker's `--since`/`--until` values (moby `GetTimestamp`): a Go duration
/// (`10m`, `1h30m`, `1.5h`, `42s`) meaning `now` minus it, to the second;
/// RFC 3339 with or without fraction and zone (`2026-11-28T15:16:30Z`,
/// `2026-11-28T15:16:30.5+01:00`, `2026-11-28T15:16`, `2026-11-28T15`,
/// `2026-11-28`, `2026-11-28Z`); or a Unix timestamp (`1700000000`,
/// `1700000000.123`). A time without a zone is taken as UTC (Docker takes
/// the client's local zone; barge has no time zone database).
pub fn parse_time_arg(s: &str, now: SystemTime) -> Result<(i64, u32)> {
    if s != "0" {
        if let Some(d) = parse_go_duration(s) {
            let t = unix_nanos(now) - d;
            return Ok((t.div_euclid(1_000_000_000) as i64, 0));
        }
    }
    let zone = s.contains(['z', 'Z', '+']) || s.matches('-').count() == 3;
    let layout = if s.contains('.') {
        Layout {
            time: 3,
            fraction: true,
            zone,
        }
    } else if s.contains('T') {
        // Colons of the time of day; a numeric zone has one more.
        let mut colons = s.matches(':').count();
        if zone && !s.contains(['z', 'Z']) && colons > 0 {
            colons -= 1;
        }
        Layout {
            time: (colons + 1).min(3),
            fraction: false,
            zone,
        }
    } else {
        Layout {
            time: 0,
            fraction: false,
            zone,
        }
    };
    match layout.parse(s) {
        Ok(t) => Ok(t),
        Err(reason) if s.contains('-') => Err(EngineError::InvalidArgument(format!(
            "parsing time {s:?}: {reason}"
        ))),
        Err(_) => parse_unix_timestamp(s).ok_or_else(|| {
            EngineError::InvalidArgument(format!(
                "failed to parse value as time or duration: {s:?}"
            ))
        }),
    }
}

/// Go's `time.ParseDuration`, in nanoseconds: `[-+]` then numbers with an
/// optional fraction, each with a unit (ns, us, µs, ms, s, m, h); `0` alone
/// needs none.
fn parse_go_duration(s: &str) -> Option<i128> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let digits = |t: &str| t.bytes().take_while(u8::is_ascii_digit).count();
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = digits(rest);
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = digits(after_dot);
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut value = int.checked_mul(unit)?;
        let (mut frac, mut scale) = (0i128, 1i128);
        for d in frac_part.bytes().take(18) {
            frac = frac * 10 + i128::from(d - b'0');
            scale *= 10;
        }
        value += frac * unit / scale;
        total = total.checked_add(value)?;
        if total > i128::from(i64::MAX) {
            return None;
        }
    }
    Some(if negative { -total } else { total })
}

/// `1700000000` or `1700000000.123` (moby `parseTimestamp`).
fn parse_unix_timestamp(s: &str) -> Option<(i64, u32)> {
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let (secs, frac) = match s.split_once('.') {
        Some((secs, frac)) => (secs, Some(frac)),
        None => (s, None),
    };
    if !all_digits(secs) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let nanos = match frac {
        None => 0,
        Some(frac) if all_digits(frac) => {
            let mut digits: String = frac.chars().take(9).collect();
            while digits.len() < 9 {
                digits.push('0');
            }
            digits.parse().ok()?
        }
        Some(_) => return None,
    };
    Some((secs, nanos))
}

/// What `parse_time_arg` expects of an RFC 3339-like value, as the Go
/// layouts of moby's `GetTimestamp`.
struct Layout {
    /// Fields of the time of day: 0 (date only), 1 (`T15`), 2 (`T15:04`),
    /// 3 (`T15:04:05`).
    time: usize,
    /// An optional fraction of a second after the seconds.
    fraction: bool,
    /// A zone (`Z` or `±hh:mm`) at the end.
    zone: bool,
}

impl Layout {
    fn name(&self) -> String {
        let time = ["", "T15", "T15:04", "T15:04:05"][self.time];
        let fraction = if self.fraction { ".999999999" } else { "" };
        let zone = if self.zone { "Z07:00" } else { "" };
        format!("2006-01-02{time}{fraction}{zone}")
    }

    fn parse(&self, s: &str) -> std::result::Result<(i64, u32), String> {
        let cannot = || format!("expected the form {}", self.name());
        let mut p = Parser { rest: s.as_bytes() };
        let year = p.number(4).ok_or_else(cannot)?;
        p.literal(b'-').ok_or_else(cannot)?;
        let month = p.number(2).ok_or_else(cannot)?;
        p.literal(b'-').ok_or_else(cannot)?;
        let day = p.number(2).ok_or_else(cannot)?;
        let mut hms = [0i64; 3];
        for (i, field) in hms.iter_mut().enumerate().take(self.time) {
            p.literal(if i == 0 { b'T' } else { b':' })
                .ok_or_else(cannot)?;
            *field = p.number(2).ok_or_else(cannot)?;
        }
        let mut nanos = 0u32;
        if self.fraction && p.rest.first() == Some(&b'.') {
            p.rest = &p.rest[1..];
            let len = p.rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if len == 0 {
                return Err(cannot());
            }
            for i in 0..9 {
                let digit = p.rest.get(i).filter(|_| i < len).map_or(0, |d| d - b'0');
                nanos = nanos * 10 + u32::from(digit);
            }
            p.rest = &p.rest[len..];
        }
        let mut offset = 0i64;
        if self.zone {
            match p.rest.first() {
                Some(b'Z' | b'z') => p.rest = &p.rest[1..],
                Some(&sign @ (b'+' | b'-')) => {
                    p.rest = &p.rest[1..];
                    let hh = p.number(2).ok_or_else(cannot)?;
                    p.literal(b':').ok_or_else(cannot)?;
                    let mm = p.number(2).ok_or_else(cannot)?;
                    if hh > 23 || mm > 59 {
                        return Err("time zone offset out of range".into());
                    }
                    offset = (hh * 3600 + mm * 60) * if sign == b'-' { -1 } else { 1 };
                }
                _ => return Err(cannot()),
            }
        }
        if !p.rest.is_empty() {
            return Err(format!("extra text after {}", self.name()));
        }
        let [hour, minute, second] = hms;
        if !(1..=12).contains(&month) {
            return Err("month out of range".into());
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err("day out of range".into());
        }
        if hour > 23 {
            return Err("hour out of range".into());
        }
        if minute > 59 {
            return Err("minute out of range".into());
        }
        if second > 59 {
            return Err("second out of range".into());
        }
        let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
            - offset;
        Ok((secs, nanos))
    }
}

struct Parser<'a> {
    rest: &'a [u8],
}

impl Parser<'_> {
    /// Exactly `width` decimal digits.
    fn number(&mut self, width: usize) -> Option<i64> {
        let digits = self.rest.get(..width)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.rest = &self.rest[width..];
        Some(
            digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')),
        )
    }

    fn literal(&mut self, byte: u8) -> Option<()> {
        let (&first, rest) = self.rest.split_first()?;
        if first != byte {
            return None;
        }
        self.rest = rest;
        Some(())
    }
}

/// The time of an entry as Docker writes it (RFC 3339, any fraction, `Z`
/// or an offset).
fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    Layout {
        time: 3,
        fraction: true,
        zone: true,
    }
    .parse(s)
    .ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days-from-civil algorithm (the inverse of the one
/// behind `barge_runtime::utils::rfc3339`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    /// 2026-11-28T15:16:30Z.
    const T: i64 = 1_795_878_990;
    /// 2026-11-28T00:00:00Z.
    const DAY: i64 = 1_795_824_000;

    /// (log, stream) of every line of a log file.
    fn logged(path: &Path) -> Vec<(String, String)> {
        let text = fs::read_to_string(path).unwrap();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["log"].as_str().unwrap_or_default().to_string(),
                    v["stream"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn logs(entries: &[(String, String)]) -> Vec<&str> {
        entries.iter().map(|(l, _)| l.as_str()).collect()
    }

    /// A log with entries at known times: (stream, log, seconds after T).
    fn write_log(path: &Path, entries: &[(Stream, &str, i64)]) {
        let mut data = Vec::new();
        for (stream, log, dt) in entries {
            let (log, newline) = match log.strip_suffix('\n') {
                Some(l) => (l, true),
                None => (*log, false),
            };
            data.extend(encode_entry(*stream, log.as_bytes(), newline, T + dt, 0));
        }
        fs::write(path, data).unwrap();
    }

    fn read(path: &Path, opts: &ReadOptions) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        read_logs(path, opts, &mut out, &mut err, &mut || false).unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn logs_a_line_as_docker_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, None, 1).unwrap();
        w.write(Stream::Stdout, b"hello\n").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let rest = text
            .strip_prefix(r#"{"log":"hello\n","stream":"stdout","time":""#)
            .unwrap();
        let time = rest.strip_suffix("\"}\n").unwrap();
        assert!(parse_rfc3339(time).is_some(), "{time}");
        let fraction = time.split_once('.').map_or("", |(_, f)| f);
        assert!(
            !fraction.ends_with("0Z"),
            "Go's RFC3339Nano trims zeros: {time}"
        );
    }

    #[test]
    fn time_is_written_as_go_rfc3339_nano() {
        assert_eq!(
            go_rfc3339_nano(T, 123_456_789),
            "2026-11-28T15:16:30.123456789Z"
        );
        assert_eq!(go_rfc3339_nano(T, 120_000_000), "2026-11-28T15:16:30.12Z");
        assert_eq!(go_rfc3339_nano(T, 0), "2026-11-28T15:16:30Z");
        assert_eq!(go_rfc3339_nano(T + 30, 0), "2026-11-28T15:17:00Z");
    }

    #[test]
    fn joins_a_line_split_across_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, None, 1).unwrap();
        w.write(Stream::Stdout, b"hel").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        w.write(Stream::Stdout, b"lo\nwor").unwrap();
        w.write(Stream::Stdout, b"ld\n\nlast\n").unwrap();
        assert_eq!(logs(&logged(&path)), ["hello\n", "world\n", "\n", "last\n"]);
    }

    #[test]
    fn keeps_unfinished_lines_per_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, None, 1).unwrap();
        w.write(Stream::Stdout, b"out ").unwrap();
        w.write(Stream::Stderr, b"err ").unwrap();
        w.write(Stream::Stderr, b"line\n").unwrap();
        w.write(Stream::Stdout, b"line\n").unwrap();
        let l = logged(&path);
        assert_eq!(
            l,
            [
                ("err line\n".to_string(), "stderr".to_string()),
                ("out line\n".to_string(), "stdout".to_string())
            ]
        );
    }

    #[test]
    fn flush_partial_logs_unfinished_lines_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, None, 1).unwrap();
        w.write(Stream::Stdout, b"done\nno newline").unwrap();
        w.write(Stream::Stderr, b"err tail").unwrap();
        w.flush_partial().unwrap();
        let l = logged(&path);
        assert_eq!(logs(&l), ["done\n", "no newline", "err tail"]);
        assert_eq!(l[2].1, "stderr");
        // Nothing left to flush a second time.
        w.flush_partial().unwrap();
        assert_eq!(logged(&path).len(), 3);
    }

    #[test]
    fn logs_a_long_line_in_16k_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, None, 1).unwrap();
        let long = vec![b'a'; 40_000];
        w.write(Stream::Stdout, &long[..10_000]).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"", "10000 bytes wait for more");
        w.write(Stream::Stdout, &long[10_000..]).unwrap();
        let l = logged(&path);
        assert_eq!(l.len(), 2, "two full pieces, the rest waits");
        assert!(l
            .iter()
            .all(|(log, _)| log.len() == MAX_PIECE && !log.ends_with('\n')));
        w.write(Stream::Stdout, b"\n").unwrap();
        let l = logged(&path);
        assert_eq!(l[2].0.len(), 40_000 - 2 * MAX_PIECE + 1);
        assert!(l[2].0.ends_with('\n'));

        // A line of exactly 16 KiB: a piece, then its newline alone (Docker).
        let mut exact = vec![b'b'; MAX_PIECE];
        exact.push(b'\n');
        w.write(Stream::Stderr, &exact).unwrap();
        let l = logged(&path);
        assert_eq!(l[3].0.len(), MAX_PIECE);
        assert_eq!(l[4].0, "\n");
    }

    #[test]
    fn escapes_like_docker() {
        let raw = b"a\"b\\c\td\re\x01<>&\xff\xe2\x82z\xe2\x80\xa8\xc3\xa9\x7f";
        let entry = encode_entry(Stream::Stderr, raw, true, T, 5);
        let expected = concat!(
            r#"{"log":"a\"b\\c\u0009d\re\u0001\u003c\u003e\u0026\ufffd\ufffd\ufffdz\u2028"#,
            "\u{e9}\u{7f}",
            r#"\n","stream":"stderr","time":"2026-11-28T15:16:30.000000005Z"}"#,
            "\n"
        );
        assert_eq!(String::from_utf8(entry.clone()).unwrap(), expected);
        // And it is JSON that says what was written, invalid bytes as U+FFFD.
        let v: serde_json::Value = serde_json::from_slice(&entry).unwrap();
        assert_eq!(
            v["log"],
            "a\"b\\c\td\re\u{1}<>&\u{fffd}\u{fffd}\u{fffd}z\u{2028}\u{e9}\u{7f}\n"
        );
    }

    #[test]
    fn rotates_by_truncating_with_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, Some(300), 1).unwrap();
        for i in 0..30 {
            w.write(Stream::Stdout, format!("line {i:02}\n").as_bytes())
                .unwrap();
        }
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no rotated files with max-file 1");
        assert!(fs::metadata(&path).unwrap().len() <= 300);
        let l = logged(&path);
        assert!(!l.is_empty() && l.len() < 30);
        let first: usize = l[0].0[5..7].parse().unwrap();
        let expected: Vec<String> = (first..30).map(|i| format!("line {i:02}\n")).collect();
        assert_eq!(logs(&l), expected);
    }

    #[test]
    fn rotates_through_max_file_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, Some(300), 3).unwrap();
        for i in 0..30 {
            w.write(Stream::Stdout, format!("line {i:02}\n").as_bytes())
                .unwrap();
        }
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["c-json.log", "c-json.log.1", "c-json.log.2"]);
        let files = [rotated_path(&path, 2), rotated_path(&path, 1), path.clone()];
        let mut all = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let len = fs::metadata(f).unwrap().len();
            assert!(len > 0 && len <= 300, "{f:?}: {len}");
            let l = logged(f);
            // A file was rotated only when the next entry did not fit.
            if let Some(next) = files.get(i + 1) {
                let next_entry = fs::read_to_string(next).unwrap();
                let first_len = next_entry.lines().next().unwrap().len() as u64 + 1;
                assert!(len + first_len > 300);
            }
            all.extend(l);
        }
        let first: usize = all[0].0[5..7].parse().unwrap();
        let expected: Vec<String> = (first..30).map(|i| format!("line {i:02}\n")).collect();
        assert_eq!(
            logs(&all),
            expected,
            "oldest file first, nothing lost within"
        );
    }

    #[test]
    fn ends_a_torn_last_line_when_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        write_log(&path, &[(Stream::Stdout, "before\n", 0)]);
        let mut data = fs::read(&path).unwrap();
        data.extend_from_slice(br#"{"log":"torn"#);
        fs::write(&path, data).unwrap();
        let mut w = LogWriter::open(&path, None, 1).unwrap();
        w.write(Stream::Stdout, b"after\n").unwrap();
        let (out, _) = read(&path, &ReadOptions::default());
        assert_eq!(out, "before\nafter\n");
    }

    #[test]
    fn reads_entries_by_stream_and_skips_corrupt_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        write_log(
            &path,
            &[
                (Stream::Stdout, "one\n", 0),
                (Stream::Stderr, "two\n", 1),
                (Stream::Stdout, "partial", 2),
                (Stream::Stdout, "three\n", 3),
            ],
        );
        let mut data = fs::read(&path).unwrap();
        data.extend_from_slice(b"not json\n{\"log\":\"no time\\n\"}\n\xff\xfe\n");
        data.extend(encode_entry(Stream::Stderr, b"four", true, T + 4, 0));
        data.extend_from_slice(br#"{"log":"torn at the end"#);
        fs::write(&path, data).unwrap();
        let (out, err) = read(&path, &ReadOptions::default());
        assert_eq!(out, "one\npartialthree\n");
        assert_eq!(err, "two\nfour\n");
    }

    #[test]
    fn missing_log_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = read(&dir.path().join("none-json.log"), &ReadOptions::default());
        assert_eq!((out.as_str(), err.as_str()), ("", ""));
    }

    #[test]
    fn prefixes_entries_with_their_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut data = encode_entry(Stream::Stdout, b"hello", true, T, 123_456_789);
        data.extend(encode_entry(Stream::Stderr, b"oops", true, T + 1, 0));
        fs::write(&path, data).unwrap();
        let opts = ReadOptions {
            timestamps: true,
            ..Default::default()
        };
        let (out, err) = read(&path, &opts);
        assert_eq!(out, "2026-11-28T15:16:30.123456789Z hello\n");
        assert_eq!(err, "2026-11-28T15:16:31.000000000Z oops\n");
    }

    #[test]
    fn tails_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let lines = |r: std::ops::Range<i64>| -> Vec<(Stream, String, i64)> {
            r.map(|i| (Stream::Stdout, format!("{i}\n"), i)).collect()
        };
        let write = |p: &Path, r| {
            let l = lines(r);
            let l: Vec<_> = l.iter().map(|(s, t, i)| (*s, t.as_str(), *i)).collect();
            write_log(p, &l);
        };
        write(&rotated_path(&path, 2), 0..3);
        write(&rotated_path(&path, 1), 3..6);
        write(&path, 6..8);
        let tail = |n| {
            read(
                &path,
                &ReadOptions {
                    tail: Some(n),
                    ..Default::default()
                },
            )
            .0
        };
        assert_eq!(tail(1), "7\n");
        assert_eq!(tail(2), "6\n7\n");
        assert_eq!(tail(4), "4\n5\n6\n7\n");
        assert_eq!(tail(6), "2\n3\n4\n5\n6\n7\n");
        assert_eq!(tail(100), "0\n1\n2\n3\n4\n5\n6\n7\n");
        assert_eq!(tail(0), "");
        assert_eq!(read(&path, &ReadOptions::default()).0, tail(8));
        // Tail picks the last entries, then --since filters them (Docker).
        let opts = ReadOptions {
            tail: Some(4),
            since: Some((T + 6, 0)),
            ..Default::default()
        };
        assert_eq!(read(&path, &opts).0, "6\n7\n");
    }

    #[test]
    fn filters_by_since_and_until_inclusively() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut data = Vec::new();
        for (i, nanos) in [(0, 0), (1, 0), (1, 500), (2, 0), (3, 0)] {
            let log = format!("{i}.{nanos}");
            data.extend(encode_entry(
                Stream::Stdout,
                log.as_bytes(),
                true,
                T + i,
                nanos,
            ));
        }
        fs::write(&path, data).unwrap();
        let range = |since, until| {
            let opts = ReadOptions {
                since,
                until,
                ..Default::default()
            };
            read(&path, &opts).0
        };
        assert_eq!(range(Some((T + 1, 0)), None), "1.0\n1.500\n2.0\n3.0\n");
        assert_eq!(range(Some((T + 1, 1)), None), "1.500\n2.0\n3.0\n");
        assert_eq!(range(None, Some((T + 1, 500))), "0.0\n1.0\n1.500\n");
        assert_eq!(range(None, Some((T + 1, 499))), "0.0\n1.0\n");
        assert_eq!(
            range(Some((T + 1, 0)), Some((T + 2, 0))),
            "1.0\n1.500\n2.0\n"
        );
        assert_eq!(range(Some((T + 4, 0)), None), "");
    }

    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_closed_output_ends_reading_quietly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        write_log(&path, &[(Stream::Stdout, "one\n", 0)]);
        let opts = ReadOptions {
            follow: true,
            ..Default::default()
        };
        // Still running: only the closed output can end this.
        let r = read_logs(&path, &opts, &mut ClosedPipe, &mut Vec::new(), &mut || true);
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn follow_of_a_stopped_container_returns_after_existing_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        write_log(&path, &[(Stream::Stdout, "one\n", 0)]);
        let opts = ReadOptions {
            follow: true,
            ..Default::default()
        };
        assert_eq!(read(&path, &opts).0, "one\n");
    }

    #[test]
    fn follows_a_concurrent_writer_across_rotations_until_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        // Small files, enough of them that nothing is dropped: bursts of
        // lines rotate several times between two looks of the reader.
        let mut w = LogWriter::open(&path, Some(400), 100).unwrap();
        w.write(Stream::Stdout, b"before\n").unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let writer = {
            let running = Arc::clone(&running);
            std::thread::spawn(move || {
                for i in 0..200 {
                    let stream = if i % 3 == 2 {
                        Stream::Stderr
                    } else {
                        Stream::Stdout
                    };
                    w.write(stream, format!("line {i}\n").as_bytes()).unwrap();
                    if i % 25 == 0 {
                        std::thread::sleep(Duration::from_millis(30));
                    }
                }
                w.write(Stream::Stdout, b"no newline").unwrap();
                w.flush_partial().unwrap();
                running.store(false, Ordering::SeqCst);
            })
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let opts = ReadOptions {
            follow: true,
            ..Default::default()
        };
        read_logs(&path, &opts, &mut out, &mut err, &mut || {
            running.load(Ordering::SeqCst)
        })
        .unwrap();
        writer.join().unwrap();
        assert!(fs::metadata(rotated_path(&path, 5)).is_ok(), "it rotated");
        let mut expected_out = String::from("before\n");
        let mut expected_err = String::new();
        for i in 0..200 {
            let target = if i % 3 == 2 {
                &mut expected_err
            } else {
                &mut expected_out
            };
            target.push_str(&format!("line {i}\n"));
        }
        expected_out.push_str("no newline");
        assert_eq!(String::from_utf8(out).unwrap(), expected_out);
        assert_eq!(String::from_utf8(err).unwrap(), expected_err);
    }

    #[test]
    fn follow_with_tail_zero_reads_only_new_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, None, 1).unwrap();
        w.write(Stream::Stdout, b"old\n").unwrap();
        let mut calls = 0;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let opts = ReadOptions {
            follow: true,
            tail: Some(0),
            ..Default::default()
        };
        read_logs(&path, &opts, &mut out, &mut err, &mut || {
            calls += 1;
            if calls == 1 {
                w.write(Stream::Stdout, b"new\n").unwrap();
            }
            calls < 3
        })
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "new\n");
    }

    #[test]
    fn parses_time_args_as_docker() {
        let now = UNIX_EPOCH + Duration::new(T as u64, 700_000_000);
        let p = |s: &str| parse_time_arg(s, now).unwrap();
        // Durations: now minus them, to the second.
        assert_eq!(p("10m"), (T - 600, 0));
        assert_eq!(p("1h30m"), (T - 5400, 0));
        assert_eq!(p("1.5h"), (T - 5400, 0));
        assert_eq!(p("42s"), (T - 42, 0));
        assert_eq!(p("250ms"), (T, 0));
        assert_eq!(p("-1h"), (T + 3600, 0));
        // Unix timestamps.
        assert_eq!(p("0"), (0, 0));
        assert_eq!(p("1700000000"), (1_700_000_000, 0));
        assert_eq!(p("1700000000.123"), (1_700_000_000, 123_000_000));
        // RFC 3339 and its shorter forms.
        assert_eq!(p("2026-11-28"), (DAY, 0));
        assert_eq!(p("2026-11-28Z"), (DAY, 0));
        assert_eq!(p("2026-11-28+02:00"), (DAY - 7200, 0));
        assert_eq!(p("2026-11-28T15"), (DAY + 54_000, 0));
        assert_eq!(p("2026-11-28T15:16"), (DAY + 54_960, 0));
        assert_eq!(p("2026-11-28T15:16:30"), (T, 0));
        assert_eq!(p("2026-11-28T15:16:30Z"), (T, 0));
        assert_eq!(p("2026-11-28T15:16:30.5"), (T, 500_000_000));
        assert_eq!(p("2026-11-28T15:16:30.123456789Z"), (T, 123_456_789));
        assert_eq!(p("2026-11-28T16:16:30+01:00"), (T, 0));
        assert_eq!(p("2026-11-28T12:46:30.25-02:30"), (T, 250_000_000));
        assert_eq!(p("2024-02-29T00:00:00Z"), (1_709_164_800, 0));
    }

    #[test]
    fn rejects_bad_time_args_naming_them() {
        let now = UNIX_EPOCH + Duration::from_secs(T as u64);
        for (bad, says) in [
            ("yesterday", "failed to parse value as time or duration"),
            ("10x", "failed to parse value as time or duration"),
            ("", "failed to parse value as time or duration"),
            ("1700000000.", "failed to parse value as time or duration"),
            ("2026-13-01", "month out of range"),
            ("2026-02-29", "day out of range"),
            ("2026-11-28T25:00:00Z", "hour out of range"),
            ("2026-11-28T15:16:30Zjunk", "extra text"),
            ("2026-1-28", "expected the form 2006-01-02"),
        ] {
            match parse_time_arg(bad, now) {
                Err(EngineError::InvalidArgument(m)) => {
                    assert!(m.contains(&format!("{bad:?}")), "{m}");
                    assert!(m.contains(says), "{bad}: {m}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_log_opts_as_docker() {
        let p = |pairs: &[(&str, &str)]| parse_log_opts(&opts(pairs)).unwrap();
        assert_eq!(p(&[]), (None, 1));
        assert_eq!(p(&[("max-size", "10m")]), (Some(10_000_000), 1));
        assert_eq!(p(&[("max-size", "1k"), ("max-file", "3")]), (Some(1000), 3));
        assert_eq!(p(&[("max-size", "100")]).0, Some(100));
        assert_eq!(p(&[("max-size", "2KB")]).0, Some(2000));
        assert_eq!(p(&[("max-size", "1g")]).0, Some(1_000_000_000));
        assert_eq!(p(&[("max-size", "1.5Mb")]).0, Some(1_500_000));
        assert_eq!(p(&[("max-size", "3 kib")]).0, Some(3000));
        assert_eq!(p(&[("max-size", "7b")]).0, Some(7));
        assert_eq!(p(&[("compress", "false"), ("tag", "x")]), (None, 1));
    }

    #[test]
    fn rejects_bad_log_opts_with_dockers_messages() {
        for (pairs, msg) in [
            (
                &[("max-buffer-size", "1")][..],
                "unknown log opt 'max-buffer-size' for json-file log driver",
            ),
            (&[("max-file", "0")], "max-file cannot be less than 1"),
            (
                &[("max-file", "x")],
                "strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (&[("max-size", "0")], "max-size must be a positive number"),
            (&[("max-size", "abc")], "invalid size: 'abc'"),
            (&[("max-size", "-1k")], "invalid size: '-1k'"),
            (&[("max-size", "10q")], "invalid suffix: 'q'"),
            (&[("max-size", "10kbb")], "invalid suffix: 'kbb'"),
            (
                &[("compress", "true")],
                "compress cannot be true when max-file is less than 2 or max-size is not set",
            ),
            (&[("compress", "maybe")], "strconv.ParseBool"),
        ] {
            match parse_log_opts(&opts(pairs)) {
                Err(EngineError::InvalidArgument(m)) => assert!(m.contains(msg), "{m}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
        let supported = parse_log_opts(&opts(&[
            ("compress", "true"),
            ("max-size", "1m"),
            ("max-file", "2"),
        ]));
        assert!(
            matches!(supported, Err(EngineError::InvalidArgument(m)) if m.contains("not supported"))
        );
    }
}
