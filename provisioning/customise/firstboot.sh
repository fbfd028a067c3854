#!/bin/sh
# meshhub first-boot hook, written onto the boot partition by 'meshhub-provision customise'.
#
# Contract with the node image (docs/customising.md, "The first-boot hook"):
# - run once as root at first boot, after local file systems are mounted and before
#   the meshhub services start: sh /boot/firmware/meshhub/firstboot.sh
#   (the folder may also be /boot/meshhub; the hook finds its files next to itself);
# - exit 0: installed (or nothing to do); non-zero: nothing usable was installed, the
#   reason is in firstboot.log next to this script (readable on any laptop);
# - MESHHUB_ROOT (default /) prefixes every installed path (tests use a temp folder);
#   MESHHUB_CONFIG (default /etc/meshhub/node.toml) and MESHHUB_DATA_DIR (default
#   /var/lib/meshhub, node.toml's node.data_dir) say where things go.
# It installs node.toml, identity.key (mode 0600, never replacing a different key),
# and registry/anchors.json + registry/snapshot.json, after checking SHA256SUMS;
# then deletes identity.key from the boot partition and leaves an "installed" mark.
# When the card carries the community's roaming.secret or mesh.key (the 802.11s SAE
# password), each is installed (0600) beside the key and deleted from the boot partition
# the same way. The node's HTTPS certificate
# (tls.crt, tls.key: made by customise, its fingerprint is on the poster) goes to
# $DATA/tls/node.crt (0644) and node.key (0600) unless the node already has one; tls.key
# is deleted from the boot partition too.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${MESHHUB_ROOT:-}
CONFIG=$ROOT${MESHHUB_CONFIG:-/etc/meshhub/node.toml}
DATA=$ROOT${MESHHUB_DATA_DIR:-/var/lib/meshhub}
LOG=$HERE/firstboot.log

log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*" >>"$LOG"; echo "meshhub-firstboot: $*"; }
fail() { log "FAILED: $*"; exit 1; }

if [ -e "$HERE/installed" ]; then
    log "already installed on $(cat "$HERE/installed"); nothing to do"
    exit 0
fi
cd "$HERE" || fail "cannot enter $HERE"
sha256sum -c --quiet SHA256SUMS >>"$LOG" 2>&1 \
    || fail "a file in $HERE does not match SHA256SUMS: the card is damaged; customise it again"

umask 077
mkdir -p "$(dirname "$CONFIG")" "$DATA/registry" || fail "cannot create $(dirname "$CONFIG") or $DATA"
if [ -e "$DATA/identity.key" ] && ! cmp -s identity.key "$DATA/identity.key"; then
    fail "$DATA/identity.key exists and is a different key; move it away to re-provision"
fi
for pair in "node.toml:$CONFIG" "identity.key:$DATA/identity.key" \
            "anchors.json:$DATA/registry/anchors.json" "snapshot.json:$DATA/registry/snapshot.json"; do
    src=${pair%%:*}
    dst=${pair#*:}
    cp "$src" "$dst.meshhub-new" && sync && mv -f "$dst.meshhub-new" "$dst" \
        || fail "cannot install $src as $dst"
done
for secret in roaming.secret mesh.key; do
    [ -e "$secret" ] || continue
    cp "$secret" "$DATA/$secret.meshhub-new" && sync \
        && mv -f "$DATA/$secret.meshhub-new" "$DATA/$secret" \
        || fail "cannot install $secret as $DATA/$secret"
    chmod 0600 "$DATA/$secret"
done
if [ -e tls.crt ] && [ -e tls.key ] && [ ! -e "$DATA/tls/node.crt" ]; then
    mkdir -p "$DATA/tls" && chmod 0755 "$DATA/tls" \
        && cp tls.key "$DATA/tls/node.key.meshhub-new" && cp tls.crt "$DATA/tls/node.crt.meshhub-new" \
        && chmod 0600 "$DATA/tls/node.key.meshhub-new" && chmod 0644 "$DATA/tls/node.crt.meshhub-new" \
        && sync && mv -f "$DATA/tls/node.key.meshhub-new" "$DATA/tls/node.key" \
        && mv -f "$DATA/tls/node.crt.meshhub-new" "$DATA/tls/node.crt" \
        || fail "cannot install tls.crt and tls.key into $DATA/tls"
fi
chmod 0644 "$CONFIG"
chmod 0600 "$DATA/identity.key"
if id meshhub >/dev/null 2>&1; then
    chown -R meshhub: "$DATA" || fail "cannot hand $DATA to the meshhub user"
fi
rm -f identity.key roaming.secret mesh.key tls.key && sync
date -u +%Y-%m-%dT%H:%M:%SZ >"$HERE/installed"
log "installed node.toml, the node key and registry snapshot into $CONFIG and $DATA"
exit 0
