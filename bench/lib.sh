# bench/lib.sh — shared by the bench scripts (sourced, not run).

# The peers' default ulimits (podman: nofile=1048576, nproc=4194304) make
# their runtime fail on these VMs ("setrlimit ... Operation not permitted":
# root lacks CAP_SYS_RESOURCE), so the scripts cap them at the caller's hard
# limits (nproc: the runtime sees kernel.pid_max). Sets $nofile and $nproc.
bench_capped_ulimits() {
	local pidmax
	nofile=$(ulimit -Hn)
	nproc=$(ulimit -Hu)
	pidmax=$(cat /proc/sys/kernel/pid_max)
	[ "$nofile" = unlimited ] && nofile=1048576
	{ [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pidmax" ]; } && nproc=$pidmax
	return 0
}

# bench_private_podman DIR: a podman of our own under DIR: containers.conf
# (capped ulimits, no network, cgroupfs and file events: no systemd as PID
# 1 here; tmp_dir and network config under DIR) and storage.conf (own
# graphroot/runroot), exported through CONTAINERS_CONF /
# CONTAINERS_STORAGE_CONF; nothing under /var/lib/containers,
# /run/containers or /run/libpod is touched.
bench_private_podman() {
	local dir=$1
	bench_capped_ulimits
	cat >"$dir/containers.conf" <<C
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
netns = "none"
log_driver = "k8s-file"
[network]
network_config_dir = "$dir/networks"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$dir/tmp"
C
	cat >"$dir/storage.conf" <<C
[storage]
driver = "overlay"
graphroot = "$dir/root"
runroot = "$dir/run"
C
	export CONTAINERS_CONF=$dir/containers.conf CONTAINERS_STORAGE_CONF=$dir/storage.conf
}

# bench_barge_bin: builds the release binaries unless $BUILD is 0, then sets
# $BARGE (BARGE_BIN, else target/.../release/barge) and checks that
# barge-monitor and barge-runc sit next to it. Needs $repo and die().
bench_barge_bin() {
	if [ "$BUILD" = 1 ]; then
		echo "# building barge, barge-monitor, barge-runc (release)" >&2
		(cd "$repo" && cargo build --release --workspace --bins >&2)
	fi
	local target_dir=${CARGO_TARGET_DIR:-$repo/target} b
	BARGE=${BARGE_BIN:-$target_dir/x86_64-unknown-linux-gnu/release/barge}
	[ -x "$BARGE" ] || die "$BARGE not found (cargo build --release --workspace --bins, or set BARGE_BIN)"
	for b in barge-monitor barge-runc; do
		[ -x "$(dirname "$BARGE")/$b" ] || die "$b is not next to $BARGE (cargo build --release --workspace --bins)"
	done
}

# podman with cgroupfs leaves libpod_parent cgroups behind: note whether
# they were there before (bench_podman_cgroups_mark) and, at exit, remove
# them if they were not (rmdir refuses while anything is in use).
bench_podman_cgroups_mark() {
	podman_cgroups_before=0
	compgen -G '/sys/fs/cgroup/*/libpod_parent' >/dev/null && podman_cgroups_before=1
	return 0
}
bench_podman_cgroups_cleanup() {
	local m
	[ "${podman_cgroups_before:-1}" = 0 ] || return 0
	for m in /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/libpod_parent; do
		[ -d "$m" ] || continue
		rmdir "$m/conmon" 2>/dev/null
		rmdir "$m" 2>/dev/null
	done
	return 0
}

# bench_umount_under DIR: unmounts whatever is still mounted under DIR
# (overlays, shm), deepest first.
bench_umount_under() {
	local m
	for m in $(awk -v w="$1" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	return 0
}

# check NAME CMD...: one untimed real run; on failure the command and its
# error are added to the caller's failures array and printed.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		return 0
	fi
	failures+=("$name: \`$*\` failed: $(printf '%s' "$out" | tail -3 | tr '\n' ' ')")
	echo "${0##*/}: FAILED $name: $* -> $(printf '%s' "$out" | tail -3)" >&2
	return 1
}
