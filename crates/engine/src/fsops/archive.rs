//! The archive of one resolved path, as Docker's `TarResourceRebase`
//! writes it: the top entry under a given name (`etc`, or `.` for the
//! content of a directory), a directory's entries below it
//! (`etc/hosts`, `./hosts`), sorted by name; numeric ids only; hard links
//! within the archive kept; `security.capability` as a PAX xattr record;
//! sockets left out. Every file is opened relative to its parent without
//! following its name.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::paths::Node;
use crate::error::{EngineError, Result};

const CAPABILITY_XATTR: &str = "security.capability";

/// Write the archive of `node` with its top entry named `top` to `out`.
pub(super) fn write<W: Write>(node: &Node, top: &[u8], out: W) -> Result<W> {
    let mut a = Archiver {
        b: tar::Builder::new(BufWriter::with_capacity(256 << 10, out)),
        links: HashMap::new(),
    };
    match node {
        Node::Dir { fd, stat } => {
            a.dir_header(stat, top)?;
            let mut prefix = top.to_vec();
            a.children(fd.as_fd(), &mut prefix)?;
        }
        Node::Other { parent, name, stat } => a.entry(parent.as_fd(), name, stat, top)?,
    }
    let buffered = a.b.into_inner().map_err(|e| write_err(top)(e))?;
    buffered
        .into_inner()
        .map_err(|e| write_err(top)(e.into_error()))
}

fn show(p: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(p))
}

fn write_err(name: &[u8]) -> impl FnOnce(io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        what: "write the archive entry",
        path: show(name),
        source,
    }
}

fn io_err<'a>(what: &'static str, name: &'a [u8]) -> impl FnOnce(io::Error) -> EngineError + 'a {
    move |source| EngineError::Io {
        what,
        path: show(name),
        source,
    }
}

fn errno_err<'a>(what: &'static str, name: &'a [u8]) -> impl FnOnce(Errno) -> EngineError + 'a {
    move |e| io_err(what, name)(e.into())
}

struct Archiver<W: Write> {
    b: tar::Builder<BufWriter<W>>,
    /// The first archived name of each (dev, ino) with several links.
    links: HashMap<(u64, u64), Vec<u8>>,
}

fn header(st: &Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    h
}

impl<W: Write> Archiver<W> {
    /// Append an entry named exactly `name` (the tar crate's path setters
    /// drop a leading `./`, which Docker's archives of `dir/.` have),
    /// with PAX records for what ustar cannot hold, as Go writes them.
    fn append(
        &mut self,
        h: &mut tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        pax: &[(String, Vec<u8>)],
        data: impl Read,
    ) -> Result<()> {
        let mut records: Vec<(String, Vec<u8>)> = pax.to_vec();
        let Some(u) = h.as_ustar_mut() else {
            return Err(write_err(name)(io::Error::other("not a ustar header")));
        };
        if !set_ustar_name(u, name) {
            records.push(("path".into(), name.to_vec()));
            let cut = name.len().min(u.name.len());
            u.name[..cut].copy_from_slice(&name[..cut]);
        }
        if let Some(link) = link {
            let cut = link.len().min(u.linkname.len());
            u.linkname[..cut].copy_from_slice(&link[..cut]);
            if link.len() > u.linkname.len() {
                records.push(("linkpath".into(), link.to_vec()));
            }
        }
        h.set_cksum();
        if !records.is_empty() {
            self.b
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(write_err(name))?;
        }
        self.b.append(h, data).map_err(write_err(name))
    }

    fn dir_header(&mut self, st: &Stat, name: &[u8]) -> Result<()> {
        let mut h = header(st, tar::EntryType::Directory);
        let mut n = name.to_vec();
        if !n.ends_with(b"/") {
            n.push(b'/');
        }
        self.append(&mut h, &n, None, &[], io::empty())
    }

