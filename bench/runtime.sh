#!/usr/bin/env bash
# bench/runtime.sh — OCI `run` latency and peak RSS: barge-runc vs crun vs runc.
#
# Times `RUNTIME --root R run --bundle B ID` of /bin/true (create + start +
# wait + delete) for each runtime in ONE hyperfine run (same bundle, own --root
# per runtime, the fixed ID force-deleted by --prepare), then measures the
# runtime's peak RSS with GNU time (%M, median of RSS_RUNS runs), and prints:
#   runtime  median  min  max (ms)  peak RSS (KiB)
#
# usage: sudo bench/runtime.sh [--fix-hybrid] [--no-build] [--runs N] [--warmup N] [--rss-runs N]
#   --fix-hybrid  crun 1.8 refuses hybrid cgroups ("cgroups in hybrid mode not
#                 supported"); with this flag (or BARGE_FIX_HYBRID=1) the script
#                 mounts the hugetlb controller as cgroup v1 at
#                 /sys/fs/cgroup/hugetlb for the run and unmounts it at exit
#                 (BARGE_KEEP_HYBRID_FIX=1 keeps it). Without it crun is skipped.
#   --no-build    do not run `cargo build --release -p barge-runc`
# env: RUNS (30), WARMUP (3), RSS_RUNS (10), BARGE_RUNC_BIN (barge binary,
#      default target/x86_64-unknown-linux-gnu/release/barge-runc; setting it implies --no-build),
#      CRUN (/usr/bin/crun), RUNC (/usr/sbin/runc), CARGO_TARGET_DIR.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
RSS_RUNS=${RSS_RUNS:-10}
FIX_HYBRID=${BARGE_FIX_HYBRID:-0}
BUILD=1
[ -n "${BARGE_RUNC_BIN:-}" ] && BUILD=0

while [ $# -gt 0 ]; do
	case $1 in
	--fix-hybrid) FIX_HYBRID=1 ;;
	--no-build) BUILD=0 ;;
	--runs) RUNS=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	--rss-runs) RSS_RUNS=$2; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "runtime.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

