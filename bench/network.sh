#!/usr/bin/env bash
# bench/network.sh — container networking: barge vs podman (netavark).
#
# In one run, on the same busybox image (private stores, nothing system-wide
# kept), barge's default `bridge` network against a private podman bridge
# network (`podman network create --subnet 10.89.77.0/24 --gateway 10.89.77.1 --disable-dns
# barge-bench-net`, netavark backend, its config under the scratch dir):
#  (1) start time of a container on a bridge network, one hyperfine run:
#        barge --root R run --rm busybox true                  (default bridge)
#        podman run --rm --network barge-bench-net IMG true
#        barge --root R run --rm --network none busybox true   (reference row)
#      then each median and barge/podman.
#  (2) request throughput to busybox httpd (1 KiB index.html) with ab
#      (`ab -n REQUESTS -c CONCURRENCY`, no keep-alive, the only mode of busybox
#      httpd), each path REPEAT (3) times, round-robin over the paths; the
#      median requests/s and its share of the engine's direct path; one
#      httpd container per path (paths sharing a server interfere, see (2)):
#        barge  (`run -d -p 0.0.0.0:P:80`):
#          direct    the container's IP:80 (inspect .NetworkSettings.IPAddress)
#          nftables  the bridge's gateway IP:P (DNAT by barge's nftables table)
#          proxy     127.0.0.1:P (the userspace proxy in barge-monitor)
#        podman (`run -d --network barge-bench-net -p P2:80`):
#          direct    the container's IP:80
#          gateway   10.89.77.1:P2 (netavark's iptables DNAT)
#          loopback  127.0.0.1:P2 (netavark's DNAT in OUTPUT, route_localnet)
# Finally a table, and the targets: barge's bridge `run --rm` median at most
# 0.5 of podman's; barge's nftables path within 10% of its direct path.
#
# usage: sudo bench/network.sh [--no-build] [--runs N] [--warmup N]
#                              [--requests N] [--concurrency N]
#   --no-build  do not run `cargo build --release --workspace --bins`
#               (implied by BARGE_BIN)
# env: RUNS (20), WARMUP (3), REQUESTS (20000), CONCURRENCY (16), REPEAT (3),
#      PODMAN (podman), BARGE_BIN (default
#      target/x86_64-unknown-linux-gnu/release/barge; barge-monitor and
#      barge-runc must sit next to it), WORKDIR_BASE (/var/tmp: a disk
#      filesystem that supports overlayfs), CARGO_TARGET_DIR.
# Removed at exit, by name/id: every container, podman's network (and its
# bridge, if netavark left it), barge's default bridge and its nftables table
# (names from R/networks/bridge/network.json), both stores and the scratch dir.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

RUNS=${RUNS:-20}
WARMUP=${WARMUP:-3}
REQUESTS=${REQUESTS:-20000}
CONCURRENCY=${CONCURRENCY:-16}
REPEAT=${REPEAT:-3}
BUILD=1
[ -n "${BARGE_BIN:-}" ] && BUILD=0

while [ $# -gt 0 ]; do
	case $1 in
	--no-build) BUILD=0 ;;
	--runs) RUNS=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	--requests) REQUESTS=$2; shift ;;
	--concurrency) CONCURRENCY=$2; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "network.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

