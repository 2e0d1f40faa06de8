//! Unpacking an untrusted layer into a directory.
//!
//! Safety model: the target directory is opened once; every parent of an
//! entry is resolved from it with `openat2(RESOLVE_IN_ROOT)`, so `..` and
//! symlinks (absolute or relative, from lower layers or this one) are
//! clamped to the target like a chroot; the last component is always
//! created or removed with `*at` calls that do not follow it. Entry names
//! with `..` are refused outright, leading `/` are stripped (containerd's
//! behaviour). Hardlink targets resolve the same way, so a link to
//! `/etc/shadow` names `<target>/etc/shadow`.

use std::cell::Cell;
use std::collections::HashSet;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::Timespec;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use super::fsx::{self, XTarget};
use super::{decompress_any, show, ApplyOptions, ApplyStats, LayerError, WhiteoutMode};

const WH_PREFIX: &[u8] = b".wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";
/// Headers, PAX records and GNU long names describing one entry may not
/// exceed this (they are held in memory by the tar reader).
const MAX_ENTRY_METADATA: u64 = 1 << 20;
const COPY_BUF: usize = 1 << 20;

/// Shared between the apply loop and the hashing reader: while the tar
/// reader looks for the next entry, the bytes it reads are metadata and are
/// capped.
struct Meter {
    meta_left: Cell<Option<u64>>,
}

/// Hashes (and meters) exactly the bytes the tar reader consumes.
struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    meter: Rc<Meter>,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(left) = self.meter.meta_left.get() {
            let left = left.checked_sub(n as u64).ok_or_else(|| {
                io::Error::other(format!(
                    "tar headers (PAX records, long names) or trailing data exceed {MAX_ENTRY_METADATA} bytes"
                ))
            })?;
            self.meter.meta_left.set(Some(left));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Apply a layer (gzip, zstd or plain tar, detected by magic) to `target`.
pub fn apply(
    reader: impl Read,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    let (compression, source) = decompress_any(reader)?;
    let meter = Rc::new(Meter {
        meta_left: Cell::new(None),
    });
    let hashed = HashReader {
        inner: BufReader::with_capacity(256 << 10, source),
        hasher: Sha256::new(),
        meter: meter.clone(),
    };
    let root = rustix::fs::open(
        target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::Target {
        path: target.to_path_buf(),
        source: e.into(),
    })?;
    let mut ap = Applier {
        root,
        opts,
        cache: None,
        unpacked: HashSet::new(),
        dir_fixups: Vec::new(),
        entries: 0,
        bytes: 0,
        buf: vec![0u8; COPY_BUF],
        last: Vec::new(),
        umask: current_umask(),
    };
    let mut archive = tar::Archive::new(hashed);
    {
        let mut entries = archive.entries().map_err(|source| LayerError::Read {
            context: "at the start of the tar".into(),
            source,
        })?;
        loop {
            meter.meta_left.set(Some(MAX_ENTRY_METADATA + 512));
            let next = entries.next();
            meter.meta_left.set(None);
            match next {
                None => break,
                Some(Err(source)) => {
                    return Err(LayerError::Read {
                        context: ap.context(),
                        source,
                    });
                }
                Some(Ok(entry)) => ap.entry(entry)?,
            }
        }
    }
    // Drain what follows the end-of-archive blocks (padding to a record
    // size) so it is part of the digest, as it is of the blob.
    let mut inner = archive.into_inner();
    let remaining = opts.max_total_bytes.saturating_sub(ap.bytes);
    meter.meta_left.set(Some(remaining.max(MAX_ENTRY_METADATA)));
    io::copy(&mut inner, &mut io::sink()).map_err(|source| LayerError::Read {
        context: "after the end of the tar".into(),
        source,
    })?;
    ap.finish()?;
    Ok(ApplyStats {
        entries: ap.entries,
        bytes: ap.bytes,
        diff_id: format!("sha256:{}", hex::encode(inner.hasher.finalize())),
        compression,
    })
}

/// A directory whose mtime (and, unprivileged, mode) is set at the end.
struct DirFixup {
    rel: Vec<u8>,
    times: Timestamps,
    mode: Option<u32>,
}

struct Applier<'o> {
    root: OwnedFd,
    opts: &'o ApplyOptions,
    /// The last parent directory resolved: (relative path, O_PATH fd).
    cache: Option<(Vec<u8>, OwnedFd)>,
    /// Paths created by this layer (an opaque whiteout keeps them).
    unpacked: HashSet<Vec<u8>>,
    dir_fixups: Vec<DirFixup>,
    entries: u64,
    bytes: u64,
    buf: Vec<u8>,
    /// The last entry's path, for messages.
    last: Vec<u8>,
    /// The process umask (files are created with their mode, which the
    /// umask may narrow; only then, or for special bits, is chmod needed).
    umask: u32,
}

