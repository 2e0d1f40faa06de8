#!/usr/bin/env bash
# bench/images.sh — image commands on a ~200 MB rootfs: barge vs podman.
#
# Times, for barge and podman side by side (one hyperfine run per operation,
# same input file for both, private stores, state reset by --prepare outside
# the timing):
#   import      barge --root R import T bench/img      | podman import T localhost/bench/img
#   save        barge save -o F IMG                    | podman save -o F --format docker-archive IMG
#   load        barge load -q -i A  (empty store)      | podman load -q -i A  (empty store)
#   first run   load -q -i A + `barge run --rm IMG busybox true`
#                                                      | load -q -i A + `podman run --rm --network none IMG busybox true`
#               (time to the first container of a freshly loaded image: the
#               layers unpacked, a container's rootfs mounted, run, removed)
# A is the docker-archive podman saved (LOAD_FROM=barge: the one barge saved).
# Then prints: operation, barge median, podman median, podman/barge.
#
# The rootfs tarball T is synthesized once from host files (/usr/bin, /usr/sbin,
# /usr/lib, /usr/share until SIZE_MB of file data: many files and dirs,
# symlinks and hard links included, plus usrmerge top-level symlinks and a tiny
# /etc) and cached as $CACHE/rootfs-<SIZE_MB>m.tar; with BENCH_DEBOOTSTRAP=1
# (and debootstrap installed, network needed) it is instead
# `debootstrap --variant=minbase bookworm` cached as $CACHE/rootfs-debootstrap.tar.
# The cache stays; everything else (stores, mounts, archives) is removed at exit.
#
# usage: sudo bench/images.sh [--no-build] [--runs N] [--warmup N]
#   --no-build  do not run `cargo build --release --workspace --bins` (implied by BARGE_BIN)
# env: RUNS (5), WARMUP (1), SIZE_MB (200), CACHE (/var/tmp/barge-bench-images),
#      BENCH_DEBOOTSTRAP (0), LOAD_FROM (podman|barge, podman), PODMAN (podman),
#      BARGE_BIN (default target/x86_64-unknown-linux-gnu/release/barge),
#      WORKDIR_BASE (/var/tmp: scratch must be on a disk filesystem that
#      supports overlayfs, like the stores it stands for), CARGO_TARGET_DIR.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
SIZE_MB=${SIZE_MB:-200}
CACHE=${CACHE:-/var/tmp/barge-bench-images}
LOAD_FROM=${LOAD_FROM:-podman}
BUILD=1
[ -n "${BARGE_BIN:-}" ] && BUILD=0

while [ $# -gt 0 ]; do
	case $1 in
	--no-build) BUILD=0 ;;
	--runs) RUNS=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "images.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

die() { echo "images.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (overlay mounts, podman's rootful store)"
command -v hyperfine >/dev/null || die "hyperfine missing: apt-get install -y hyperfine"
command -v python3 >/dev/null || die "python3 missing: apt-get install -y python3"
command -v tar >/dev/null || die "tar missing: apt-get install -y tar"
PODMAN=${PODMAN:-$(command -v podman || true)}
[ -n "$PODMAN" ] && [ -x "$PODMAN" ] || die "podman missing: apt-get install -y podman"
case $LOAD_FROM in podman | barge) ;; *) die "LOAD_FROM must be podman or barge" ;; esac

if [ "$BUILD" = 1 ]; then
	echo "# building barge (release)" >&2
	(cd "$repo" && cargo build --release --workspace --bins >&2)
fi
target_dir=${CARGO_TARGET_DIR:-$repo/target}
BARGE=${BARGE_BIN:-$target_dir/x86_64-unknown-linux-gnu/release/barge}
[ -x "$BARGE" ] || die "$BARGE not found (cargo build --release -p barge, or set BARGE_BIN)"

