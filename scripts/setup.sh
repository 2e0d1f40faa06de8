#!/usr/bin/env bash
# scripts/setup.sh — from a fresh Debian 12 machine to a container run by barge-runc.
#
#   1. installs the Debian packages Barge needs to build and test (build deps,
#      busybox-static, and the peers the tests drive: runc, crun, podman,
#      containerd, hyperfine, ...), via sudo unless already root;
#   2. builds target/x86_64-unknown-linux-gnu/release/{barge,barge-monitor,barge-runc};
#   3. makes a busybox OCI bundle at /tmp/barge-bundle (scripts/make-test-bundle.sh)
#      and imports its rootfs as the image `busybox` (`barge import`, store
#      /var/lib/barge);
#   4. runs the bundle: `sudo target/x86_64-unknown-linux-gnu/release/barge-runc run --bundle /tmp/barge-bundle demo`,
#      then a container from the image: `barge run --rm busybox sh -c 'echo hello ...'`,
#      which prints a hello from inside the container.
#
# usage: ./scripts/setup.sh [--deps-only]
#   --deps-only   only step 1 (.ci/run uses this)
# env: BUNDLE (default /tmp/barge-bundle), CARGO_TARGET_DIR
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

# Everything the build, the tests (tests/podman.rs, tests/containerd.rs) and
# bench/ use. Debian 12 package names.
PACKAGES=(
	build-essential pkg-config libseccomp-dev
	busybox-static
	runc crun
	podman conmon containernetworking-plugins golang-github-containers-common skopeo umoci buildah
	containerd
	hyperfine time jq python3
	tmux bsdutils util-linux procps iproute2 iptables kmod
	tar gzip zstd ca-certificates git bats
	tini
	docker-registry apache2-utils openssl curl nftables
)

echo "==> installing Debian packages: ${PACKAGES[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
[ "${1:-}" = --deps-only ] && exit 0

# Rust comes from rustup: Debian 12's cargo is older than our rust-version (1.80).
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
	export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
	cat >&2 <<'MSG'
setup.sh: cargo not found. Install Rust (>= 1.80) with rustup:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    . "$HOME/.cargo/env"
then run ./scripts/setup.sh again.
MSG
	exit 1
fi

echo "==> cargo build --release --workspace --bins (barge, barge-monitor, barge-runc)"
cargo build --release --workspace --bins
BIN=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/barge-runc
BIN=$(realpath "$BIN")
BARGE=$(realpath "${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/barge")

BUNDLE=${BUNDLE:-/tmp/barge-bundle}
echo "==> making a busybox bundle at $BUNDLE"
# shellcheck disable=SC2016 # expanded by the sh inside the container
$SUDO bash scripts/make-test-bundle.sh "$BUNDLE" sh -c 'echo "hello from inside barge-runc: $(hostname), pid $$"'

echo "==> a busybox image in the store (${BARGE_ROOT:-/var/lib/barge}): barge import"
tar -C "$BUNDLE/rootfs" -c . | $SUDO "$BARGE" import -c 'CMD ["sh"]' - busybox
$SUDO "$BARGE" images busybox

echo "==> $SUDO $BIN run --bundle $BUNDLE demo   (the OCI runtime alone)"
$SUDO "$BIN" delete --force demo >/dev/null 2>&1 || true
out=$($SUDO "$BIN" run --bundle "$BUNDLE" demo) || {
	echo "setup.sh: barge-runc run failed (exit $?)" >&2
	exit 1
}
printf '%s\n' "$out"
if ! grep -q "hello from inside" <<<"$out"; then
	echo "setup.sh: barge-runc exited 0 but the container printed no hello" >&2
	exit 1
fi

echo "==> $SUDO barge run --rm busybox ...   (the engine: image, monitor, runtime)"
# shellcheck disable=SC2016 # expanded by the sh inside the container
out=$($SUDO "$BARGE" run --rm busybox sh -c 'echo "hello from a barge container: $(hostname), pid $$"') || {
	echo "setup.sh: barge run failed (exit $?)" >&2
	exit 1
}
printf '%s\n' "$out"
if ! grep -q "hello from a barge container" <<<"$out"; then
	echo "setup.sh: barge run exited 0 but the container printed no hello" >&2
	exit 1
fi
echo "==> done: a busybox image made, and barge ran containers from it. Try: sudo $BARGE run -it busybox sh. Tests: sudo .ci/run (see README.md)"
