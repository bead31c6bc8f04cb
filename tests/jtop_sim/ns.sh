#!/bin/bash
# Run a command against a fake Jetson tree inside a PRIVATE mount namespace, so the real
# jetson-stats service and client see a simulated board. Start it as root with
#   unshare -m bash tests/jtop_sim/ns.sh CMD...
# Environment:
#   SIM_DIR  scratch folder: SIM_DIR/root holds the tree (sys, proc, etc/...), overlays go in SIM_DIR/ov
#   PY_PREFIX  the Python base prefix that the jtop service writes its config under
# Nothing outside SIM_DIR changes: /etc, /usr/bin and PY_PREFIX get overlays whose upper layers live
# in SIM_DIR, /run is a fresh tmpfs, and /sys and /proc are bind mounts of the fake tree. All of it
# disappears with the namespace.
set -euo pipefail
: "${SIM_DIR:?}" "${PY_PREFIX:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
mount --make-rprivate /
overlay() {  # overlay LOWER NAME: writes under LOWER go to SIM_DIR/ov/NAME
  mkdir -p "$SIM_DIR/ov/$2/upper" "$SIM_DIR/ov/$2/work"
  mount -t overlay overlay -o "lowerdir=$1,upperdir=$SIM_DIR/ov/$2/upper,workdir=$SIM_DIR/ov/$2/work" "$1"
}
overlay /etc etc
overlay /usr/bin usrbin
overlay "$PY_PREFIX" pyprefix
grep -q '^jtop:' /etc/group || echo "jtop:x:$((RANDOM % 1000 + 40000)):" >> /etc/group
cp "$SIM_DIR/root/etc/nv_tegra_release" /etc/nv_tegra_release
cp "$SIM_DIR/root/etc/nvpmodel.conf" /etc/nvpmodel.conf
cp "$HERE/tools/jetson_clocks" /usr/bin/jetson_clocks
mount -t tmpfs tmpfs /run
awk -F'[: ]' '/pmode/ {print $2 + 0}' "$SIM_DIR/root/var/lib/nvpmodel/status" > /run/nvp_state
mount --bind "$SIM_DIR/root/sys" /sys
mount --bind "$SIM_DIR/root/proc" /proc
export PATH="$HERE/tools:$PATH"
exec "$@"
