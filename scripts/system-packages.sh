#!/bin/sh
# Install (as root) or name (otherwise) the Debian packages that meshhub's
# tests drive for real: nginx in front of the portal, Chromium for the
# accessibility checks, the network daemons a node runs, and QEMU + mmdebstrap +
# ovmf to build and boot a whole node image (image base, image try).
set -eu
PACKAGES="qemu-system-x86 qemu-utils mmdebstrap ovmf nginx chromium babeld dnsmasq-base nftables hostapd iw iproute2 udhcpc busybox sqlite3 mtools dosfstools e2fsprogs fdisk wrk curl prometheus poppler-utils zbar-tools systemd openssh-client"
missing=""
for pkg in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "meshhub: installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
else
    echo "meshhub: tests that need these Debian packages will be skipped:$missing"
    echo "meshhub: to run them too: sudo apt-get install$missing"
fi
