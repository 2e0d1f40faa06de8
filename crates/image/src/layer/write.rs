//! Writing layers: a directory (or an overlay upper directory) as a tar.
//!
//! Output is deterministic: children sorted by name bytes, a directory
//! before its content, whiteouts first within a directory; ustar headers
//! with PAX records where ustar falls short (long names and link targets,
//! large ids, times before 1970 or after 2242) and for xattrs
//! (`SCHILY.xattr.*`); times at second precision, no atime/ctime, no user
//! or group names (numeric ids only), as Docker and containerd write them.

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use sha2::{Digest, Sha256};

use super::fsx::{self, XTarget};
use super::{show, DiffStats, LayerError};

const BLOCK: usize = 512;
const COPY_BUF: usize = 1 << 20;

/// Tar a whole directory as one layer (a rootfs import). The directory
/// itself is not an entry; its content is, as found (no whiteout handling).
pub fn tar_dir(dir: &Path, out: impl Write) -> Result<DiffStats, LayerError> {
    write_tree(dir, out, false)
}

/// Diff an overlay upper directory into a layer: overlayfs whiteouts (0:0
/// char devices) become `.wh.NAME`, opaque directories (`trusted.overlay.
/// opaque=y` or `user.overlay.opaque=y`) get `.wh..wh..opq`, overlay's own
/// xattrs are left out.
pub fn diff_upper(upper: &Path, out: impl Write) -> Result<DiffStats, LayerError> {
    write_tree(upper, out, true)
}

fn write_tree(dir: &Path, out: impl Write, upper: bool) -> Result<DiffStats, LayerError> {
    let root = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::Target {
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    let mut w = TreeWriter {
        out: TarOut {
            out: BufWriter::with_capacity(COPY_BUF, out),
            hasher: Sha256::new(),
            size: 0,
        },
        upper,
        links: HashMap::new(),
        buf: vec![0u8; COPY_BUF],
    };
    let mut rel = Vec::new();
    w.dir(root.as_fd(), &mut rel)?;
    w.out.finish()
}

/// The tar stream being written, hashed and counted.
struct TarOut<W: Write> {
    out: BufWriter<W>,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> TarOut<W> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), LayerError> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.out.write_all(bytes).map_err(LayerError::Write)
    }

    fn pad(&mut self, len: u64) -> Result<(), LayerError> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.write(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<DiffStats, LayerError> {
        self.write(&[0u8; 2 * BLOCK])?;
        self.out.flush().map_err(LayerError::Write)?;
        Ok(DiffStats {
            diff_id: format!("sha256:{}", hex::encode(self.hasher.finalize())),
            size: self.size,
        })
    }

    /// Header (with a PAX header first when needed) for one entry.
    fn header(&mut self, e: &Entry<'_>) -> Result<(), LayerError> {
        let mut pax: Vec<u8> = Vec::new();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(e.kind);
        h.set_mode(e.mode & 0o7777);
        const MAX_ID: u64 = 0o7777777;
        if u64::from(e.uid) > MAX_ID {
            pax_record(&mut pax, b"uid", e.uid.to_string().as_bytes());
            h.set_uid(0);
        } else {
            h.set_uid(u64::from(e.uid));
        }
        if u64::from(e.gid) > MAX_ID {
            pax_record(&mut pax, b"gid", e.gid.to_string().as_bytes());
            h.set_gid(0);
        } else {
            h.set_gid(u64::from(e.gid));
        }
        const MAX_OCTAL11: i64 = 0o77777777777;
        if (0..=MAX_OCTAL11).contains(&e.mtime) {
            h.set_mtime(e.mtime as u64);
        } else {
            pax_record(&mut pax, b"mtime", e.mtime.to_string().as_bytes());
            h.set_mtime(0);
        }
        if e.size > MAX_OCTAL11 as u64 {
            pax_record(&mut pax, b"size", e.size.to_string().as_bytes());
            h.set_size(0);
        } else {
            h.set_size(e.size);
        }
        if let Some((major, minor)) = e.dev {
            h.set_device_major(major).map_err(LayerError::Write)?;
            h.set_device_minor(minor).map_err(LayerError::Write)?;
        }
        let Some(ustar) = h.as_ustar_mut() else {
            return Err(LayerError::Write(io::Error::other("not a ustar header")));
        };
        if !set_ustar_name(ustar, e.name) {
            pax_record(&mut pax, b"path", e.name);
            let cut = e.name.len().min(ustar.name.len());
            ustar.name[..cut].copy_from_slice(&e.name[..cut]);
        }
        if let Some(link) = e.link {
            let cut = link.len().min(ustar.linkname.len());
            ustar.linkname[..cut].copy_from_slice(&link[..cut]);
            if link.len() > ustar.linkname.len() {
                pax_record(&mut pax, b"linkpath", link);
            }
        }
        for (name, value) in e.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(name);
            pax_record(&mut pax, &key, value);
        }
        h.set_cksum();
        if !pax.is_empty() {
            let mut ph = tar::Header::new_ustar();
            ph.set_entry_type(tar::EntryType::XHeader);
            ph.set_mode(0o644);
            ph.set_size(pax.len() as u64);
            ph.set_mtime(0);
            if let Some(u) = ph.as_ustar_mut() {
                let name = pax_header_name(e.name);
                let cut = name.len().min(u.name.len());
                u.name[..cut].copy_from_slice(&name[..cut]);
            }
            ph.set_cksum();
            self.write(ph.as_bytes())?;
            self.write(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        self.write(h.as_bytes())
    }
}

/// `dir/PaxHeaders.0/base`, as Go's archive/tar names PAX headers.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let (dir, base) = match trimmed.iter().rposition(|b| *b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut out = dir.to_vec();
    out.extend_from_slice(b"PaxHeaders.0/");
    out.extend_from_slice(base);
    out
}