/// The umask, read without changing it (Linux 4.7+ lists it in
/// /proc/self/status); when unknown, assume it narrows everything.
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o777)
}

/// An entry's path split into parent and name, cleaned.
struct EntryPath {
    rel: Vec<u8>,
    /// Index of the name in `rel` (0 when at the top).
    name_at: usize,
}

impl EntryPath {
    fn parent(&self) -> &[u8] {
        &self.rel[..self.name_at.saturating_sub(1)]
    }
    fn name(&self) -> &[u8] {
        &self.rel[self.name_at..]
    }
}

/// Clean a tar path: drop leading `/`, `.` and empty components; refuse `..`.
fn clean(raw: &[u8]) -> Result<EntryPath, &'static str> {
    let mut rel = Vec::with_capacity(raw.len());
    let mut name_at = 0;
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return Err("contains a '..' component"),
            _ => {
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                name_at = rel.len();
                rel.extend_from_slice(comp);
            }
        }
    }
    Ok(EntryPath { rel, name_at })
}

fn errno_is(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

/// PAX time: `[-]SECONDS[.FRACTION]`.
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, c) in frac.bytes().take(9).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        nanos += i64::from(c - b'0') * 10i64.pow(8 - i as u32);
    }
    let (tv_sec, tv_nsec) = if neg {
        if nanos > 0 {
            (-secs - 1, 1_000_000_000 - nanos)
        } else {
            (-secs, 0)
        }
    } else {
        (secs, nanos)
    };
    Some(Timespec { tv_sec, tv_nsec })
}

