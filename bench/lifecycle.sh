#!/usr/bin/env bash
# bench/lifecycle.sh — container lifecycle: barge vs podman (and docker).
#
# In one run, on the same busybox image (private stores, nothing system-wide):
#  (a) latency of a whole container life, one hyperfine run over all engines:
#        barge --root R run --rm --network none busybox true
#        podman run --rm --network none IMG true     (private store, crun)
#        docker run --rm --network none IMG true     (only if a dockerd is
#                                                     already running; none is started)
#      then prints each median and podman/barge.
#  (b) COUNT (50) idle containers per engine, one engine at a time:
#        `run -d IMG sleep 1000` COUNT times in a row: total wall time;
#        then the memory of each container's monitor, the parent of the
#        container's init (barge-monitor for barge, conmon for podman; found
#        through the ids we started, never by process name): RSS from
#        /proc/PID/status and PSS from /proc/PID/smaps_rollup, median and
#        mean; then `rm -f` of all COUNT containers in one command (timed).
#      (all with no network, like for like: barge's default is its bridge;
#      bench/network.sh measures the bridge)
# Finally a table, and the issue's targets: barge's `run --rm` median at most
# 1/4 of podman's; barge-monitor's RSS below conmon's.
#
# usage: sudo bench/lifecycle.sh [--no-build] [--runs N] [--warmup N] [--count N]
#   --no-build  do not run `cargo build --release --workspace --bins`
#               (implied by BARGE_BIN)
# env: RUNS (30), WARMUP (3), COUNT (50), PODMAN (podman), DOCKER (docker;
#      its dockerd found through DOCKER_HOST or the default socket),
#      BARGE_BIN (default target/x86_64-unknown-linux-gnu/release/barge;
#      barge-monitor and barge-runc must sit next to it), WORKDIR_BASE
#      (/var/tmp: scratch must be on a disk filesystem that supports
#      overlayfs), CARGO_TARGET_DIR.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
COUNT=${COUNT:-50}
BUILD=1
[ -n "${BARGE_BIN:-}" ] && BUILD=0

while [ $# -gt 0 ]; do
	case $1 in
	--no-build) BUILD=0 ;;
	--runs) RUNS=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	--count) COUNT=$2; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "lifecycle.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

die() { echo "lifecycle.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (containers, overlay mounts, podman's rootful store)"
command -v hyperfine >/dev/null || die "hyperfine missing: apt-get install -y hyperfine"
command -v python3 >/dev/null || die "python3 missing: apt-get install -y python3"
PODMAN=${PODMAN:-$(command -v podman || true)}
[ -n "$PODMAN" ] && [ -x "$PODMAN" ] || die "podman missing: apt-get install -y podman"
DOCKER=${DOCKER:-$(command -v docker || true)}

bench_barge_bin

# ---- scratch: barge root, podman store, rootfs; removed at exit
mkdir -p "${WORKDIR_BASE:-/var/tmp}"
work=$(mktemp -d "${WORKDIR_BASE:-/var/tmp}/barge-bench-lifecycle.XXXXXX")
BR=$work/barge-root
PD=$work/podman
mkdir -p "$BR" "$PD"

# podman, private (bench/lib.sh).
bench_private_podman "$PD"

# docker: only a dockerd that is already running (DOCKER_HOST or the default
# socket); the image goes in under a tag of our own and is removed at exit.
have_docker=0
IMG_D=barge-bench-lifecycle/busybox:$$
if [ -n "$DOCKER" ] && [ -x "$DOCKER" ] && timeout 5 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
	have_docker=1
fi

# podman's cgroupfs manager puts every conmon in libpod_parent/conmon and
# leaves that behind; removed at exit if it was not there before (rmdir
# refuses while anything is in use)
bench_podman_cgroups_mark

# ids of every container we started, per engine: removed at exit
declare -A started=([barge]="" [podman]="" [docker]="")
eng() { # eng ENGINE ARGS...: the engine's CLI on our private store
	case $1 in
	barge) shift; "$BARGE" --root "$BR" "$@" ;;
	podman) shift; "$PODMAN" "$@" ;;
	docker) shift; "$DOCKER" "$@" ;;
	esac
}
rm_all() { # rm_all ENGINE IDS...: force-remove, no stop timeout
	local e=$1
	shift
	[ $# -gt 0 ] || return 0
	case $e in
	barge) eng barge rm -f "$@" ;;
	podman) eng podman rm -f -t 0 "$@" ;;
	docker) eng docker rm -f "$@" ;;
	esac
}