/// Store `name` in the ustar name (and prefix) fields; false if it cannot fit.
fn set_ustar_name(u: &mut tar::UstarHeader, name: &[u8]) -> bool {
    if name.len() <= u.name.len() {
        u.name[..name.len()].copy_from_slice(name);
        return true;
    }
    // Split at a '/' so the prefix fits 155 bytes and the rest 100.
    for (i, b) in name.iter().enumerate() {
        if *b != b'/' || i > u.prefix.len() {
            continue;
        }
        let rest = &name[i + 1..];
        if !rest.is_empty() && rest.len() <= u.name.len() {
            u.prefix[..i].copy_from_slice(&name[..i]);
            u.name[..rest.len()].copy_from_slice(rest);
            return true;
        }
    }
    false
}

/// `"%d %s=%s\n"`, the length counting itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while base + len.to_string().len() != len {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

struct Entry<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    size: u64,
    link: Option<&'a [u8]>,
    dev: Option<(u32, u32)>,
    xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

struct TreeWriter<W: Write> {
    out: TarOut<W>,
    upper: bool,
    /// First path seen for each (dev, ino) with more than one link.
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
}

fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

impl<W: Write> TreeWriter<W> {
    fn io<'a>(op: &'static str, rel: &'a [u8]) -> impl FnOnce(io::Error) -> LayerError + 'a {
        move |source| LayerError::Io {
            op,
            path: show(rel),
            source,
        }
    }

    fn xattrs(&self, t: XTarget<'_>, rel: &[u8]) -> Result<fsx::Xattrs, LayerError> {
        let mut x = fsx::list_xattrs(&t).map_err(Self::io("read xattrs of", rel))?;
        if self.upper {
            x.retain(|(n, _)| !is_overlay_xattr(n));
        }
        Ok(x)
    }