die() { echo "network.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (containers, bridges, nftables, podman's rootful store)"
command -v hyperfine >/dev/null || die "hyperfine missing: apt-get install -y hyperfine"
command -v python3 >/dev/null || die "python3 missing: apt-get install -y python3"
command -v ab >/dev/null || die "ab missing: apt-get install -y apache2-utils"
command -v curl >/dev/null || die "curl missing: apt-get install -y curl"
command -v nft >/dev/null || die "nft missing: apt-get install -y nftables"
command -v ip >/dev/null || die "ip missing: apt-get install -y iproute2"
PODMAN=${PODMAN:-$(command -v podman || true)}
[ -n "$PODMAN" ] && [ -x "$PODMAN" ] || die "podman missing: apt-get install -y podman"

bench_barge_bin

# ---- scratch: barge root, podman store and network config, rootfs; removed at exit
mkdir -p "${WORKDIR_BASE:-/var/tmp}"
work=$(mktemp -d "${WORKDIR_BASE:-/var/tmp}/barge-bench-network.XXXXXX")
BR=$work/barge-root
PD=$work/podman
mkdir -p "$BR" "$PD"

# podman, private (bench/lib.sh), with the netavark backend chosen explicitly
# (podman 4.3 would otherwise pick CNI when /etc/cni/net.d has configs) and
# its network config in $PD/networks; its run dir (netavark's locks) is
# tmp_dir, also under $PD. netns stays "none" by default: every podman
# command here passes --network.
bench_private_podman "$PD"
sed -i '/^\[network\]$/a network_backend = "netavark"' "$PD/containers.conf"
PNET=barge-bench-net
PSUBNET=10.89.77.0/24
PGW=10.89.77.1

bench_podman_cgroups_mark

pnet_made=0
pbridge=
cleanup() {
	set +e
	local m ids br table
	ids=$("$BARGE" --root "$BR" ps -aq 2>/dev/null)
	# shellcheck disable=SC2086
	[ -n "$ids" ] && "$BARGE" --root "$BR" rm -f $ids >/dev/null 2>&1
	if [ -f "$BR/networks/bridge/network.json" ]; then
		read -r br table < <(python3 -c 'import json,sys; n=json.load(open(sys.argv[1])); print(n.get("bridge",""), n.get("table",""))' "$BR/networks/bridge/network.json")
		[ -n "$br" ] && ip link show "$br" >/dev/null 2>&1 && ip link delete "$br"
		[ -n "$table" ] && nft list table ip "$table" >/dev/null 2>&1 && nft delete table ip "$table"
	fi
	"$PODMAN" rm -af -t 0 >/dev/null 2>&1
	[ "$pnet_made" = 1 ] && "$PODMAN" network rm -f "$PNET" >/dev/null 2>&1
	[ -n "$pbridge" ] && ip link show "$pbridge" >/dev/null 2>&1 && ip link delete "$pbridge"
	"$PODMAN" rmi -af >/dev/null 2>&1
	bench_umount_under "$work"
	rm -rf "$work"
	bench_podman_cgroups_cleanup
}
trap cleanup EXIT

failures=()

# ---- the image: busybox rootfs imported into barge, saved into podman
bash "$repo/scripts/make-test-bundle.sh" "$work/bundle" >/dev/null
tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
"$BARGE" --root "$BR" import "$work/rootfs.tar" busybox >/dev/null
"$BARGE" --root "$BR" save busybox | "$PODMAN" load -q >/dev/null
IMG_P=$("$PODMAN" images --format '{{.Repository}}:{{.Tag}}' | head -1)
[ -n "$IMG_P" ] || die "podman load of barge's saved busybox left no image"

"$PODMAN" network create --subnet "$PSUBNET" --gateway "$PGW" --disable-dns "$PNET" >/dev/null ||
	die "podman network create $PNET failed"
pnet_made=1
pbridge=$("$PODMAN" network inspect -f '{{.NetworkInterface}}' "$PNET")
[ -f "$PD/networks/$PNET.json" ] || die "podman's network config is not in $PD/networks (backend: $("$PODMAN" info -f '{{.Host.NetworkBackend}}'))"
echo "# barge $("$BARGE" --version | awk '{print $2}'), $("$PODMAN" --version) ($("$PODMAN" info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null) runtime, $("$PODMAN" info -f '{{.Host.NetworkBackend}}') network backend, bridge $pbridge), work dir $work" >&2

# ---- (1) run --rm IMG true on a bridge network, one hyperfine run
declare -A cmd=(
	[barge-bridge]="$BARGE --root $BR run --rm busybox true"
	[podman-bridge]="$PODMAN run --rm --network $PNET $IMG_P true"
	[barge-none]="$BARGE --root $BR run --rm --network none busybox true"
)
args=(-N --runs "$RUNS" --warmup "$WARMUP" --export-json "$work/run-rm.json")
for n in barge-bridge podman-bridge barge-none; do
	# shellcheck disable=SC2086
	check "$n" ${cmd[$n]} && args+=(-n "$n" "${cmd[$n]}")
done
# the bridge and its table exist now (the first bridge run made them)
BGW=
if [ -f "$BR/networks/bridge/network.json" ]; then
	read -r BBRIDGE BTABLE BGW BSUBNET < <(python3 -c 'import json,sys; n=json.load(open(sys.argv[1])); print(n["bridge"], n["table"], n["gateway"], n["subnet"])' "$BR/networks/bridge/network.json")
	echo "# barge's default bridge: $BBRIDGE, nftables table ip $BTABLE, gateway $BGW, subnet $BSUBNET" >&2
else
	failures+=("barge: no $BR/networks/bridge/network.json after a run on the default bridge")
fi
if [ "${#args[@]}" -gt 6 ]; then
	echo >&2
	echo "# ---- (1) run --rm IMAGE true: $RUNS runs (+$WARMUP warmup) each" >&2
	hyperfine "${args[@]}" >&2 || failures+=("run --rm: hyperfine run failed (see above)")
fi

# ---- (2) ab through published ports
# One httpd container per path: paths to the same container share the
# server's 4-tuples (a DNATed connection reaches it exactly as a direct one
# from the gateway does), and the TCP timestamps of the two differ (their
# offset is keyed by the address the client dialled), so a run on one path
# right after another finds the server's TIME_WAIT sockets refusing its SYNs
# and falls to a few hundred req/s (seen here). Runs of the same path do not.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
used_ports=" "
new_port() {
	local p
	p=$(free_port)
	while [[ "$used_ports" == *" $p "* ]]; do p=$(free_port); done
	used_ports+="$p "
	echo "$p"
}
HTTPD='mkdir -p /www && head -c 1024 /dev/zero > /www/index.html && exec httpd -f -p 80 -h /www'

# wait_http URL: until it answers 200 (5 s)
wait_http() {
	local i
	for i in $(seq 50); do
		curl -fs -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.1
	done
	return 1
}

paths=() # "engine path url"
# httpd ENGINE PATH: start a container for PATH, add its url to paths
httpd() {
	local e=$1 name=$2 port id cip url
	port=$(new_port)
	if [ "$e" = barge ]; then
		id=$("$BARGE" --root "$BR" run -d -p "0.0.0.0:$port:80" busybox sh -c "$HTTPD" 2>"$work/err") ||
			{ failures+=("barge $name: run -d of httpd failed: $(tail -3 "$work/err" | tr '\n' ' ')"); return 0; }
		cip=$("$BARGE" --root "$BR" inspect -f '{{.NetworkSettings.IPAddress}}' "$id")
		case $name in
		direct) url=http://$cip:80 ;;
		nftables) url=http://$BGW:$port ;;
		proxy) url=http://127.0.0.1:$port ;;
		esac
	else
		id=$("$PODMAN" run -d --network "$PNET" -p "$port:80" "$IMG_P" sh -c "$HTTPD" 2>"$work/err") ||
			{ failures+=("podman $name: run -d of httpd failed: $(tail -3 "$work/err" | tr '\n' ' ')"); return 0; }
		cip=$("$PODMAN" inspect -f "{{(index .NetworkSettings.Networks \"$PNET\").IPAddress}}" "$id")
		case $name in
		direct) url=http://$cip:80 ;;
		gateway) url=http://$PGW:$port ;;
		loopback) url=http://127.0.0.1:$port ;;
		esac
	fi
	echo "# $e $name: httpd ${id:0:12} at $cip, published on 0.0.0.0:$port; ab on $url" >&2
	if wait_http "$url/index.html"; then
		paths+=("$e $name $url/index.html")
	else
		failures+=("$e $name: $url/index.html does not answer")
	fi
}
httpd barge direct
if [ -n "$BGW" ]; then httpd barge nftables; fi
httpd barge proxy
httpd podman direct
httpd podman gateway
httpd podman loopback

