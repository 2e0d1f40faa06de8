#!/usr/bin/env bash
# bench/registry.sh — registry pull/push over loopback: barge vs skopeo, and
# time from `pull` to a running container: barge vs podman.
#
# One image (~200 MB in 5 layers: busybox + four ~50 MB trees of host files,
# built once by `barge build` from a scratch Dockerfile), one Debian
# `docker-registry` on a free 127.0.0.1 port (filesystem storage, no blob
# descriptor cache), and for each operation one hyperfine run that times
# barge and its peer side by side, the state reset by --prepare outside the
# timing (and the page cache dropped, as in images.sh):
#   push        barge push IMG 127.0.0.1:P/bench/img      | skopeo copy oci:<barge store>:IMG docker://127.0.0.1:P/bench/img
#               (registry storage emptied before each run; skopeo reads the
#               same blobs: barge's store is an OCI layout; both gzip the
#               uncompressed layers; barge's cache of compressed layers is
#               emptied too, so each run compresses)
#   push-warm   the same, barge's compressed layers kept from the last push
#   pull        barge pull 127.0.0.1:P/bench/img (empty store; layers are
#               unpacked while they download)        | skopeo copy docker://... oci:DIR (empty dir; no unpacking)
#   pull-unpack the same barge pull | skopeo copy docker://... containers-storage:...
#               (podman's store: the layers unpacked, as barge's are)
#   first run   barge pull + barge run --rm IMG /bin/true   | podman pull + podman run --rm IMG /bin/true
# Then prints: operation, barge median, peer median, peer/barge.
#
# usage: sudo bench/registry.sh [--no-build] [--runs N] [--warmup N]
# env: RUNS (5), WARMUP (1), SIZE_MB (200), CACHE (/var/tmp/barge-bench-registry),
#      BARGE_BIN, CARGO_TARGET_DIR, WORKDIR_BASE (/var/tmp), BENCH_DROP_CACHES (1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
SIZE_MB=${SIZE_MB:-200}
CACHE=${CACHE:-/var/tmp/barge-bench-registry}
BUILD=1
[ -n "${BARGE_BIN:-}" ] && BUILD=0
while [ $# -gt 0 ]; do
	case $1 in
	--no-build) BUILD=0 ;;
	--runs) RUNS=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "registry.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

die() { echo "registry.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (overlay mounts, podman's rootful store)"
for t in hyperfine skopeo podman docker-registry python3 busybox; do
	command -v "$t" >/dev/null || die "$t missing: apt-get install -y hyperfine skopeo podman docker-registry python3 busybox-static"
done

if [ "$BUILD" = 1 ]; then
	echo "# building barge (release)" >&2
	(cd "$repo" && cargo build --release --workspace --bins >&2)
fi
target_dir=${CARGO_TARGET_DIR:-$repo/target}
BARGE=${BARGE_BIN:-$target_dir/x86_64-unknown-linux-gnu/release/barge}
[ -x "$BARGE" ] || die "$BARGE not found (cargo build --release --workspace --bins, or set BARGE_BIN)"

mkdir -p "${WORKDIR_BASE:-/var/tmp}"
work=$(mktemp -d "${WORKDIR_BASE:-/var/tmp}/barge-bench-registry.XXXXXX")
BR=$work/barge-root       # the store the image is built in and pushed from
BP=$work/barge-pull       # the store pulls go into
PD=$work/podman
REG=$work/registry
mkdir -p "$BR" "$BP" "$PD" "$REG/storage"
bench_private_podman "$PD"
reg_pid=
cleanup() {
	set +e
	[ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
	"$PODMAN" rmi -af >/dev/null 2>&1
	local m
	for m in $(findmnt -rn -o TARGET | grep -F "$work/" | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	rm -rf "$work"
}
PODMAN=$(command -v podman)
trap cleanup EXIT

# ---- the registry
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$REG/config.yml" <<Y
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $REG/storage}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port}
Y
docker-registry serve "$REG/config.yml" >"$REG/log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do
	curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fs "http://127.0.0.1:$port/v2/" >/dev/null || die "docker-registry did not start: $(cat "$REG/log")"
R=127.0.0.1:$port

# ---- the image: busybox + 4 layers of host files, ~SIZE_MB in all
ctx=$work/ctx
mkdir -p "$ctx/bb/bin"
cp "$(command -v busybox)" "$ctx/bb/bin/busybox"
for a in sh true ls cat; do ln -s busybox "$ctx/bb/bin/$a"; done
python3 - "$ctx" "$SIZE_MB" <<'PY'
import os, shutil, stat, sys
ctx, limit = sys.argv[1], int(sys.argv[2]) << 20
per = limit // 4
srcs = ["/usr/lib", "/usr/share", "/usr/bin", "/usr/lib/x86_64-linux-gnu"]
seen = set()
for i, top in enumerate(srcs, 1):
    total = 0
    dest = os.path.join(ctx, f"l{i}")
    for dp, dns, fns in os.walk(top):
        dns.sort()
        for f in sorted(fns):
            p = os.path.join(dp, f)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size > 4 << 20 or p in seen:
                continue
            seen.add(p)
            d = os.path.join(dest, p.lstrip("/"))
            os.makedirs(os.path.dirname(d), exist_ok=True)
            shutil.copyfile(p, d)
            total += st.st_size
            if total >= per:
                break
        if total >= per:
            break
PY
cat >"$ctx/Dockerfile" <<'D'
FROM scratch
COPY bb/ /
COPY l1/ /
COPY l2/ /
COPY l3/ /
COPY l4/ /
CMD ["/bin/sh"]
D
IMG=localhost/bench/regimg:latest
"$BARGE" --root "$BR" build -q -t "$IMG" "$ctx" >/dev/null
rm -rf "$ctx"
size=$(du -sm "$BR/blobs" | cut -f1)
echo "# image $IMG: $("$BARGE" --root "$BR" image inspect --format '{{len .RootFS.Layers}}' "$IMG") layers, ${size} MB of blobs; registry at $R" >&2

# ---- reset helpers (run by --prepare)
cat >"$work/reset" <<SH
#!/bin/sh
# reset WHAT: registry (empty storage) | pulls (empty pull store, skopeo dir, podman images) | seed (registry holds the image)
set -eu
case "\$1" in
registry) rm -rf "$REG/storage/docker" "$BR/distribution/compressed.json" ;;
registry-warm) rm -rf "$REG/storage/docker" ;;
pulls)
	rm -rf "$BP" "$work/skopeo-out"; mkdir -p "$BP"
	"$PODMAN" rmi -af >/dev/null 2>&1 || true ;;
