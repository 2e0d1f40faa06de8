#!/usr/bin/env bash
# bench/build.sh — `barge build` vs `buildah bud` on the same context.
#
# One context: a 6-step Dockerfile on the busybox base (ENV, WORKDIR, COPY of
# a directory of 24 small files, two RUNs, CMD). Both engines start from the
# same base image (barge's busybox, saved and pulled into a private buildah
# store), build with no network, and are timed in the same hyperfine run:
#
#   cold     every step runs, nothing reused:
#              barge  build -t bench/app CTX        after `rmi -f` + `builder prune -f`
#              buildah bud -t ... CTX               (its default: one layer at the end,
#                                                     no cache) after `rmi` + `rmi --prune`
#              buildah bud --layers --no-cache ...  (a layer per step, like barge and
#                                                     Docker) after the same reset
#   cached   an unchanged rebuild, every step from the cache:
#              barge  build -t bench/app CTX        (its default cache)
#              buildah bud --layers -t ... CTX      (buildah caches only with --layers)
#
# Then a table of medians and the issue's targets: barge's cold build no
# slower than buildah's (its faster mode counts), its cached rebuild at least
# 5x faster than buildah's.
#
# Everything (barge root, buildah storage and config, context, mounts) lives
# in a scratch dir removed at exit; buildah never touches /var/lib/containers
# storage or the network (only containers/image's shared blob-info cache under
# /var/lib/containers/cache is written by its pull, as any root podman does).
#
# usage: sudo bench/build.sh [--no-build] [--runs N] [--cached-runs N] [--warmup N]
#   --no-build  do not run `cargo build --release --workspace --bins` (implied by BARGE_BIN)
# env: RUNS (10, cold), CACHED_RUNS (30), WARMUP (2), BUILDAH (buildah),
#      BARGE_BIN (default target/x86_64-unknown-linux-gnu/release/barge;
#      barge-monitor and barge-runc next to it), WORKDIR_BASE (/var/tmp: a
#      disk filesystem that supports overlayfs), CARGO_TARGET_DIR.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

RUNS=${RUNS:-10}
CACHED_RUNS=${CACHED_RUNS:-30}
WARMUP=${WARMUP:-2}
BUILD=1
[ -n "${BARGE_BIN:-}" ] && BUILD=0

while [ $# -gt 0 ]; do
	case $1 in
	--no-build) BUILD=0 ;;
	--runs) RUNS=$2; shift ;;
	--cached-runs) CACHED_RUNS=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

