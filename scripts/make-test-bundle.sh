#!/bin/bash
# make-test-bundle.sh DIR [ARGS...]
#
# Makes an OCI bundle at DIR for tests, benchmarks and the README:
#   DIR/rootfs      static busybox as /bin/busybox + a symlink per applet,
#                   /etc/passwd, /etc/group, empty /proc /sys /dev /tmp /root
#   DIR/config.json close to `runc spec`'s default, but non-terminal, with
#                   process.args = ARGS (default: ["sh"])
#
# The rootfs is built once into a cache directory (BARGE_TEST_ROOTFS_CACHE,
# default /var/tmp/barge-test-rootfs-<busybox size>-<mtime>) and copied from
# there, so repeated calls are fast. Running it again on an existing bundle
# keeps the rootfs and rewrites config.json. Needs no OCI runtime installed.
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
	echo "usage: $0 DIR [ARGS...]" >&2
	exit 2
fi
dir=$1
shift
[ $# -gt 0 ] || set -- sh

busybox=${BUSYBOX:-/bin/busybox}
is_static() { [ -x "$1" ] && ! LC_ALL=C ldd "$1" >/dev/null 2>&1; }
if ! is_static "$busybox"; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "make-test-bundle: installing busybox-static" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >&2
		busybox=/bin/busybox
	fi
	if ! is_static "$busybox"; then
		echo "make-test-bundle: $busybox is missing or not static (apt-get install busybox-static)" >&2
		exit 1
	fi
fi

build_rootfs() { # $1 = target dir
	local r=$1 applet
	mkdir -p "$r"/{bin,etc,proc,sys,dev,tmp,root,home/user}
	chmod 1777 "$r/tmp"
	chmod 700 "$r/root"
	cp "$busybox" "$r/bin/busybox"
	chmod 755 "$r/bin/busybox"
	for applet in $("$busybox" --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$r/bin/$applet"
	done
	cat >"$r/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
	cat >"$r/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
user:x:1000:
nogroup:x:65534:
GROUP
	chown 1000:1000 "$r/home/user"
}

cache=${BARGE_TEST_ROOTFS_CACHE:-/var/tmp/barge-test-rootfs-$(stat -c %s-%Y "$busybox")}
if [ ! -x "$cache/bin/busybox" ]; then
	mkdir -p "$(dirname "$cache")"
	tmp=$(mktemp -d "$cache.tmp.XXXXXX")
	build_rootfs "$tmp"
	chmod 755 "$tmp"
	# Atomic publish; a concurrent builder may have won the race.
	mv -T "$tmp" "$cache" 2>/dev/null || rm -rf "$tmp"
fi

mkdir -p "$dir"
if [ ! -x "$dir/rootfs/bin/busybox" ]; then
	rm -rf "$dir/rootfs.tmp"
	# A real copy (not hard links), so tests may chown/modify their rootfs.
	cp -a --reflink=auto "$cache" "$dir/rootfs.tmp"
	rm -rf "$dir/rootfs"
	mv -T "$dir/rootfs.tmp" "$dir/rootfs"
fi

json_str() { # JSON string literal of $1
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\t'/\\t}
	s=${s//$'\r'/\\r}
	printf '"%s"' "$s"
}
args=""
for a in "$@"; do
	args+="${args:+, }$(json_str "$a")"
done

cat >"$dir/config.json.tmp" <<JSON
{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": false,
		"user": {
			"uid": 0,
			"gid": 0
		},
		"args": [
			$args
		],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"effective": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"permitted": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"ambient": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			]
		},
		"rlimits": [
			{
				"type": "RLIMIT_NOFILE",
				"hard": 1024,
				"soft": 1024
			}
		],
		"noNewPrivileges": true
	},
	"root": {
		"path": "rootfs",
		"readonly": true
	},
	"hostname": "runc",
	"mounts": [
		{
			"destination": "/proc",
			"type": "proc",
			"source": "proc"
		},
		{
			"destination": "/dev",
			"type": "tmpfs",
			"source": "tmpfs",
			"options": ["nosuid", "strictatime", "mode=755", "size=65536k"]
		},
		{
			"destination": "/dev/pts",
			"type": "devpts",
			"source": "devpts",
			"options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
		},
		{
			"destination": "/dev/shm",
			"type": "tmpfs",
			"source": "shm",
			"options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
		},
		{
			"destination": "/dev/mqueue",
			"type": "mqueue",
			"source": "mqueue",
			"options": ["nosuid", "noexec", "nodev"]
		},
		{
			"destination": "/sys",
			"type": "sysfs",
			"source": "sysfs",
			"options": ["nosuid", "noexec", "nodev", "ro"]
		},
		{
			"destination": "/sys/fs/cgroup",
			"type": "cgroup",
			"source": "cgroup",
			"options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
		}
	],
	"linux": {
		"resources": {
			"devices": [
				{
					"allow": false,
					"access": "rwm"
				}
			]
		},
		"namespaces": [
			{ "type": "pid" },
			{ "type": "network" },
			{ "type": "ipc" },
			{ "type": "uts" },
			{ "type": "mount" }
		],
		"maskedPaths": [
			"/proc/acpi",
			"/proc/asound",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/sys/firmware",
			"/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger"
		]
	}
}
JSON
mv -f "$dir/config.json.tmp" "$dir/config.json"