# ---- the rootfs tarball (cached)
mkdir -p "$CACHE"
make_host_tar() { # OUT: host files until SIZE_MB of data, + usrmerge links + /etc
	local out=$1 tmp=$1.tmp.$$ extra
	extra=$(mktemp -d "$CACHE/extra.XXXXXX")
	echo "# building $out from host files (once; ~${SIZE_MB} MB)" >&2
	python3 - "$SIZE_MB" >"$tmp.list" <<'PY'
import os, stat, sys
# A mix like a distro rootfs: share of the budget per tree; files over 2 MB
# (toolchains, big static binaries) skipped so the data is many small files.
limit = int(sys.argv[1]) << 20
budget = (("/usr/bin", 0.20), ("/usr/sbin", 0.05), ("/usr/lib", 0.50), ("/usr/share", 0.25))
out = sys.stdout.buffer
def emit(p):
    out.write(p.encode("utf-8", "surrogateescape")[1:] + b"\0")  # relative to /
emit("/usr")
total = 0
for top, share in budget:
    cap = total + share * limit if top != budget[-1][0] else limit
    for dirpath, dirnames, filenames in os.walk(top):
        if total >= cap:
            break
        dirnames.sort()
        emit(dirpath)
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                emit(p)
            elif stat.S_ISREG(st.st_mode) and st.st_size <= 2 << 20 and total < cap:
                emit(p)
                total += st.st_size
PY
	# usrmerge top-level links and a minimal /etc, appended from a scratch dir
	mkdir -p "$extra/etc" "$extra/tmp" "$extra/root" "$extra/var/tmp"
	chmod 1777 "$extra/tmp" "$extra/var/tmp"
	ln -s usr/bin "$extra/bin"
	ln -s usr/sbin "$extra/sbin"
	ln -s usr/lib "$extra/lib"
	ln -s usr/lib64 "$extra/lib64"
	echo 'root:x:0:0:root:/root:/bin/sh' >"$extra/etc/passwd"
	echo 'root:x:0:' >"$extra/etc/group"
	tar --numeric-owner -C / --null --no-recursion -T "$tmp.list" -cf "$tmp"
	tar --numeric-owner -C "$extra" -rf "$tmp" bin sbin lib lib64 etc tmp root var
	rm -rf "$extra" "$tmp.list"
	mv "$tmp" "$out"
}
make_debootstrap_tar() {
	local out=$1 dir
	command -v debootstrap >/dev/null || die "BENCH_DEBOOTSTRAP=1 but debootstrap missing: apt-get install -y debootstrap"
	dir=$(mktemp -d "$CACHE/debootstrap.XXXXXX")
	echo "# debootstrap --variant=minbase bookworm (once)" >&2
	if ! debootstrap --variant=minbase bookworm "$dir" >&2; then
		rm -rf "$dir"
		die "debootstrap failed"
	fi
	tar --numeric-owner -C "$dir" -cf "$out.tmp.$$" . && mv "$out.tmp.$$" "$out"
	rm -rf "$dir"
}
if [ "${BENCH_DEBOOTSTRAP:-0}" = 1 ]; then
	TARBALL=$CACHE/rootfs-debootstrap.tar
	[ -f "$TARBALL" ] || make_debootstrap_tar "$TARBALL"
else
	TARBALL=$CACHE/rootfs-${SIZE_MB}m.tar
	[ -f "$TARBALL" ] || make_host_tar "$TARBALL"
fi

# ---- scratch: a store per tool, archives, helper scripts; removed at exit
mkdir -p "${WORKDIR_BASE:-/var/tmp}"
work=$(mktemp -d "${WORKDIR_BASE:-/var/tmp}/barge-bench-images.XXXXXX")
BR=$work/barge-root
PD=$work/podman
mkdir -p "$BR" "$PD"

# podman, private (bench/lib.sh).
bench_private_podman "$PD"
# (also keep podman away from the user's registries.conf/policy: not needed for local images)

IMG_B=bench/img
IMG_P=localhost/bench/img

cleanup() {
	set +e
	# mounts first: barge's overlay, podman's image mounts, then whatever is left under $work
	"$BARGE" --root "$BR" image unmount "$LOADED_B" >/dev/null 2>&1
	"$PODMAN" image unmount --all >/dev/null 2>&1
	"$PODMAN" rmi -af >/dev/null 2>&1
	local m
	for m in $(findmnt -rn -o TARGET | grep -F "$work/" | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	rm -rf "$work"
}
LOADED_B=localhost/bench/img:latest
trap cleanup EXIT

# ---- helper scripts (the --prepare steps, and the two-step "first use")
cat >"$work/reset" <<SH
#!/bin/sh
# reset TOOL STATE: barge|podman  noimage|nofile
# Then write back and drop the page cache: on these VMs every create/delete
# cycle of a big tree leaves the next one slower (GNU tar too) until the
# cache is dropped, so without this whichever tool runs later loses.
set -u
case "\$1-\$2" in
barge-noimage)
	"$BARGE" --root "$BR" image unmount "\$3" >/dev/null 2>&1
	"$BARGE" --root "$BR" rmi -f "\$3" >/dev/null 2>&1 ;;