cleanup() {
	set +e
	local e m
	for e in barge podman docker; do
		# shellcheck disable=SC2086
		[ -n "${started[$e]}" ] && rm_all "$e" ${started[$e]} >/dev/null 2>&1
	done
	"$PODMAN" rm -af -t 0 >/dev/null 2>&1
	"$PODMAN" rmi -af >/dev/null 2>&1
	[ "$have_docker" = 1 ] && "$DOCKER" rmi "$IMG_D" >/dev/null 2>&1
	# whatever is still mounted under the scratch dir (overlays, shm), deepest first
	bench_umount_under "$work"
	rm -rf "$work"
	bench_podman_cgroups_cleanup
}
trap cleanup EXIT

failures=()

# ---- the image: busybox rootfs imported into barge, saved into the others
bash "$repo/scripts/make-test-bundle.sh" "$work/bundle" >/dev/null
tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
"$BARGE" --root "$BR" import "$work/rootfs.tar" busybox >/dev/null
"$BARGE" --root "$BR" save busybox | "$PODMAN" load -q >/dev/null
IMG_P=$("$PODMAN" images --format '{{.Repository}}:{{.Tag}}' | head -1)
[ -n "$IMG_P" ] || die "podman load of barge's saved busybox left no image"
if [ "$have_docker" = 1 ]; then
	"$BARGE" --root "$BR" tag busybox "$IMG_D"
	"$BARGE" --root "$BR" save "$IMG_D" | "$DOCKER" load -q >/dev/null || {
		failures+=("docker: load of barge's saved image failed")
		have_docker=0
	}
fi
echo "# barge $("$BARGE" --version | awk '{print $2}'), $("$PODMAN" --version) ($("$PODMAN" info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null) runtime), work dir $work" >&2
[ "$have_docker" = 1 ] && echo "# docker $("$DOCKER" version --format '{{.Server.Version}}') (already running)" >&2
[ "$have_docker" = 1 ] || echo "# docker: no dockerd running; skipped (this script does not start one)" >&2

# the `run` arguments per engine, before IMAGE CMD...
declare -A run_args=([barge]="run --network none" [podman]="run --network none" [docker]="run --network none")
declare -A image=([barge]=busybox [podman]=$IMG_P [docker]=$IMG_D)
engines=()
declare -A ok
for e in barge podman docker; do
	[ "$e" = docker ] && [ "$have_docker" = 0 ] && continue
	engines+=("$e")
	# shellcheck disable=SC2086
	if check "run-$e" eng "$e" ${run_args[$e]} --rm "${image[$e]}" echo lifecycle-ok; then
		ok[$e]=1
	fi
done

# ---- (a) run --rm IMG true, one hyperfine run
args=(-N --runs "$RUNS" --warmup "$WARMUP" --export-json "$work/run-rm.json")
for e in "${engines[@]}"; do
	[ "${ok[$e]:-0}" = 1 ] || continue
	case $e in
	barge) cmd="$BARGE --root $BR" ;;
	podman) cmd=$PODMAN ;;
	docker) cmd=$DOCKER ;;
	esac
	cmd+=" ${run_args[$e]} --rm ${image[$e]} true"
	args+=(-n "$e" "$cmd")
done
if [ "${#args[@]}" -gt 6 ]; then
	echo >&2
	echo "# ---- (a) run --rm IMAGE true: $RUNS runs (+$WARMUP warmup) each" >&2
	hyperfine "${args[@]}" >&2 || failures+=("run --rm: hyperfine run failed (see above)")
fi

