//! Paths as Docker's copy code reads them (Go's `filepath` on bytes), and
//! their resolution inside a root with `openat2(RESOLVE_IN_ROOT)`.

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

/// Symlinks followed while resolving one path, at most (Linux's limit).
const MAX_SYMLINKS: usize = 40;

/// Go's `filepath.Clean`.
pub(super) fn clean(p: &[u8]) -> Vec<u8> {
    if p.is_empty() {
        return b".".to_vec();
    }
    let rooted = p[0] == b'/';
    let mut out: Vec<&[u8]> = Vec::new();
    for c in p.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.last().is_some_and(|l| *l != b"..") {
                    out.pop();
                } else if !rooted {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    let mut s = Vec::with_capacity(p.len());
    if rooted {
        s.push(b'/');
    }
    s.extend_from_slice(&out.join(&b'/'));
    if s.is_empty() {
        s.push(b'.');
    }
    s
}

/// Go's `filepath.Base`.
pub(super) fn base(p: &[u8]) -> Vec<u8> {
    if p.is_empty() {
        return b".".to_vec();
    }
    let trimmed = match p.iter().rposition(|b| *b != b'/') {
        Some(i) => &p[..=i],
        None => return b"/".to_vec(),
    };
    match trimmed.iter().rposition(|b| *b == b'/') {
        Some(i) => trimmed[i + 1..].to_vec(),
        None => trimmed.to_vec(),
    }
}

/// Go's `filepath.Dir`.
pub(super) fn dir(p: &[u8]) -> Vec<u8> {
    match p.iter().rposition(|b| *b == b'/') {
        Some(i) => clean(&p[..=i]),
        None => b".".to_vec(),
    }
}

/// Go's `filepath.Split`: everything up to the last `/`, and the rest.
pub(super) fn split(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|b| *b == b'/') {
        Some(i) => (&p[..=i], &p[i + 1..]),
        None => (&p[..0], p),
    }
}

fn has_trailing_separator(p: &[u8]) -> bool {
    p.ends_with(b"/")
}

/// The path names "the current directory" (its base is `.`): copy the
/// content of a directory rather than the directory.
pub(super) fn specifies_current_dir(p: &[u8]) -> bool {
    base(p) == b"."
}

/// moby's `PreserveTrailingDotOrSeparator`: keep what cleaning removed and
/// what changes the meaning of a copy (`dir/.`, `dir/`).
pub(super) fn preserve_trailing(cleaned: Vec<u8>, original: &[u8]) -> Vec<u8> {
    let mut c = cleaned;
    if !specifies_current_dir(&c) && specifies_current_dir(original) {
        if !has_trailing_separator(&c) {
            c.push(b'/');
        }
        c.push(b'.');
    }
    if !has_trailing_separator(&c) && has_trailing_separator(original) {
        c.push(b'/');
    }
    c
}

/// moby's `SplitPathDirEntry`: the directory and the entry in it, where the
/// entry is `.` for a path naming the current directory.
pub(super) fn split_dir_entry(p: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut cleaned = clean(p);
    if specifies_current_dir(p) {
        if !has_trailing_separator(&cleaned) {
            cleaned.push(b'/');
        }
        cleaned.push(b'.');
    }
    (dir(&cleaned), base(&cleaned))
}

/// A path in the container made absolute as the daemon does: cleaned,
/// with a trailing `/` or `/.` kept.
pub(super) fn container_abs(p: &str) -> Vec<u8> {
    let mut joined = b"/".to_vec();
    joined.extend_from_slice(p.as_bytes());
    preserve_trailing(clean(&joined), p.as_bytes())
}

/// The name of the top entry of an archive of `abs`: its base name, or
/// `.` for the content of a directory (`dir/.`, the root).
pub(super) fn top_name(abs: &[u8]) -> Vec<u8> {
    let b = base(abs);
    if b == b"/" {
        b".".to_vec()
    } else {
        b
    }
}

/// An absolute path as a path relative to the root for `openat2`.
pub(super) fn rel(abs: &[u8]) -> &[u8] {
    let r = match abs.iter().position(|b| *b != b'/') {
        Some(i) => &abs[i..],
        None => &abs[abs.len()..],
    };
    if r.is_empty() {
        b"."
    } else {
        r
    }
}