esac
sync
[ "\${BENCH_DROP_CACHES:-1}" = 1 ] && echo 3 >/proc/sys/vm/drop_caches
exit 0
SH
chmod +x "$work/reset"
cat >"$work/first-barge" <<SH
#!/bin/sh
set -e
"$BARGE" --root "$BP" pull -q "$R/bench/img:latest" >/dev/null
"$BARGE" --root "$BP" run --rm "$R/bench/img:latest" /bin/true
SH
cat >"$work/first-podman" <<SH
#!/bin/sh
set -e
"$PODMAN" pull -q --tls-verify=false "$R/bench/img:latest" >/dev/null
"$PODMAN" run --rm --network none "$R/bench/img:latest" /bin/true
SH
chmod +x "$work/first-barge" "$work/first-podman"

results=$work/results
: >"$results"
hf() { # NAME BARGE_CMD BARGE_PREP PEER_CMD PEER_PREP
	local name=$1
	hyperfine -N --runs "$RUNS" --warmup "$WARMUP" --export-json "$work/$name.json" \
		--prepare "$3" -n barge "$2" --prepare "$5" -n peer "$4" >"$work/$name.txt" 2>&1 ||
		{ cat "$work/$name.txt" >&2; die "$name failed"; }
	python3 - "$work/$name.json" "$name" >>"$results" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
print(sys.argv[2], r["barge"], r["peer"])
PY
}

echo "# push (barge vs skopeo)" >&2
hf push "$BARGE --root $BR push -q $IMG $R/bench/img:latest" "$work/reset registry" \
	"skopeo copy -q --dest-tls-verify=false oci:$BR:$IMG docker://$R/bench/img:latest" "$work/reset registry"
hf push-warm "$BARGE --root $BR push -q $IMG $R/bench/img:latest" "$work/reset registry-warm" \
	"skopeo copy -q --dest-tls-verify=false oci:$BR:$IMG docker://$R/bench/img:latest" "$work/reset registry-warm"
# the registry now holds the image (gzip layers) for the pulls
"$work/reset" registry
"$BARGE" --root "$BR" push -q "$IMG" "$R/bench/img:latest" >/dev/null
echo "# pull (barge vs skopeo)" >&2
hf pull "$BARGE --root $BP pull -q $R/bench/img:latest" "$work/reset pulls" \
	"skopeo copy -q --src-tls-verify=false docker://$R/bench/img:latest oci:$work/skopeo-out:img" "$work/reset pulls"
hf pull-unpack "$BARGE --root $BP pull -q $R/bench/img:latest" "$work/reset pulls" \
	"skopeo copy -q --src-tls-verify=false docker://$R/bench/img:latest containers-storage:$R/bench/img:latest" "$work/reset pulls"
echo "# pull to first run (barge vs podman)" >&2
hf first-run "$work/first-barge" "$work/reset pulls" "$work/first-podman" "$work/reset pulls"

echo
printf '%-12s %12s %12s %12s\n' operation barge peer peer/barge
while read -r name b p; do
	peer=skopeo
	[ "$name" = pull-unpack ] && peer="skopeo to containers-storage"
	[ "$name" = first-run ] && peer=podman
	python3 -c "import sys; n,b,p,peer=sys.argv[1:]; b=float(b); p=float(p); print('%-12s %10.0f ms %10.0f ms %11.2fx  (%s)' % (n, b*1e3, p*1e3, p/b, peer))" "$name" "$b" "$p" "$peer"
done <"$results"
echo "(runs=$RUNS, loadavg after: $(cut -d' ' -f1-3 /proc/loadavg))"