podman-noimage)
	"$PODMAN" image unmount --all >/dev/null 2>&1
	"$PODMAN" rmi -af >/dev/null 2>&1 ;;
*-nofile) rm -f "\$3" ;;
*) exit 2 ;;
esac
sync
[ "${BENCH_DROP_CACHES:-1}" = 1 ] && echo 3 >/proc/sys/vm/drop_caches
exit 0
SH
cat >"$work/first-use-barge" <<SH
#!/bin/sh
set -e
"$BARGE" --root "$BR" load -q -i "\$1" >/dev/null
"$BARGE" --root "$BR" run --rm "\$2" /usr/bin/busybox true
SH
cat >"$work/first-use-podman" <<SH
#!/bin/sh
set -e
"$PODMAN" load -q -i "\$1" >/dev/null
"$PODMAN" run --rm --network none "\$2" /usr/bin/busybox true
SH
chmod +x "$work/reset" "$work/first-use-barge" "$work/first-use-podman"

failures=()

# bench OP CMD_B PREP_B CMD_P PREP_P: one hyperfine run, both tools (or the
# one that passed its check); results in $work/OP.json
declare -A ok
bench() {
	local op=$1 cb=$2 pb=$3 cp=$4 pp=$5 args
	args=(-N --runs "$RUNS" --warmup "$WARMUP" --export-json "$work/$op.json")
	if [ "${ok[$op-barge]:-0}" = 1 ]; then args+=(--prepare "$pb"); fi
	if [ "${ok[$op-podman]:-0}" = 1 ]; then args+=(--prepare "$pp"); fi
	if [ "${ok[$op-barge]:-0}" = 1 ]; then args+=(-n barge "$cb"); fi
	if [ "${ok[$op-podman]:-0}" = 1 ]; then args+=(-n podman "$cp"); fi
	if [ "${#args[@]}" -le 6 ]; then
		echo "# $op: nothing to measure (both failed their check)" >&2
		return 0
	fi
	echo >&2
	echo "# ---- $op: $RUNS runs (+$WARMUP warmup) each" >&2
	hyperfine "${args[@]}" >&2 || failures+=("$op: hyperfine run failed (see above)")
}

size_mb() { du -sm --apparent-size "$1" 2>/dev/null | cut -f1; }
echo "# tarball $TARBALL: $(size_mb "$TARBALL") MB, $(tar -tf "$TARBALL" | wc -l) entries" >&2
echo "# barge $("$BARGE" --version | awk '{print $2}'), $("$PODMAN" --version), work dir $work" >&2

# ---- 1. import
check import-barge "$BARGE" --root "$BR" import "$TARBALL" "$IMG_B" && ok[import-barge]=1
check import-podman "$PODMAN" import -q "$TARBALL" "$IMG_P" && ok[import-podman]=1
bench import \
	"$BARGE --root $BR import $TARBALL $IMG_B" "$work/reset barge noimage $IMG_B" \
	"$PODMAN import -q $TARBALL $IMG_P" "$work/reset podman noimage"
# both images are present again after the last timed run

# ---- 2. save (docker-archive)
SB=$work/barge-saved.tar SP=$work/podman-saved.tar
[ "${ok[import-barge]:-0}" = 1 ] && check save-barge "$BARGE" --root "$BR" save -o "$SB" "$IMG_B" && ok[save-barge]=1
[ "${ok[import-podman]:-0}" = 1 ] && check save-podman "$PODMAN" save -q -o "$SP" --format docker-archive "$IMG_P" && ok[save-podman]=1
bench save \
	"$BARGE --root $BR save -o $SB $IMG_B" "$work/reset barge nofile $SB" \
	"$PODMAN save -q -o $SP --format docker-archive $IMG_P" "$work/reset podman nofile $SP"