    /// Archive the children of `dir`, named `prefix/<child>`.
    fn children(&mut self, dir: BorrowedFd<'_>, prefix: &mut Vec<u8>) -> Result<()> {
        let mut names = Vec::new();
        for entry in Dir::read_from(dir).map_err(errno_err("list", prefix))? {
            let entry = entry.map_err(errno_err("list", prefix))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        names.sort();
        let base = prefix.len();
        for name in names {
            prefix.truncate(base);
            if !prefix.ends_with(b"/") {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(&name);
            let st = match rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue, // removed meanwhile
                Err(e) => return Err(errno_err("lstat", prefix)(e)),
            };
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let child = match rustix::fs::openat(
                    dir,
                    name.as_slice(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(errno_err("open", prefix)(e)),
                };
                self.dir_header(&st, prefix)?;
                self.children(child.as_fd(), prefix)?;
            } else {
                self.entry(dir, &name, &st, prefix)?;
            }
        }
        prefix.truncate(base);
        Ok(())
    }

    /// Archive a non-directory `name` of `dir` as `tar_name`.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        st: &Stat,
        tar_name: &[u8],
    ) -> Result<()> {
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Socket {
            return Ok(()); // as Docker: sockets are not archived
        }
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let mut h = header(st, tar::EntryType::Link);
                let first = first.clone();
                return self.append(&mut h, tar_name, Some(&first), &[], io::empty());
            }
            self.links.insert(key, tar_name.to_vec());
        }
        match ft {
            FileType::RegularFile => {
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno_err("open", tar_name))?;
                let mut cap = [0u8; 64];
                let mut pax = Vec::new();
                if let Ok(n) = rustix::fs::fgetxattr(&fd, CAPABILITY_XATTR, &mut cap) {
                    let key = format!("SCHILY.xattr.{CAPABILITY_XATTR}");
                    pax.push((key, cap[..n].to_vec()));
                }
                let size = u64::try_from(st.st_size).unwrap_or(0);
                let mut h = header(st, tar::EntryType::Regular);
                h.set_size(size);
                let data = Exact {
                    file: File::from(fd),
                    left: size,
                };
                self.append(&mut h, tar_name, None, &pax, data)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new())
                    .map_err(errno_err("readlink", tar_name))?;
                let mut h = header(st, tar::EntryType::Symlink);
                self.append(&mut h, tar_name, Some(target.as_bytes()), &[], io::empty())
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let kind = match ft {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = header(st, kind);
                if ft != FileType::Fifo {
                    h.set_device_major(rustix::fs::major(st.st_rdev))
                        .map_err(write_err(tar_name))?;
                    h.set_device_minor(rustix::fs::minor(st.st_rdev))
                        .map_err(write_err(tar_name))?;
                }
                self.append(&mut h, tar_name, None, &[], io::empty())
            }
            _ => Ok(()),
        }
    }
}

/// Put `name` in the ustar name (and prefix) fields; false when it does
/// not fit.
fn set_ustar_name(u: &mut tar::UstarHeader, name: &[u8]) -> bool {
    if name.len() <= u.name.len() {
        u.name[..name.len()].copy_from_slice(name);
        return true;
    }
    // prefix '/' name, split at a '/' with the prefix at most 155 bytes.
    let max_prefix = u.prefix.len();
    let split = name
        .iter()
        .enumerate()
        .filter(|(i, b)| **b == b'/' && *i <= max_prefix && name.len() - i - 1 <= u.name.len())
        .map(|(i, _)| i)
        .find(|i| *i > 0 && *i + 1 < name.len());
    match split {
        Some(i) => {
            u.prefix[..i].copy_from_slice(&name[..i]);
            let rest = &name[i + 1..];
            u.name[..rest.len()].copy_from_slice(rest);
            true
        }
        None => false,
    }
}

/// Exactly `left` bytes of a file: a file that grew is cut at the size
/// its header gives, one that shrank is padded with zeros (as GNU tar),
/// so the archive stays well formed while the container writes.
struct Exact {
    file: File,
    left: u64,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = match self.file.read(&mut buf[..want]) {
            Ok(0) => {
                buf[..want].fill(0);
                want
            }
            Ok(n) => n,
            Err(e) => return Err(e),
        };
        self.left -= n as u64;
        Ok(n)
    }
}
