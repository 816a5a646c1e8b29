#!/usr/bin/env bash
# Runs one of the README's two commands in a brand-new Debian 12 root (debootstrap), so that a
# package the commands forget to install shows up here and not on a user's machine.
#
# usage: scripts/fresh-machine-check.sh run|test [ROOT]      (as root; ROOT default /tmp/pixeld-fresh-root)
#   run    ./dev deps-run, ./dev build, then scripts/run-local.sh --check (the "./dev run" steps,
#          ending once a pageview is in the report and the dashboard API)
#   test   CI=true .ci/run (./dev deps, the short fuzz run, ./dev test)
#
# The root gets what a machine of this kind starts with (Debian 12, Swift's own dependencies, gcc,
# python3, git); Swift and the local Swift package copies are bind-mounted read-only from this
# machine (/opt/swift, /opt/swift-packages, with /etc/gitconfig's url rewrite), as a new machine has
# them. Services are not started by apt (policy-rc.d); the tests start their own. The clone is of this
# repository's HEAD. The root is unmounted at the end and left on disk: rm -rf it afterwards.
set -euo pipefail
mode="${1:?usage: $0 run|test [ROOT]}"
root="${2:-/tmp/pixeld-fresh-root}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ "$(id -u)" = 0 ] || { echo "$0: run as root (debootstrap, chroot, mounts)" >&2; exit 2; }
[ ! -e "$root" ] || { echo "$0: $root exists; remove it first" >&2; exit 2; }
command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; }

debootstrap --variant=minbase \
    --include=binutils,git,gnupg2,libc6-dev,libcurl4-openssl-dev,libedit2,libgcc-12-dev,libpython3-dev,libsqlite3-0,libstdc++-12-dev,libxml2-dev,libncurses-dev,libz3-dev,tzdata,zlib1g-dev,gcc,g++,python3,ca-certificates,procps \
    bookworm "$root" http://deb.debian.org/debian
# The root's mounts are slaves of the host's (--make-rslave), so that unmounting them never reaches
# the host's own /sys or /dev mounts; unmounted without -l, and a busy one is reported, not forced.
cleanup() {
    for m in tmp opt/swift-packages opt/swift dev/pts dev sys proc; do
        if mountpoint -q "$root/$m"; then umount -R "$root/$m" || echo "$0: $root/$m is still mounted (busy)" >&2; fi
    done
}
trap cleanup EXIT
for d in proc sys dev dev/pts opt/swift opt/swift-packages; do mkdir -p "$root/$d"; done
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"; mount --make-rslave "$root/sys"
mount --bind /dev "$root/dev"; mount --make-rslave "$root/dev"; mount --bind /dev/pts "$root/dev/pts"
# /opt/swift-packages (the local copy of the Swift packages) only where the machine has one; without
# it the build clones from the package registries, as a user's would.
for d in /opt/swift /opt/swift-packages; do
    [ -d "$d" ] || continue
    mount --bind "$d" "$root$d"; mount -o remount,bind,ro "$root$d"
done
mount -t tmpfs -o size=8g tmpfs "$root/tmp"
cp /etc/resolv.conf "$root/etc/"
cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/" 2>/dev/null && rm -f "$root/etc/apt/sources.list" || true
cp /etc/apt/apt.conf.d/99artifact-registry "$root/etc/apt/apt.conf.d/" 2>/dev/null || true
cp /etc/gitconfig "$root/etc/gitconfig" 2>/dev/null || true
cp /etc/gitignore "$root/etc/gitignore" 2>/dev/null || true
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"
echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/swift/usr/bin' > "$root/etc/profile.d/swift.sh"
git clone -q "$repo" "$root/root/pixeld"

case "$mode" in
    run)  inner='./dev deps-run && ./dev build && timeout 300 scripts/run-local.sh --check' ;;
    test) inner='CI=true timeout 2400 bash .ci/run' ;;
    *) echo "$0: mode must be run or test" >&2; exit 2 ;;
esac
chroot "$root" /bin/bash -lc "cd /root/pixeld && git log --oneline -1 && date && $inner && date"