# ---- (b) COUNT idle containers per engine
ms_now() { echo $(($(date +%s%N) / 1000000)); }
for e in "${engines[@]}"; do
	[ "${ok[$e]:-0}" = 1 ] || continue
	echo >&2
	echo "# ---- (b) $e: $COUNT x run -d ${image[$e]} sleep 1000" >&2
	ids=()
	t0=$(ms_now)
	for i in $(seq "$COUNT"); do
		# shellcheck disable=SC2086
		if ! id=$(eng "$e" ${run_args[$e]} -d "${image[$e]}" sleep 1000 2>"$work/err"); then
			failures+=("$e: run -d number $i failed: $(tail -3 "$work/err" | tr '\n' ' ')")
			break
		fi
		ids+=("$id")
		started[$e]+=" $id"
	done
	t1=$(ms_now)
	echo "$e start $COUNT $((t1 - t0)) ${#ids[@]}" >>"$work/mem"
	sleep 2 # let every monitor settle into its idle loop
	: >"$work/mem-$e"
	for id in "${ids[@]}"; do
		pid=$(eng "$e" inspect -f '{{.State.Pid}}' "$id" 2>/dev/null || echo 0)
		mon=$(awk '/^PPid:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
		if [ "$pid" -le 0 ] || [ -z "$mon" ]; then
			failures+=("$e: container $id has no running init (pid '$pid')")
			continue
		fi
		if [ "$e" = podman ]; then
			cm=$(eng podman inspect -f '{{.State.ConmonPid}}' "$id")
			[ "$cm" = "$mon" ] || failures+=("podman: $id: init's parent $mon is not ConmonPid $cm")
		fi
		rss=$(awk '/^VmRSS:/{print $2}' "/proc/$mon/status")
		pss=$(awk '/^Pss:/{print $2}' "/proc/$mon/smaps_rollup")
		echo "$mon $(cat "/proc/$mon/comm") $rss $pss" >>"$work/mem-$e"
	done
	echo "# $e monitors (pid comm rss pss, KiB), first 3:" >&2
	head -3 "$work/mem-$e" >&2
	t0=$(ms_now)
	rm_all "$e" "${ids[@]}" >/dev/null 2>"$work/err" || failures+=("$e: rm -f of the $COUNT containers failed: $(tail -3 "$work/err" | tr '\n' ' ')")
	t1=$(ms_now)
	started[$e]=""
	echo "$e rm $COUNT $((t1 - t0)) ${#ids[@]}" >>"$work/mem"
	if [ "$e" != docker ]; then # a private store: nothing else is in it
		left=$(eng "$e" ps -aq | wc -l)
		[ "$left" = 0 ] || failures+=("$e: $left containers left after rm -f")
	fi
done

# ---- table
echo
python3 - "$work" "${engines[@]}" <<'PY'
import json, os, statistics, sys
work, engines = sys.argv[1], sys.argv[2:]
med = {}
p = os.path.join(work, "run-rm.json")
if os.path.exists(p):
    for r in json.load(open(p))["results"]:
        med[r["command"]] = (r["median"] * 1e3, r["min"] * 1e3, r["max"] * 1e3, len(r["times"]))
print("(a) run --rm IMAGE true")
print("%-8s %10s %10s %10s %14s" % ("engine", "median ms", "min ms", "max ms", "x barge median"))
for e in engines:
    if e in med:
        m = med[e]
        ratio = "%.2fx" % (m[0] / med["barge"][0]) if "barge" in med else "-"
        print("%-8s %10.1f %10.1f %10.1f %14s" % (e, m[0], m[1], m[2], ratio))
if med:
    print("(%d timed runs each, one hyperfine run)" % next(iter(med.values()))[3])

timing = {}
p = os.path.join(work, "mem")
if os.path.exists(p):
    for l in open(p):
        e, what, n, ms, got = l.split()
        timing[(e, what)] = (int(n), int(ms), int(got))
mem = {}
for e in engines:
    p = os.path.join(work, "mem-" + e)
    if os.path.exists(p):
        rows = [l.split() for l in open(p) if l.strip()]
        if rows:
            mem[e] = rows
print()
print("(b) idle containers: start all, monitor memory per container, rm -f all")
print("%-8s %-14s %4s %10s %10s %9s %9s %9s %9s %10s" % (
    "engine", "monitor", "n", "start all", "per run", "RSS med", "RSS mean", "PSS med", "PSS mean", "rm -f all"))
for e in engines:
    st = timing.get((e, "start"))
    rm = timing.get((e, "rm"))
    rows = mem.get(e, [])
    rss = [int(r[2]) for r in rows]
    pss = [int(r[3]) for r in rows]
    comm = ",".join(sorted({r[1] for r in rows})) or "-"
    kib = lambda v: "%.0f KiB" % v
    print("%-8s %-14s %4d %10s %10s %9s %9s %9s %9s %10s" % (
        e, comm, len(rows),
        "%.2f s" % (st[1] / 1e3) if st else "-",
        "%.0f ms" % (st[1] / max(st[2], 1)) if st else "-",
        kib(statistics.median(rss)) if rss else "-", kib(statistics.mean(rss)) if rss else "-",
        kib(statistics.median(pss)) if pss else "-", kib(statistics.mean(pss)) if pss else "-",
        "%.2f s" % (rm[1] / 1e3) if rm else "-"))
print("(RSS: VmRSS of /proc/PID/status; PSS: /proc/PID/smaps_rollup, file pages shared")
print(" among the monitors count 1/n each; measured with only that engine's containers up)")

print()
print("targets:")
if "barge" in med and "podman" in med:
    f = med["barge"][0] / med["podman"][0]
    print("  barge run --rm median = %.2f of podman's (target <= 0.25): %s" % (f, "met" if f <= 0.25 else "NOT met"))
if "barge" in mem and "podman" in mem:
    b = statistics.median(int(r[2]) for r in mem["barge"])
    c = statistics.median(int(r[2]) for r in mem["podman"])
    print("  barge-monitor RSS median %d KiB vs conmon %d KiB (target: below): %s" % (b, c, "met" if b < c else "NOT met"))
PY
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews these)"
for f in "${failures[@]}"; do echo "FAILED $f"; done