die() { echo "build.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (RUN containers, overlay mounts, buildah's rootful store)"
command -v hyperfine >/dev/null || die "hyperfine missing: apt-get install -y hyperfine"
command -v python3 >/dev/null || die "python3 missing: apt-get install -y python3"
BUILDAH=${BUILDAH:-$(command -v buildah || true)}
[ -n "$BUILDAH" ] && [ -x "$BUILDAH" ] || die "buildah missing: apt-get install -y buildah"

bench_barge_bin

# ---- scratch: barge root, buildah store and config, context; removed at exit
mkdir -p "${WORKDIR_BASE:-/var/tmp}"
work=$(mktemp -d "${WORKDIR_BASE:-/var/tmp}/barge-bench-build.XXXXXX")
BR=$work/barge-root
BH=$work/buildah
CTX=$work/ctx
mkdir -p "$BR" "$BH/tmp" "$CTX"

# buildah, private: own storage (graphroot/runroot), containers.conf
# (cgroupfs: no systemd as PID 1; default ulimits capped at our hard limits:
# root lacks CAP_SYS_RESOURCE here; runc, which works on hybrid cgroup hosts
# where crun 1.8 does not), registries.conf (no short-name lookups), a
# signature policy and TMPDIR.
bench_capped_ulimits
cat >"$BH/storage.conf" <<C
[storage]
driver = "overlay"
graphroot = "$BH/root"
runroot = "$BH/run"
C
cat >"$BH/containers.conf" <<C
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
netns = "none"
[network]
network_config_dir = "$BH/networks"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
C
if runc=$(command -v runc); then
	printf 'runtime = "runc"\n[engine.runtimes]\nrunc = ["%s"]\n' "$runc" >>"$BH/containers.conf"
fi
printf 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n' >"$BH/registries.conf"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$BH/policy.json"
export CONTAINERS_CONF=$BH/containers.conf CONTAINERS_STORAGE_CONF=$BH/storage.conf
export CONTAINERS_REGISTRIES_CONF=$BH/registries.conf TMPDIR=$BH/tmp
unset BUILDAH_LAYERS BUILDAH_FORMAT BUILDAH_ISOLATION

cleanup() {
	set +e
	"$BUILDAH" rm --all >/dev/null 2>&1
	"$BUILDAH" rmi --all --force >/dev/null 2>&1
	local m
	for m in $(findmnt -rn -o TARGET | grep -F "$work/" | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT

# ---- the base image: busybox imported into barge, saved, pulled by buildah
"$repo/scripts/make-test-bundle.sh" "$work/bundle" >/dev/null
tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
"$BARGE" --root "$BR" import "$work/rootfs.tar" busybox >/dev/null
"$BARGE" --root "$BR" save -o "$work/busybox.tar" busybox
"$BUILDAH" pull --quiet --signature-policy "$BH/policy.json" "docker-archive:$work/busybox.tar" >/dev/null
"$BUILDAH" inspect -t image localhost/busybox:latest >/dev/null || die "buildah has no localhost/busybox after the pull"

# ---- the context: six steps after FROM, a directory of small files
mkdir -p "$CTX/files/conf" "$CTX/files/lib"
for i in $(seq 1 8); do
	head -c $((i * 1024)) /dev/urandom | base64 >"$CTX/files/part$i.txt"
	echo "key$i = value$i" >"$CTX/files/conf/c$i.conf"
	head -c $((i * 2048)) /dev/urandom >"$CTX/files/lib/blob$i.bin"
done
printf '#!/bin/sh\necho "$GREETING from $APP: $(wc -c < /app/data/all) bytes"\n' >"$CTX/files/run.sh"
cat >"$CTX/Dockerfile" <<'D'
FROM busybox
ENV APP=/app GREETING=hello
WORKDIR /app
COPY files/ ./
RUN mkdir -p data && cat *.txt conf/*.conf > data/all && chmod 755 run.sh && rm -f part8.txt
RUN echo "$GREETING" > greeting && mkdir -p /usr/local/bin && ln -s /app/run.sh /usr/local/bin/app
CMD ["/usr/local/bin/app"]
D

B="$BARGE --root $BR"
H_COMMON="--pull=never --network none --signature-policy $BH/policy.json -t bench/app"
cmd_barge="$B build -q -t bench/app $CTX"
cmd_buildah="$BUILDAH bud -q $H_COMMON $CTX"
cmd_buildah_layers_cold="$BUILDAH bud -q --layers --no-cache $H_COMMON $CTX"
cmd_buildah_layers="$BUILDAH bud -q --layers $H_COMMON $CTX"

cat >"$work/reset" <<SH
#!/bin/sh
# reset barge|buildah: no result image, no build cache, no intermediate images
case "\$1" in
barge) $B rmi -f bench/app >/dev/null 2>&1; $B builder prune -f >/dev/null 2>&1 ;;
buildah) "$BUILDAH" rmi -f localhost/bench/app >/dev/null 2>&1; "$BUILDAH" rmi --prune >/dev/null 2>&1 ;;
*) exit 2 ;;
esac
exit 0
SH
chmod +x "$work/reset"

echo "# barge $("$BARGE" --version | awk '{print $2}'), $("$BUILDAH" --version), work dir $work" >&2
echo "# context: $(find "$CTX" -type f | wc -l) files, $(du -sk --apparent-size "$CTX" | cut -f1) KiB" >&2

# ---- checks: one real build of each after a reset runs every step, the
# result runs, and a rebuild really is all cached (barge: its 4 filesystem
# steps CACHED; buildah --layers: "Using cache" for all 6 steps)
failures=()
"$work/reset" barge
out=$($B build -t bench/app "$CTX" 2>&1) || die "barge build failed: $out"
n=$(grep -c CACHED <<<"$out" || true)
[ "$n" = 0 ] || failures+=("barge's build after the reset used the cache ($n CACHED steps)")
got=$($B run --rm bench/app) || die "barge's image does not run: $got"
echo "# barge's image says: $got" >&2
n=$($B build -t bench/app "$CTX" 2>&1 | grep -c CACHED || true)
[ "$n" = 4 ] || failures+=("barge's rebuild is not fully cached ($n CACHED steps, 4 expected)")
"$work/reset" buildah
out=$($cmd_buildah_layers_cold 2>&1) || die "buildah bud failed: $out"
# shellcheck disable=SC2086
n=$("$BUILDAH" bud $H_COMMON --layers "$CTX" 2>&1 | grep -c "Using cache" || true)
[ "$n" = 6 ] || failures+=("buildah's --layers rebuild is not fully cached ($n steps used the cache, 6 expected)")
cmd=$("$BUILDAH" inspect -t image -f '{{.Docker.Config.Cmd}}' localhost/bench/app)
[ "$cmd" = "[/usr/local/bin/app]" ] || failures+=("buildah's image has Cmd $cmd, not [/usr/local/bin/app]")

# ---- cold
echo >&2
echo "# ---- cold build: $RUNS runs (+$WARMUP warmup) each" >&2
hyperfine -N --runs "$RUNS" --warmup "$WARMUP" --export-json "$work/cold.json" \
	--prepare "$work/reset barge" -n barge "$cmd_barge" \
	--prepare "$work/reset buildah" -n buildah "$cmd_buildah" \
	--prepare "$work/reset buildah" -n "buildah --layers" "$cmd_buildah_layers_cold" >&2

# ---- cached: the caches are warm from the last cold runs of barge and
# buildah --layers (one more build each to be sure)
$cmd_barge >/dev/null 2>&1
$cmd_buildah_layers >/dev/null 2>&1
echo >&2
echo "# ---- cached rebuild: $CACHED_RUNS runs (+$WARMUP warmup) each" >&2
hyperfine -N --runs "$CACHED_RUNS" --warmup "$WARMUP" --export-json "$work/cached.json" \
	-n barge "$cmd_barge" \
	-n "buildah --layers" "$cmd_buildah_layers" >&2

# ---- table and targets
echo
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
def med(name):
    return {r["command"]: (r["median"], len(r["times"])) for r in json.load(open(os.path.join(work, name + ".json")))["results"]}
def fmt(s):
    return "%.2f s" % s if s >= 1 else "%.0f ms" % (s * 1e3)
cold, cached = med("cold"), med("cached")
print("%-22s %14s %14s %18s %12s" % ("", "barge median", "buildah median", "buildah --layers", "runs each"))
print("%-22s %14s %14s %18s %12d" % ("cold build", fmt(cold["barge"][0]), fmt(cold["buildah"][0]),
      fmt(cold["buildah --layers"][0]), cold["barge"][1]))
print("%-22s %14s %14s %18s %12d" % ("cached rebuild", fmt(cached["barge"][0]), "-",
      fmt(cached["buildah --layers"][0]), cached["barge"][1]))
b = cold["barge"][0]
best = min(cold["buildah"][0], cold["buildah --layers"][0])
r_cold = best / b
r_cached = cached["buildah --layers"][0] / cached["barge"][0]
print()
print("cold: buildah's faster mode / barge = %.2fx (buildah %.2fx, buildah --layers %.2fx); target >= 1: %s"
      % (r_cold, cold["buildah"][0] / b, cold["buildah --layers"][0] / b, "met" if r_cold >= 1 else "NOT met"))
print("cached: buildah --layers / barge = %.2fx; target >= 5: %s" % (r_cached, "met" if r_cached >= 5 else "NOT met"))
PY
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews these)"
for f in "${failures[@]}"; do echo "FAILED $f"; done
[ "${#failures[@]}" = 0 ]