echo >&2
echo "# ---- (2) ab -n $REQUESTS -c $CONCURRENCY, $REPEAT rounds over ${#paths[@]} paths" >&2
: >"$work/ab"
for r in $(seq "$REPEAT"); do
	for p in "${paths[@]}"; do
		read -r e name url <<<"$p"
		if ab -q -n "$REQUESTS" -c "$CONCURRENCY" "$url" >"$work/ab.out" 2>&1; then
			rps=$(awk '/^Requests per second:/{print $4}' "$work/ab.out")
			fail=$(awk '/^Failed requests:/{print $3}' "$work/ab.out")
			non2xx=$(awk '/^Non-2xx responses:/{print $3}' "$work/ab.out")
			echo "$e $name $url $rps ${fail:-0} ${non2xx:-0}" >>"$work/ab"
			echo "# round $r: $e $name $url: $rps req/s, failed ${fail:-0}, non-2xx ${non2xx:-0}" >&2
		else
			failures+=("$e $name: ab $url failed: $(tail -2 "$work/ab.out" | tr '\n' ' ')")
			echo "network.sh: ab $url failed: $(tail -2 "$work/ab.out")" >&2
		fi
	done
done

# ---- table
echo
python3 - "$work" "$REQUESTS" "$CONCURRENCY" <<'PY'
import json, os, statistics, sys
work, n, c = sys.argv[1], sys.argv[2], sys.argv[3]
med = {}
p = os.path.join(work, "run-rm.json")
if os.path.exists(p):
    for r in json.load(open(p))["results"]:
        med[r["command"]] = (r["median"] * 1e3, r["min"] * 1e3, r["max"] * 1e3, len(r["times"]))