/// Metadata of one entry.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    times: Timestamps,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<'o> Applier<'o> {
    fn context(&self) -> String {
        if self.last.is_empty() {
            "at the start of the tar".into()
        } else {
            format!("after entry '{}'", show(&self.last))
        }
    }

    fn io_err<'a>(op: &'static str, path: &'a [u8]) -> impl FnOnce(io::Error) -> LayerError + 'a {
        move |source| LayerError::Io {
            op,
            path: show(path),
            source,
        }
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), LayerError> {
        let raw = entry.path_bytes().into_owned();
        self.last.clone_from(&raw);
        self.entries += 1;
        if self.entries > self.opts.max_entries {
            return Err(LayerError::TooManyEntries {
                limit: self.opts.max_entries,
            });
        }
        let size = entry.size();
        let remaining = self.opts.max_total_bytes.saturating_sub(self.bytes);
        if size > remaining {
            return Err(LayerError::TooLarge {
                path: show(&raw),
                size,
                remaining,
                limit: self.opts.max_total_bytes,
            });
        }
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return self.drain(&mut entry, &raw);
        }
        let path = clean(&raw).map_err(|reason| LayerError::UnsafePath {
            path: show(&raw),
            reason,
        })?;

        // Whiteouts.
        if let Some(target) = path.name().strip_prefix(WH_PREFIX) {
            self.drain(&mut entry, &raw)?;
            if path.name() == WH_OPAQUE {
                return self.opaque(&path, &raw);
            }
            if target.starts_with(WH_PREFIX) {
                // Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): ignored,
                // as Docker does.
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." {
                return Err(LayerError::Whiteout {
                    path: show(&raw),
                    reason: "names no file to delete",
                });
            }
            return self.whiteout(&path, target, &raw);
        }

        let meta = self.meta(&mut entry, &raw)?;
        let is_dir =
            kind.is_dir() || ((kind.is_file() || kind.is_contiguous()) && raw.ends_with(b"/"));
        if path.rel.is_empty() {
            // The root itself ("./"): only its attributes.
            if !is_dir {
                return Err(LayerError::UnsafePath {
                    path: show(&raw),
                    reason: "the root of the layer must be a directory",
                });
            }
            self.drain(&mut entry, &raw)?;
            let root = self.root.try_clone().map_err(Self::io_err("open", &raw))?;
            self.set_dir_meta(root.as_fd(), &path, &meta, &raw)?;
            return Ok(());
        }
        let (key, parent_fd) = self.parent(&path, true, &raw)?;
        self.unpack(&mut entry, &path, parent_fd.as_fd(), &meta, size, &raw)?;
        // Entries only change names inside their parent: the parent stays valid.
        self.keep_parent(key, parent_fd);
        self.unpacked.insert(path.rel);
        Ok(())
    }

    fn unpack<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &EntryPath,
        parent: BorrowedFd<'_>,
        meta: &Meta,
        size: u64,
        raw: &[u8],
    ) -> Result<(), LayerError> {
        let kind = entry.header().entry_type();
        let is_dir =
            kind.is_dir() || ((kind.is_file() || kind.is_contiguous()) && raw.ends_with(b"/"));
        let name = path.name().to_vec();
        let header = entry.header();
        if is_dir {
            self.drain(entry, raw)?;
            self.mkdir(parent, &name, path, meta, raw)?;
        } else if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
            self.file(parent, &name, entry, size, meta, raw)?;
        } else if kind.is_symlink() {
            let target = entry.link_name_bytes().map(|t| t.into_owned());
            let target = target.unwrap_or_default();
            self.drain(entry, raw)?;
            self.create_replacing(parent, &name, raw, |p, n| {
                rustix::fs::symlinkat(fsx::os(&target), p, n)
            })?;
            self.set_meta_nofollow(parent, &name, meta, raw)?;
        } else if kind.is_hard_link() {
            let target = entry.link_name_bytes().map(|t| t.into_owned());
            let target = target.unwrap_or_default();
            self.drain(entry, raw)?;
            self.hardlink(parent, &name, &target, raw)?;
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let ft = if kind.is_fifo() {
                FileType::Fifo
            } else if self.opts.unprivileged {
                if self.opts.skip_devices {
                    return self.drain(entry, raw);
                }
                return Err(LayerError::DeviceNotAllowed { path: show(raw) });
            } else if kind.is_character_special() {
                FileType::CharacterDevice
            } else {
                FileType::BlockDevice
            };
            let major = header
                .device_major()
                .map_err(|source| LayerError::Header {
                    path: show(raw),
                    source,
                })?
                .unwrap_or(0);
            let minor = header
                .device_minor()
                .map_err(|source| LayerError::Header {
                    path: show(raw),
                    source,
                })?
                .unwrap_or(0);
            self.drain(entry, raw)?;
            let dev = rustix::fs::makedev(major, minor);
            self.create_replacing(parent, &name, raw, |p, n| {
                rustix::fs::mknodat(p, n, ft, Mode::from_raw_mode(0o600), dev)
            })?;
            self.set_meta_nofollow(parent, &name, meta, raw)?;
        } else {
            return Err(LayerError::Unsupported {
                path: show(raw),
                kind: char::from(kind.as_byte()),
            });
        }
        Ok(())
    }

    /// Read (and count) whatever data an entry carries that is not unpacked.
    fn drain<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
    ) -> Result<(), LayerError> {
        if entry.size() == 0 {
            return Ok(());
        }
        let n = io::copy(entry, &mut io::sink()).map_err(|source| LayerError::Read {
            context: format!("in entry '{}'", show(raw)),
            source,
        })?;
        self.bytes += n;
        Ok(())
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<Meta, LayerError> {
        let bad = |source| LayerError::Header {
            path: show(raw),
            source,
        };
        let h = entry.header();
        let mode = h.mode().map_err(bad)? & 0o7777;
        let uid = u32::try_from(h.uid().map_err(bad)?).map_err(|_| LayerError::Header {
            path: show(raw),
            source: io::Error::other("uid out of range"),
        })?;
        let gid = u32::try_from(h.gid().map_err(bad)?).map_err(|_| LayerError::Header {
            path: show(raw),
            source: io::Error::other("gid out of range"),
        })?;
        let header_mtime = h.mtime().map_err(bad)?;
        let mut mtime = Timespec {
            tv_sec: i64::try_from(header_mtime).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let mut atime = None;
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions().map_err(bad)? {
            for ext in exts {
                let ext = ext.map_err(bad)?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                } else if key == b"mtime" {
                    mtime =
                        parse_pax_time(ext.value_bytes()).ok_or_else(|| LayerError::Header {
                            path: show(raw),
                            source: io::Error::other("bad PAX mtime"),
                        })?;
                } else if key == b"atime" {
                    atime = parse_pax_time(ext.value_bytes());
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            times: Timestamps {
                last_access: atime.unwrap_or(mtime),
                last_modification: mtime,
            },
            xattrs,
        })
    }

    /// The parent directory of an entry, resolved inside the root (created
    /// with mode 0755 when missing and `create`).
    /// Taken out of the cache; give it back with [`Self::keep_parent`] when
    /// nothing that could contain it was removed meanwhile.
    fn parent(
        &mut self,
        path: &EntryPath,
        create: bool,
        raw: &[u8],
    ) -> Result<(Vec<u8>, OwnedFd), LayerError> {
        let parent = path.parent();
        if let Some((cached, fd)) = self.cache.take() {
            if cached == parent {
                return Ok((cached, fd));
            }
        }
        let fd = self.resolve_dir(parent, create, raw)?;
        Ok((parent.to_vec(), fd))
    }

    fn keep_parent(&mut self, key: Vec<u8>, fd: OwnedFd) {
        self.cache = Some((key, fd));
    }

    fn open_in_root(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
        Ok(rustix::fs::openat2(
            &self.root,
            rel,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )?)
    }

    fn resolve_dir(&mut self, rel: &[u8], create: bool, raw: &[u8]) -> Result<OwnedFd, LayerError> {
        let not_dir = |parent: &[u8]| LayerError::NotADirectory {
            path: show(raw),
            parent: show(parent),
        };
        match self.open_in_root(rel) {
            Ok(fd) => return Ok(fd),
            Err(e) if errno_is(&e, Errno::NOENT) && create => {}
            Err(e) if errno_is(&e, Errno::NOTDIR) => return Err(not_dir(rel)),
            Err(source) => {
                return Err(LayerError::Io {
                    op: "resolve the parent directory of",
                    path: show(raw),
                    source,
                });
            }
        }
        // Create the missing components one by one.
        let mut cur = self
            .open_in_root(b"")
            .map_err(Self::io_err("open the root for", raw))?;
        let mut end = 0;
        for comp in rel.split(|b| *b == b'/') {
            let prefix_end = if end == 0 {
                comp.len()
            } else {
                end + 1 + comp.len()
            };
            let prefix = &rel[..prefix_end];
            end = prefix_end;
            cur = match self.open_in_root(prefix) {
                Ok(fd) => fd,
                Err(e) if errno_is(&e, Errno::NOENT) => {
                    match rustix::fs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(Self::io_err("create the parent directory of", raw)(
                                e.into(),
                            ))
                        }
                    }
                    self.unpacked.insert(prefix.to_vec());
                    match rustix::fs::openat(
                        &cur,
                        comp,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    ) {
                        Ok(fd) => fd,
                        Err(Errno::NOTDIR) | Err(Errno::LOOP) => return Err(not_dir(prefix)),
                        Err(e) => {
                            return Err(Self::io_err("open the parent directory of", raw)(e.into()))
                        }
                    }
                }
                Err(e) if errno_is(&e, Errno::NOTDIR) => return Err(not_dir(prefix)),
                Err(e) => return Err(Self::io_err("resolve the parent directory of", raw)(e)),
            };
        }
        Ok(cur)
    }

    /// Remove whatever is at `parent/name` (recursively), forgetting cached
    /// parents that might have been under it.
    fn remove(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        raw: &[u8],
    ) -> Result<(), LayerError> {
        self.cache = None;
        fsx::remove_all_at(parent, name).map_err(Self::io_err("remove the existing file for", raw))
    }

    /// Create with `create`; when the name exists, remove it and retry once.
    fn create_replacing<T>(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        raw: &[u8],
        create: impl Fn(BorrowedFd<'_>, &[u8]) -> Result<T, Errno>,
    ) -> Result<T, LayerError> {
        match create(parent, name) {
            Ok(t) => Ok(t),
            Err(Errno::EXIST) => {
                self.remove(parent, name, raw)?;
                create(parent, name).map_err(|e| Self::io_err("create", raw)(e.into()))
            }
            Err(e) => Err(Self::io_err("create", raw)(e.into())),
        }
    }

    fn file<R: Read>(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        entry: &mut tar::Entry<'_, R>,
        size: u64,
        meta: &Meta,
        raw: &[u8],
    ) -> Result<(), LayerError> {
        let fd = self.create_replacing(parent, name, raw, |p, n| {
            rustix::fs::openat(
                p,
                n,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(meta.mode & 0o777),
            )
        })?;
        let mut file = std::fs::File::from(fd);
        let mut written = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(LayerError::Read {
                        context: format!("in entry '{}'", show(raw)),
                        source,
                    });
                }
            };
            file.write_all(&self.buf[..n])
                .map_err(Self::io_err("write", raw))?;
            written += n as u64;
        }
        self.bytes += written;
        if written != size {
            return Err(LayerError::Read {
                context: format!("in entry '{}'", show(raw)),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("truncated: {written} of {size} bytes"),
                ),
            });
        }
        let fd = file.as_fd();
        self.chown_fd(fd, meta, raw)?;
        // Created with its permission bits already: chmod only for special
        // bits (chown clears setuid/setgid) or bits the umask took away.
        if meta.mode & 0o7000 != 0 || meta.mode & 0o777 & self.umask != 0 {
            rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
                .map_err(|e| Self::io_err("chmod", raw)(e.into()))?;
        }
        self.set_xattrs(&XTarget::Fd(fd), meta, raw)?;
        rustix::fs::futimens(fd, &meta.times)
            .map_err(|e| Self::io_err("set times of", raw)(e.into()))
    }

    fn mkdir(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &EntryPath,
        meta: &Meta,
        raw: &[u8],
    ) -> Result<(), LayerError> {
        let mut over_whiteout = false;
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| Self::io_err("stat", raw)(e.into()))?;
                let ft = FileType::from_raw_mode(st.st_mode);
                if ft != FileType::Directory {
                    over_whiteout = ft == FileType::CharacterDevice && st.st_rdev == 0;
                    self.remove(parent, name, raw)?;
                    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| Self::io_err("create directory", raw)(e.into()))?;
                }
            }
            Err(e) => return Err(Self::io_err("create directory", raw)(e.into())),
        }
        let dir =
            fsx::open_dir_nofollow(parent, name).map_err(Self::io_err("open directory", raw))?;
        if over_whiteout && self.opts.whiteouts == WhiteoutMode::OverlayFs {
            // Deleted and recreated in this layer: hide the lower content.
            self.set_opaque(dir.as_fd(), raw)?;
        }
        self.set_dir_meta(dir.as_fd(), path, meta, raw)
    }

    fn set_dir_meta(
        &mut self,
        dir: BorrowedFd<'_>,
        path: &EntryPath,
        meta: &Meta,
        raw: &[u8],
    ) -> Result<(), LayerError> {
        self.chown_fd(dir, meta, raw)?;
        // Unprivileged, a read-only directory would stop us from filling it:
        // keep it writable until the end.
        let (now, later) = if self.opts.unprivileged && meta.mode & 0o700 != 0o700 {
            (meta.mode | 0o700, Some(meta.mode))
        } else {
            (meta.mode, None)
        };
        rustix::fs::fchmod(dir, Mode::from_raw_mode(now))
            .map_err(|e| Self::io_err("chmod", raw)(e.into()))?;
        self.set_xattrs(&XTarget::Fd(dir), meta, raw)?;
        self.dir_fixups.push(DirFixup {
            rel: path.rel.clone(),
            times: Timestamps {
                last_access: meta.times.last_access,
                last_modification: meta.times.last_modification,
            },
            mode: later,
        });
        Ok(())
    }

    fn chown_fd(&self, fd: BorrowedFd<'_>, meta: &Meta, raw: &[u8]) -> Result<(), LayerError> {
        if self.opts.unprivileged {
            return Ok(());
        }
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(meta.uid)),
            Some(rustix::fs::Gid::from_raw(meta.gid)),
        )
        .map_err(|e| Self::io_err("chown", raw)(e.into()))
    }

    /// Owner, mode, xattrs and times of a symlink, device or fifo.
    fn set_meta_nofollow(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
        raw: &[u8],
    ) -> Result<(), LayerError> {
        let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Self::io_err("stat", raw)(e.into()))?;
        let is_link = FileType::from_raw_mode(st.st_mode) == FileType::Symlink;
        if !self.opts.unprivileged {
            rustix::fs::chownat(
                parent,
                name,
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| Self::io_err("chown", raw)(e.into()))?;
        }
        if !is_link {
            // The name was just created by us as a device or fifo; chmod
            // cannot follow it anywhere.
            rustix::fs::chmodat(
                parent,
                name,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(|e| Self::io_err("chmod", raw)(e.into()))?;
        }
        if !meta.xattrs.is_empty() {
            let p = fsx::proc_path(parent, name);
            self.set_xattrs(&XTarget::Path(&p), meta, raw)?;
        }
        rustix::fs::utimensat(parent, name, &meta.times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Self::io_err("set times of", raw)(e.into()))
    }

    fn set_xattrs(&self, t: &XTarget<'_>, meta: &Meta, raw: &[u8]) -> Result<(), LayerError> {
        for (name, value) in &meta.xattrs {
            if let Err(e) = fsx::set_xattr(t, name, value) {
                let tolerated = errno_is(&e, Errno::PERM)
                    || errno_is(&e, Errno::OPNOTSUPP)
                    || errno_is(&e, Errno::NOTSUP)
                    || errno_is(&e, Errno::ACCESS);
                if tolerated && (self.opts.unprivileged || self.opts.best_effort_xattrs) {
                    continue;
                }
                return Err(LayerError::Io {
                    op: "set xattr",
                    path: format!("{}' ('{}')", show(raw), show(name)),
                    source: e,
                });
            }
        }
        Ok(())
    }

    fn hardlink(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        target: &[u8],
        raw: &[u8],
    ) -> Result<(), LayerError> {
        let refuse = |reason: String| LayerError::Hardlink {
            path: show(raw),
            target: show(target),
            reason,
        };
        let tpath = clean(target).map_err(|r| refuse(r.to_string()))?;
        if tpath.rel.is_empty() {
            return Err(refuse("names the root".into()));
        }
        let tparent = match self.resolve_dir(tpath.parent(), false, raw) {
            Ok(fd) => fd,
            Err(LayerError::Io { source, .. }) if errno_is(&source, Errno::NOENT) => {
                return Err(refuse("not found in the target".into()));
            }
            Err(e) => return Err(e),
        };
        let tname = tpath.name().to_vec();
        let link = |p: BorrowedFd<'_>, n: &[u8]| {
            rustix::fs::linkat(&tparent, tname.as_slice(), p, n, AtFlags::empty())
        };
        match link(parent, name) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                if tpath.rel == clean(raw).map(|p| p.rel).unwrap_or_default() {
                    return Ok(()); // a link to itself
                }
                self.remove(parent, name, raw)?;
                link(parent, name).map_err(|e| refuse(io::Error::from(e).to_string()))
            }
            Err(Errno::NOENT) => Err(refuse("not found in the target".into())),
            Err(e) => Err(refuse(io::Error::from(e).to_string())),
        }
    }

    fn whiteout(&mut self, path: &EntryPath, target: &[u8], raw: &[u8]) -> Result<(), LayerError> {
        let mut victim = path.parent().to_vec();
        if !victim.is_empty() {
            victim.push(b'/');
        }
        victim.extend_from_slice(target);
        if self.unpacked.contains(&victim) {
            // Whiteouts only hide lower layers.
            return Ok(());
        }
        match self.opts.whiteouts {
            WhiteoutMode::Apply => {
                let parent = match self.resolve_dir(path.parent(), false, raw) {
                    Ok(fd) => fd,
                    // Nothing below to delete.
                    Err(LayerError::Io { source, .. }) if errno_is(&source, Errno::NOENT) => {
                        return Ok(())
                    }
                    Err(LayerError::NotADirectory { .. }) => return Ok(()),
                    Err(e) => return Err(e),
                };
                self.remove(parent.as_fd(), target, raw)
            }
            WhiteoutMode::OverlayFs => {
                let (_, parent) = self.parent(path, true, raw)?;
                let parent = parent.as_fd();
                self.create_replacing(parent, target, raw, |p, n| {
                    rustix::fs::mknodat(
                        p,
                        n,
                        FileType::CharacterDevice,
                        Mode::empty(),
                        rustix::fs::makedev(0, 0),
                    )
                })
            }
        }
    }

    fn set_opaque(&self, dir: BorrowedFd<'_>, raw: &[u8]) -> Result<(), LayerError> {
        let name: &[u8] = if self.opts.unprivileged {
            b"user.overlay.opaque"
        } else {
            b"trusted.overlay.opaque"
        };
        fsx::set_xattr(&XTarget::Fd(dir), name, b"y")
            .map_err(Self::io_err("set the overlay opaque xattr for", raw))
    }

    fn opaque(&mut self, path: &EntryPath, raw: &[u8]) -> Result<(), LayerError> {
        let dir_rel = path.parent().to_vec();
        let dir = match self.opts.whiteouts {
            WhiteoutMode::Apply => match self.resolve_dir(&dir_rel, false, raw) {
                Ok(fd) => fd,
                Err(LayerError::Io { source, .. }) if errno_is(&source, Errno::NOENT) => {
                    return Ok(())
                }
                Err(e) => return Err(e),
            },
            WhiteoutMode::OverlayFs => self.resolve_dir(&dir_rel, true, raw)?,
        };
        // O_PATH fds cannot list or carry xattrs: reopen the directory.
        let dir = rustix::fs::openat(
            &dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Self::io_err("open directory", raw)(e.into()))?;
        match self.opts.whiteouts {
            WhiteoutMode::OverlayFs => self.set_opaque(dir.as_fd(), raw),
            WhiteoutMode::Apply => {
                self.cache = None;
                let mut rel = dir_rel;
                self.clear_lower(dir.as_fd(), &mut rel)
                    .map_err(Self::io_err("remove the lower content for", raw))
            }
        }
    }

    /// Remove what is under `dir` and was not unpacked by this layer.
    fn clear_lower(&self, dir: BorrowedFd<'_>, rel: &mut Vec<u8>) -> io::Result<()> {
        let base = rel.len();
        for (name, ft) in fsx::list_dir(dir)? {
            rel.truncate(base);
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&name);
            if !self.unpacked.contains(rel.as_slice()) {
                fsx::remove_all_at(dir, &name)?;
            } else if ft == FileType::Directory || ft == FileType::Unknown {
                match fsx::open_dir_nofollow(dir, &name) {
                    Ok(child) => self.clear_lower(child.as_fd(), rel)?,
                    Err(e) if errno_is(&e, Errno::NOTDIR) || errno_is(&e, Errno::LOOP) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        rel.truncate(base);
        Ok(())
    }

    /// Directory times (and deferred modes), after all their content.
    fn finish(&mut self) -> Result<(), LayerError> {
        let fixups = std::mem::take(&mut self.dir_fixups);
        for fix in fixups.iter().rev() {
            let raw = fix.rel.as_slice();
            if raw.is_empty() {
                if let Some(mode) = fix.mode {
                    rustix::fs::fchmod(&self.root, Mode::from_raw_mode(mode))
                        .map_err(|e| Self::io_err("chmod", raw)(e.into()))?;
                }
                rustix::fs::futimens(&self.root, &fix.times)
                    .map_err(|e| Self::io_err("set times of", raw)(e.into()))?;
                continue;
            }
            let path = match clean(raw) {
                Ok(p) => p,
                Err(_) => continue,
            };
            let (key, parent) = match self.parent(&path, false, raw) {
                Ok(p) => p,
                Err(_) => continue, // removed later in the layer
            };
            let name = path.name();
            match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                _ => continue,
            }
            if let Some(mode) = fix.mode {
                rustix::fs::chmodat(&parent, name, Mode::from_raw_mode(mode), AtFlags::empty())
                    .map_err(|e| Self::io_err("chmod", raw)(e.into()))?;
            }
            rustix::fs::utimensat(&parent, name, &fix.times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| Self::io_err("set times of", raw)(e.into()))?;
            self.keep_parent(key, parent);
        }
        Ok(())
    }
}
