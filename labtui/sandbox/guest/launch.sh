# Runs as root inside a new mount, PID, UTS and IPC namespace (unshare, private mount
# propagation): assembles the machine's root and turns into its init. Nothing mounted here is
# visible on the host, and everything goes away with the namespace.
#   $LT_BASE   the base image (read-only lower layer)
#   $LT_LOWER  optional: the read-only layers, colon-separated, top first, ending with the
#              base image (a machine launched from an image the sandbox captured)
#   $LT_LAYER  the instance folder: upper/ work/ merged/ boot/ seed/ cloud.cfg
#   $LT_NAME   the machine's hostname
set -eu
r="$LT_LAYER/merged"
mount -t overlay overlay -o "lowerdir=${LT_LOWER:-$LT_BASE},upperdir=$LT_LAYER/upper,workdir=$LT_LAYER/work" "$r"

# /proc of the machine's own PID namespace; what would reach the host's kernel is read-only.
mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
for p in sys sysrq-trigger irq bus fs; do
  if [ -e "$r/proc/$p" ]; then
    mount --bind "$r/proc/$p" "$r/proc/$p"
    mount -o remount,bind,ro "$r/proc/$p"
  fi
done
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"

# A private /dev: the harmless character devices and a private pseudo-terminal instance.
mount -t tmpfs -o nosuid,mode=0755,size=1m dev "$r/dev"
for d in null zero full random urandom tty; do
  touch "$r/dev/$d"
  mount --bind "/dev/$d" "$r/dev/$d"
done
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"
ln -s /proc/self/fd/2 "$r/dev/stderr"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$r/dev/shm"
mount -t tmpfs -o nosuid,nodev,mode=0755 run "$r/run"

# What EC2 hands a machine at boot: its identity and user-data (here a NoCloud seed), the
# image's cloud-init settings, and DNS.
mkdir -p "$r/run/labtui" "$r/var/lib/cloud/seed/nocloud" "$r/etc/cloud/cloud.cfg.d"
cp "$LT_LAYER/boot/init.py" "$LT_LAYER/boot/boot.json" "$r/run/labtui/"
cp "$LT_LAYER/seed/user-data" "$LT_LAYER/seed/meta-data" "$r/var/lib/cloud/seed/nocloud/"
chmod 0600 "$r/var/lib/cloud/seed/nocloud/user-data"
cp "$LT_LAYER/cloud.cfg" "$r/etc/cloud/cloud.cfg.d/90_labtui_sandbox.cfg"
rm -f "$r/etc/resolv.conf"
cat /etc/resolv.conf > "$r/etc/resolv.conf" 2>/dev/null || true
hostname "$LT_NAME"

# The machine's root becomes the root; the host's is detached.
cd "$r"
pivot_root . .
umount -l .
cd /

# Root inside the machine keeps what sudo, sshd, chpasswd and apt need, never the
# capabilities that reach past the namespaces (mounts, modules, raw devices, the host's
# network configuration, clock, file handles).
exec /usr/bin/setpriv --inh-caps=-all --bounding-set=-sys_admin,-sys_module,-sys_rawio,-sys_boot,-sys_time,-mknod,-net_admin,-mac_admin,-mac_override,-syslog,-dac_read_search,-linux_immutable,-sys_pacct,-wake_alarm,-block_suspend,-bpf,-perfmon,-checkpoint_restore,-audit_read \
  /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  /usr/bin/python3 -u /run/labtui/init.py