[ -f "$SB" ] && echo "# barge's archive: $(size_mb "$SB") MB" >&2
[ -f "$SP" ] && echo "# podman's archive: $(size_mb "$SP") MB" >&2

# ---- 3. load of the same docker-archive into an empty store
if [ "$LOAD_FROM" = podman ]; then ARCHIVE=$SP; else ARCHIVE=$SB; fi
[ -f "$ARCHIVE" ] || die "no $LOAD_FROM-saved archive to load (see the failures above)"
# the stores are emptied first (the import/save images go away)
"$work/reset" barge noimage "$IMG_B"
"$work/reset" podman noimage
# the name the archive carries (RepoTags in manifest.json)
LOADED=$(tar -xOf "$ARCHIVE" manifest.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RepoTags"][0])')
LOADED_B=$LOADED
echo "# loading $ARCHIVE ($(size_mb "$ARCHIVE") MB, $LOAD_FROM-saved, tagged $LOADED)" >&2
check load-barge "$BARGE" --root "$BR" load -q -i "$ARCHIVE" && ok[load-barge]=1
check load-podman "$PODMAN" load -q -i "$ARCHIVE" && ok[load-podman]=1
# --prepare must really empty the stores (no image, no layer left to reuse)
"$work/reset" barge noimage "$LOADED"
"$work/reset" podman noimage
[ -z "$("$BARGE" --root "$BR" images -q 2>/dev/null)" ] || failures+=("load: barge store not empty after rmi -f: $("$BARGE" --root "$BR" images 2>&1 | tr '\n' ' ')")
[ -z "$("$PODMAN" images -aq 2>/dev/null)" ] || failures+=("load: podman store not empty after rmi -af")
echo "# store sizes after the reset: barge $(du -sm "$BR" | cut -f1) MB, podman $(du -sm "$PD/root" 2>/dev/null | cut -f1) MB" >&2
bench load \
	"$BARGE --root $BR load -q -i $ARCHIVE" "$work/reset barge noimage $LOADED" \
	"$PODMAN load -q -i $ARCHIVE" "$work/reset podman noimage"

# ---- 4. first run: load + run --rm of a container from the loaded image
"$work/reset" barge noimage "$LOADED"
"$work/reset" podman noimage
if [ "${ok[load-barge]:-0}" = 1 ] && check first-use-barge "$work/first-use-barge" "$ARCHIVE" "$LOADED"; then
	ok[first-use-barge]=1
fi
if [ "${ok[load-podman]:-0}" = 1 ] && check first-use-podman "$work/first-use-podman" "$ARCHIVE" "$LOADED"; then
	ok[first-use-podman]=1
fi
bench first-use \
	"$work/first-use-barge $ARCHIVE $LOADED" "$work/reset barge noimage $LOADED" \
	"$work/first-use-podman $ARCHIVE $LOADED" "$work/reset podman noimage"

# ---- table
echo
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
rows = [("import", "import"), ("save", "save (docker-archive)"),
        ("load", "load (docker-archive)"), ("first-use", "load + first run")]
def fmt(s):
    return "-" if s is None else ("%.2f s" % s if s >= 1 else "%.0f ms" % (s * 1e3))
print("%-24s %12s %12s %16s" % ("operation", "barge median", "podman median", "podman/barge"))
n = None
for key, label in rows:
    med = {}
    p = os.path.join(work, key + ".json")
    if os.path.exists(p):
        for r in json.load(open(p))["results"]:
            med[r["command"]] = r["median"]
            n = len(r["times"])
    b, q = med.get("barge"), med.get("podman")
    ratio = "%.2fx" % (q / b) if b and q else "-"
    print("%-24s %12s %12s %16s" % (label, fmt(b), fmt(q), ratio))
print("(medians of %s timed runs each; ratio > 1 means barge is faster)" % n)
PY
echo "tarball: $TARBALL ($(size_mb "$TARBALL") MB); load/first-use archive: $LOAD_FROM-saved"
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews these)"
for f in "${failures[@]}"; do echo "FAILED $f"; done