    /// Write the children of `dir` (whose tar path is `rel`, empty or
    /// ending in '/').
    fn dir(&mut self, dir: BorrowedFd<'_>, rel: &mut Vec<u8>) -> Result<(), LayerError> {
        let mut names = fsx::list_dir(dir).map_err(Self::io("list", rel))?;
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let base = rel.len();
        let mut children = Vec::with_capacity(names.len());
        for (name, _) in names {
            let st = rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW).map_err(
                |e| {
                    rel.extend_from_slice(&name);
                    Self::io("stat", rel)(e.into())
                },
            )?;
            children.push((name, st));
        }
        if self.upper {
            // Whiteouts first.
            for (name, st) in &children {
                if FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
                    && st.st_rdev == 0
                {
                    rel.truncate(base);
                    rel.extend_from_slice(b".wh.");
                    rel.extend_from_slice(name);
                    self.out.header(&Entry {
                        name: rel,
                        kind: tar::EntryType::Regular,
                        mode: 0o600,
                        uid: st.st_uid,
                        gid: st.st_gid,
                        mtime: st.st_mtime,
                        size: 0,
                        link: None,
                        dev: None,
                        xattrs: &[],
                    })?;
                }
            }
        }
        for (name, st) in &children {
            rel.truncate(base);
            rel.extend_from_slice(name);
            let ft = FileType::from_raw_mode(st.st_mode);
            let mut e = Entry {
                name: &[],
                kind: tar::EntryType::Regular,
                mode: st.st_mode & 0o7777,
                uid: st.st_uid,
                gid: st.st_gid,
                mtime: st.st_mtime,
                size: 0,
                link: None,
                dev: None,
                xattrs: &[],
            };
            if ft != FileType::Directory && st.st_nlink > 1 {
                let key = (st.st_dev, st.st_ino);
                if let Some(first) = self.links.get(&key) {
                    let first = first.clone();
                    e.kind = tar::EntryType::Link;
                    e.link = Some(&first);
                    e.name = rel;
                    self.out.header(&e)?;
                    continue;
                }
                self.links.insert(key, rel.clone());
            }
            match ft {
                FileType::Directory => {
                    let child = fsx::open_dir_nofollow(dir, name).map_err(Self::io("open", rel))?;
                    let xattrs = self.xattrs(XTarget::Fd(child.as_fd()), rel)?;
                    let opaque = self.upper
                        && xattrs_raw_opaque(child.as_fd())
                            .map_err(Self::io("read xattrs of", rel))?;
                    rel.push(b'/');
                    e.kind = tar::EntryType::Directory;
                    e.name = rel;
                    e.xattrs = &xattrs;
                    self.out.header(&e)?;
                    if opaque {
                        let dir_len = rel.len();
                        rel.extend_from_slice(b".wh..wh..opq");
                        self.out.header(&Entry {
                            name: rel,
                            kind: tar::EntryType::Regular,
                            mode: st.st_mode & 0o777,
                            uid: st.st_uid,
                            gid: st.st_gid,
                            mtime: st.st_mtime,
                            size: 0,
                            link: None,
                            dev: None,
                            xattrs: &[],
                        })?;
                        rel.truncate(dir_len);
                    }
                    self.dir(child.as_fd(), rel)?;
                }
                FileType::RegularFile => {
                    let fd = rustix::fs::openat(
                        dir,
                        name.as_slice(),
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOATIME,
                        Mode::empty(),
                    )
                    .or_else(|e| {
                        if e == rustix::io::Errno::PERM {
                            // O_NOATIME needs ownership or CAP_FOWNER.
                            rustix::fs::openat(
                                dir,
                                name.as_slice(),
                                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                                Mode::empty(),
                            )
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| Self::io("open", rel)(e.into()))?;
                    let xattrs = self.xattrs(XTarget::Fd(fd.as_fd()), rel)?;
                    let size = st.st_size as u64;
                    e.size = size;
                    e.name = rel;
                    e.xattrs = &xattrs;
                    self.out.header(&e)?;
                    self.copy(fd, size, rel)?;
                }
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(dir, name.as_slice(), Vec::new())
                        .map_err(|e| Self::io("read link", rel)(e.into()))?;
                    let p = fsx::proc_path(dir, name);
                    let xattrs = self.xattrs(XTarget::Path(&p), rel)?;
                    e.kind = tar::EntryType::Symlink;
                    e.link = Some(target.as_bytes());
                    e.name = rel;
                    e.xattrs = &xattrs;
                    self.out.header(&e)?;
                }
                FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                    if self.upper && ft == FileType::CharacterDevice && st.st_rdev == 0 {
                        continue; // a whiteout, written above
                    }
                    let p = fsx::proc_path(dir, name);
                    let xattrs = self.xattrs(XTarget::Path(&p), rel)?;
                    e.kind = match ft {
                        FileType::CharacterDevice => tar::EntryType::Char,
                        FileType::BlockDevice => tar::EntryType::Block,
                        _ => tar::EntryType::Fifo,
                    };
                    if ft != FileType::Fifo {
                        e.dev =
                            Some((rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)));
                    } else {
                        e.dev = Some((0, 0));
                    }
                    e.name = rel;
                    e.xattrs = &xattrs;
                    self.out.header(&e)?;
                }
                // Sockets are not archived (as Docker does).
                _ => {}
            }
        }
        rel.truncate(base);
        Ok(())
    }

    /// Exactly `size` bytes of a file, then padding.
    fn copy(&mut self, fd: OwnedFd, size: u64, rel: &[u8]) -> Result<(), LayerError> {
        let mut file = std::fs::File::from(fd);
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(LayerError::Changed {
                        path: show(rel),
                        expected: size,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Self::io("read", rel)(e)),
            };
            self.out.write(&self.buf[..n])?;
            left -= n as u64;
        }
        self.out.pad(size)
    }
}

/// Whether a directory of an overlay upper is opaque.
fn xattrs_raw_opaque(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let mut v = [0u8; 8];
    for name in [&b"trusted.overlay.opaque"[..], b"user.overlay.opaque"] {
        match rustix::fs::fgetxattr(dir, name, &mut v) {
            Ok(n) if &v[..n] == b"y" => return Ok(true),
            Ok(_) => {}
            Err(rustix::io::Errno::NODATA)
            | Err(rustix::io::Errno::OPNOTSUPP)
            | Err(rustix::io::Errno::RANGE) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}