/// Open `path` (relative, or absolute meaning relative) inside `root`,
/// every symlink and `..` kept inside it.
pub(super) fn open_in_root(
    root: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        root,
        rel(path),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// What a path names, resolved.
pub(super) enum Node {
    /// A directory, open for reading.
    Dir { fd: OwnedFd, stat: Stat },
    /// Anything else, by its parent directory (an `O_PATH` fd) and name.
    Other {
        parent: OwnedFd,
        name: Vec<u8>,
        stat: Stat,
    },
}

impl Node {
    pub(super) fn stat(&self) -> &Stat {
        match self {
            Node::Dir { stat, .. } | Node::Other { stat, .. } => stat,
        }
    }

    pub(super) fn is_dir(&self) -> bool {
        matches!(self, Node::Dir { .. })
    }
}

fn open_dir_fd(fd: OwnedFd) -> Result<Node, Errno> {
    let stat = rustix::fs::fstat(&fd)?;
    Ok(Node::Dir { fd, stat })
}

/// What `name` in `parent` is, not following it.
pub(super) fn node_at(parent: OwnedFd, name: &[u8]) -> Result<Node, Errno> {
    let stat = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        let fd = rustix::fs::openat(
            &parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        return open_dir_fd(fd);
    }
    Ok(Node::Other {
        parent,
        name: name.to_vec(),
        stat,
    })
}

/// Resolve an absolute container path (from [`container_abs`]) inside
/// `root` as the daemon's `ResolvePath` + `lstat` do: every component but
/// the last is followed; the last one too when the path ends in `/` or
/// `/.` (it must then be a directory).
pub(super) fn lookup(root: BorrowedFd<'_>, abs: &[u8]) -> Result<Node, Errno> {
    let (dir, name) = split(abs);
    if name.is_empty() || name == b"." {
        let fd = open_in_root(root, abs, OFlags::RDONLY | OFlags::DIRECTORY)?;
        return open_dir_fd(fd);
    }
    let parent = open_in_root(root, dir, OFlags::PATH | OFlags::DIRECTORY)?;
    node_at(parent, name)
}

/// An absolute path with every symlink followed inside `root`, as moby's
/// `FollowSymlinkInScope`: a missing component ends the resolution and
/// the rest is appended as it is.
pub(super) fn canonical(root: BorrowedFd<'_>, abs: &[u8]) -> Result<Vec<u8>, Errno> {
    let out = follow_in_root(root, abs)?;
    let mut s = b"/".to_vec();
    s.extend_from_slice(&out.join(&b'/'));
    Ok(s)
}

/// The components of `path` inside `root` with every symlink followed
/// inside it, as moby's `FollowSymlinkInScope` (what `docker cp` and
/// BuildKit's COPY resolve a destination with): a missing component ends
/// the resolution and the rest is kept as it is, so a dangling symlink
/// names the path it points to.
pub fn follow_in_root(root: BorrowedFd<'_>, path: &[u8]) -> Result<Vec<Vec<u8>>, Errno> {
    let mut todo: Vec<Vec<u8>> = path
        .split(|b| *b == b'/')
        .rev()
        .map(<[u8]>::to_vec)
        .collect();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut links = 0;
    let mut missing = false;
    while let Some(c) = todo.pop() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                out.pop();
                continue;
            }
            _ => {}
        }
        if missing {
            out.push(c);
            continue;
        }
        let parent = match open_in_root(root, &out.join(&b'/'), OFlags::PATH | OFlags::DIRECTORY) {
            Ok(p) => p,
            Err(Errno::NOENT) => {
                missing = true;
                out.push(c);
                continue;
            }
            Err(e) => return Err(e),
        };
        match rustix::fs::readlinkat(&parent, c.as_slice(), Vec::new()) {
            Ok(target) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP);
                }
                let target = target.into_bytes();
                if target.starts_with(b"/") {
                    out.clear();
                }
                todo.extend(target.split(|b| *b == b'/').rev().map(<[u8]>::to_vec));
            }
            Err(Errno::INVAL) => out.push(c),
            Err(Errno::NOENT) => {
                missing = true;
                out.push(c);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Open a host directory (the caller's path: symlinks followed as usual).
pub(super) fn open_host_dir(path: &[u8]) -> Result<OwnedFd, Errno> {
    let p: &[u8] = if path.is_empty() { b"." } else { path };
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Resolve a host path as docker-cli's `CopyInfoSourcePath` does without
/// `-L`: the parent is followed, the last component only when the path
/// ends in `/` or `/.`.
pub(super) fn lookup_host(abs: &[u8]) -> Result<Node, Errno> {
    let (dir, name) = split(abs);
    if name.is_empty() || name == b"." {
        return open_dir_fd(open_host_dir(abs)?);
    }
    let parent = rustix::fs::open(
        if dir.is_empty() { b"." } else { dir },
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    node_at(parent, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_functions_agree_with_go() {
        assert_eq!(clean(b"/a/../b/./c/"), b"/b/c");
        assert_eq!(clean(b"/.."), b"/");
        assert_eq!(clean(b"a/.."), b".");
        assert_eq!(clean(b"../a"), b"../a");
        assert_eq!(base(b"/a/b/"), b"b");
        assert_eq!(base(b"/"), b"/");
        assert_eq!(base(b"/a/."), b".");
        assert_eq!(dir(b"/a/b"), b"/a");
        assert_eq!(dir(b"/a"), b"/");
        assert_eq!(dir(b"a"), b".");
        assert_eq!(
            split_dir_entry(b"/a/b/."),
            (b"/a/b".to_vec(), b".".to_vec())
        );
        assert_eq!(split_dir_entry(b"/a/b/"), (b"/a".to_vec(), b"b".to_vec()));
        assert_eq!(container_abs("etc/"), b"/etc/");
        assert_eq!(container_abs("/etc/."), b"/etc/.");
        assert_eq!(container_abs("/etc/../x"), b"/x");
        assert_eq!(container_abs("/"), b"/");
        assert_eq!(container_abs("."), b"/.");
        assert_eq!(top_name(b"/"), b".");
        assert_eq!(top_name(b"/etc/"), b"etc");
        assert_eq!(top_name(b"/etc/."), b".");
        assert_eq!(rel(b"/"), b".");
        assert_eq!(rel(b"/a/b"), b"a/b");
    }
}