die() { echo "runtime.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (OCI runtimes need it here)"
command -v hyperfine >/dev/null || die "hyperfine missing: apt-get install -y hyperfine"
[ -x /usr/bin/time ] || die "GNU time missing: apt-get install -y time"
command -v python3 >/dev/null || die "python3 missing: apt-get install -y python3"

# ---- the runtimes
if [ "$BUILD" = 1 ]; then
	echo "# building barge-runc (release)" >&2
	(cd "$repo" && cargo build --release -p barge-runc >&2)
fi
target_dir=${CARGO_TARGET_DIR:-$repo/target}
BARGE=${BARGE_RUNC_BIN:-$target_dir/x86_64-unknown-linux-gnu/release/barge-runc}
CRUN=${CRUN:-/usr/bin/crun}
RUNC=${RUNC:-/usr/sbin/runc}

# ---- scratch: bundle + a --root per runtime; removed at exit
work=$(mktemp -d /tmp/barge-bench.XXXXXX)
id=barge-bench-$$
hugetlb_mounted=0
names=() bins=()
cleanup() {
	local i
	for i in "${!names[@]}"; do
		"${bins[$i]}" --root "$work/root-${names[$i]}" delete --force "$id" >/dev/null 2>&1 || true
		"${bins[$i]}" --root "$work/root-${names[$i]}" delete --force "$id-check" >/dev/null 2>&1 || true
	done
	# cgroups a runtime may have left for our ids (none if delete worked)
	local c
	for c in /sys/fs/cgroup/*/"$id" /sys/fs/cgroup/*/"$id-check" /sys/fs/cgroup/"$id" /sys/fs/cgroup/"$id-check"; do
		[ -d "$c" ] && rmdir "$c" 2>/dev/null || true
	done
	rm -rf "$work"
	if [ "$hugetlb_mounted" = 1 ] && [ "${BARGE_KEEP_HYBRID_FIX:-0}" != 1 ]; then
		if umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb; then
			# the v1 hierarchy is destroyed asynchronously; then hugetlb returns to cgroup2
			for _ in $(seq 50); do
				grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null && break
				sleep 0.1
			done
			echo "note: unmounted /sys/fs/cgroup/hugetlb again (cgroup2 controllers now: $(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null))" >&2
		else
			echo "warning: could not unmount /sys/fs/cgroup/hugetlb; undo by hand: umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb" >&2
		fi
	fi
}
trap cleanup EXIT

bash "$repo/scripts/make-test-bundle.sh" "$work/bundle" /bin/true >/dev/null
bash "$repo/scripts/make-test-bundle.sh" "$work/check" /bin/echo barge-bench-ok >/dev/null

# sanity_run NAME BIN: one real run that must print our marker. Sets $why on failure.
why=""
sanity_run() {
	local out
	mkdir -p "$work/root-$1"
	if ! out=$("$2" --root "$work/root-$1" run --bundle "$work/check" "$id-check" 2>&1); then
		why=$(printf '%s' "$out" | tail -3)
		return 1
	fi
	if ! printf '%s' "$out" | grep -q barge-bench-ok; then
		why="exited 0 but the container printed nothing (runtime not functional yet?)"
		return 1
	fi
}

is_hybrid() { [ -d /sys/fs/cgroup/unified ] && ! [ -f /sys/fs/cgroup/cgroup.controllers ]; }

skipped=()
add_runtime() { # NAME BIN
	local name=$1 bin=$2
	if ! [ -x "$bin" ]; then
		skipped+=("$name: $bin not found (apt-get install -y $name, or build it)")
		return
	fi
	if sanity_run "$name" "$bin"; then
		names+=("$name") bins+=("$bin")
		return
	fi
	if [ "$name" = crun ] && grep -qi 'hybrid' <<<"$why" && is_hybrid; then
		if [ "$FIX_HYBRID" != 1 ]; then
			skipped+=("crun: crun $("$bin" --version | awk 'NR==1{print $3}') refuses hybrid cgroups (\"$why\"); rerun with --fix-hybrid to mount hugetlb as cgroup v1 for the run")
			return
		fi
		if ! mountpoint -q /sys/fs/cgroup/hugetlb; then
			echo "note: --fix-hybrid: mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb (moves hugetlb from cgroup2 to v1 so crun accepts this host; undone at exit)" >&2
			mkdir -p /sys/fs/cgroup/hugetlb
			mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
			hugetlb_mounted=1
		fi
		if sanity_run "$name" "$bin"; then
			names+=("$name") bins+=("$bin")
			return
		fi
	fi
	skipped+=("$name: sanity run failed: $why")
}
add_runtime barge-runc "$BARGE"
add_runtime crun "$CRUN"
add_runtime runc "$RUNC"

for s in "${skipped[@]}"; do echo "skipped $s" >&2; done
[ "${#names[@]}" -gt 0 ] || die "no runtime could run the bundle"

# ---- latency: one hyperfine run over all runtimes
hf_args=(-N --runs "$RUNS" --warmup "$WARMUP" --export-json "$work/hyperfine.json")
for i in "${!names[@]}"; do
	n=${names[$i]} b=${bins[$i]} r=$work/root-${names[$i]}
	hf_args+=(--prepare "sh -c '\"$b\" --root \"$r\" delete --force $id >/dev/null 2>&1 || true'")
done
for i in "${!names[@]}"; do
	hf_args+=(-n "${names[$i]}" "${bins[$i]} --root $work/root-${names[$i]} run --bundle $work/bundle $id")
done
echo "# hyperfine: $RUNS runs (+$WARMUP warmup) of 'RUNTIME run --bundle B ID' with args /bin/true" >&2
hyperfine "${hf_args[@]}" >&2

# ---- peak RSS: median of RSS_RUNS runs of GNU time %M
: >"$work/rss"
for i in "${!names[@]}"; do
	n=${names[$i]} b=${bins[$i]} r=$work/root-${names[$i]}
	vals=()
	for _ in $(seq "$RSS_RUNS"); do
		"$b" --root "$r" delete --force "$id" >/dev/null 2>&1 || true
		vals+=("$(/usr/bin/time -f %M "$b" --root "$r" run --bundle "$work/bundle" "$id" 2>&1 >/dev/null | tail -1)")
	done
	med=$(printf '%s\n' "${vals[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
	echo "$n $med" >>"$work/rss"
done

# ---- table
echo
python3 - "$work/hyperfine.json" "$work/rss" "$RSS_RUNS" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
rss = dict(l.split() for l in open(sys.argv[2]) if l.strip())
print("%-12s %10s %10s %10s %16s" % ("runtime", "median ms", "min ms", "max ms", "peak RSS KiB"))
for r in res:
    name = r["command"]
    print("%-12s %10.2f %10.2f %10.2f %16s" % (
        name, r["median"] * 1e3, r["min"] * 1e3, r["max"] * 1e3, rss.get(name, "?")))
print("(%d timed runs each; peak RSS = median of %s runs of /usr/bin/time -f %%M)" % (
    len(res[0]["times"]), sys.argv[3]))
PY
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews these)"
for s in "${skipped[@]}"; do echo "skipped $s"; done
