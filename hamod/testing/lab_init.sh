#!/bin/sh
# PID 1 of a lab host (a node or the witness), started by hamod.testing.labhost as
#   ip netns exec NS unshare --mount --uts --ipc --pid --fork --propagation private \
#       --mount-proc sh lab_init.sh
# It gives the host its own hostname and files (overlays whose upper dirs live in the lab's
# state directory), a private /tmp, tmpfs /run and /dev/shm, then starts sshd, runs
# /etc/rc.local as the end of boot does on a real host (if the host has one: the
# hamod_node role's boot start; in the background, output to this boot log) and becomes
# the reaper (labnode.py). Everything it reads from the state directory is read before
# /run is covered. Inputs (environment):
#   HAMOD_LAB_HOST     host name (n1, witness...)
#   HAMOD_LAB_DIR      the host's state directory (upper/, work/, boot/)
#   HAMOD_LAB_PYTHON   python interpreter for the reaper
#   HAMOD_LAB_REAPER   path of labnode.py
#   HAMOD_LAB_FORWARD  1 to turn IPv4 forwarding on (the witness is the nodes' router)
#   HAMOD_LAB_KEEP     colon-separated directories under /tmp or /run (hamod's checkout and
#                      venv) to carry over into the host's fresh /tmp and /run
set -eu
host=${HAMOD_LAB_HOST:?} dir=${HAMOD_LAB_DIR:?}
python=${HAMOD_LAB_PYTHON:?} reaper=${HAMOD_LAB_REAPER:?}
boot=$dir/boot

hostname "$host"

for d in etc var opt srv root home; do
  mkdir -p "$dir/upper/$d" "$dir/work/$d"
  chmod --reference="/$d" "$dir/upper/$d"
  chown --reference="/$d" "$dir/upper/$d"
  mount -t overlay "hamodlab-$d" \
    -o "lowerdir=/$d,upperdir=$dir/upper/$d,workdir=$dir/work/$d" "/$d"
done

# Per-host identity, written through the overlay (kept across reboots).
install -m 644 "$boot/hostname" /etc/hostname
install -m 644 "$boot/hosts" /etc/hosts
install -m 444 "$boot/machine-id" /etc/machine-id
install -d -m 755 /etc/ssh
install -m 600 "$boot/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 644 "$boot/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
install -m 644 "$boot/sshd_config" /etc/ssh/hamod_lab_sshd_config
install -m 644 "$boot/authorized_keys" /etc/ssh/hamod_lab_authorized_keys

if [ "${HAMOD_LAB_FORWARD:-0}" = 1 ]; then
  sysctl -q -w net.ipv4.ip_forward=1
fi

# Directories to carry over are parked on bind mounts under /srv (an overlay now, so
# the parking spots are this host's own) before /tmp and /run are covered, then moved back.
i=0
keep=${HAMOD_LAB_KEEP:-}
for k in $(printf '%s' "$keep" | tr ':' ' '); do
  mkdir -p "/srv/.hamodlab-keep/$i"
  mount --bind "$k" "/srv/.hamodlab-keep/$i"
  i=$((i + 1))
done

mount -t tmpfs -o mode=1777,nosuid,nodev hamodlab-tmp /tmp
# The inherited /run/netns mounts would pin every other namespace while this host lives.
if mountpoint -q /run/netns; then umount -R -l /run/netns; fi
mount -t tmpfs -o mode=755,nosuid,nodev hamodlab-run /run
mount -t tmpfs -o mode=1777,nosuid,nodev hamodlab-shm /dev/shm
mkdir -m 755 /run/sshd

i=0
for k in $(printf '%s' "$keep" | tr ':' ' '); do
  mkdir -p "$k"
  mount --move "/srv/.hamodlab-keep/$i" "$k"
  i=$((i + 1))
done

/usr/sbin/sshd -D -e -f /etc/ssh/hamod_lab_sshd_config &
cd /

# The end of boot, as Debian's /etc/init.d/rc.local and systemd's rc-local.service do:
# /etc/rc.local if executable, in a clean environment, without holding the boot up.
if [ -x /etc/rc.local ]; then
  echo "lab_init: $host: running /etc/rc.local"
  (
    rc=0
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
      HOME=/root /etc/rc.local </dev/null || rc=$?
    echo "lab_init: $host: /etc/rc.local exited $rc"
  ) &
fi
exec "$python" -I -S "$reaper"
