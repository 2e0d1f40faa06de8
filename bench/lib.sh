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