print("(1) run --rm IMAGE true")
print("%-16s %10s %10s %10s %16s" % ("engine - network", "median ms", "min ms", "max ms", "x podman bridge"))
for k in ("barge-bridge", "podman-bridge", "barge-none"):
    if k in med:
        m = med[k]
        ratio = "%.2fx" % (m[0] / med["podman-bridge"][0]) if "podman-bridge" in med else "-"
        print("%-16s %10.1f %10.1f %10.1f %16s" % (k, m[0], m[1], m[2], ratio))
if med:
    print("(%d timed runs each, one hyperfine run)" % next(iter(med.values()))[3])

rows = {}
order = []
p = os.path.join(work, "ab")
for l in open(p):
    e, name, url, rps, fail, non2xx = l.split()
    k = (e, name)
    if k not in rows:
        rows[k] = {"url": url, "rps": [], "fail": 0}
        order.append(k)
    rows[k]["rps"].append(float(rps))
    rows[k]["fail"] += int(fail) + int(non2xx)
print()
print("(2) ab -n %s -c %s, 1 KiB index.html from busybox httpd, no keep-alive" % (n, c))
print("%-7s %-9s %-36s %12s %10s %10s %8s" % ("engine", "path", "url", "req/s median", "min", "max", "% direct"))
rmed = {}
for k in order:
    r = rows[k]
    rmed[k] = statistics.median(r["rps"])
for k in order:
    r = rows[k]
    d = rmed.get((k[0], "direct"))
    pct = "%.1f%%" % (100 * rmed[k] / d) if d else "-"
    print("%-7s %-9s %-36s %12.0f %10.0f %10.0f %8s%s" % (
        k[0], k[1], r["url"], rmed[k], min(r["rps"]), max(r["rps"]), pct,
        "  (%d failed/non-2xx)" % r["fail"] if r["fail"] else ""))
print("(%d runs per path, round-robin)" % max((len(r["rps"]) for r in rows.values()), default=0))

print()
print("targets:")
if "barge-bridge" in med and "podman-bridge" in med:
    f = med["barge-bridge"][0] / med["podman-bridge"][0]
    print("  barge run --rm on its bridge: %.1f ms = %.2f of podman's %.1f ms (target <= 0.5): %s" % (
        med["barge-bridge"][0], f, med["podman-bridge"][0], "met" if f <= 0.5 else "NOT met"))
else:
    print("  run --rm: not measured")
if ("barge", "nftables") in rmed and ("barge", "direct") in rmed:
    f = rmed[("barge", "nftables")] / rmed[("barge", "direct")]
    print("  barge nftables path: %.0f req/s = %.1f%% of direct %.0f (target >= 90%%): %s" % (
        rmed[("barge", "nftables")], 100 * f, rmed[("barge", "direct")], "met" if f >= 0.9 else "NOT met"))
else:
    print("  nftables path: not measured")
PY
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews these)"
for f in "${failures[@]}"; do echo "FAILED $f"; done
