#!/usr/bin/env bash
# The main job on the embedded default, as far as this build goes: a private swtpm as the vTPM, a
# LUKS2 volume in an image file, and cvmcrypt's boot plan for them. Everything lives in a temporary
# directory and the swtpm we start is stopped by its pid on exit.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/deps.sh
scripts/build.sh build
cvm=$top/build/cvmcrypt

work=$(mktemp -d /tmp/cvmcrypt-demo.XXXXXX)
cleanup() {
        [ -s "$work/swtpm.pid" ] && kill "$(cat "$work/swtpm.pid")" 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT

echo "== starting a private swtpm (the vTPM) in $work"
swtpm socket --tpm2 --server "type=unixio,path=$work/tpm" --ctrl "type=unixio,path=$work/tpm.ctrl" \
        --flags not-need-init,startup-clear --tpmstate "dir=$work" --daemon --pid "file=$work/swtpm.pid"
for _ in $(seq 100); do [ -S "$work/tpm" ] && break; sleep 0.05; done
tcti="swtpm:path=$work/tpm"

echo "== making a LUKS2 root volume image (passphrase from a 0600 key file, never argv)"
truncate -s 64M "$work/root.img"
(umask 077 && head -c 32 /dev/urandom >"$work/build-key")
cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
        --key-file "$work/build-key" "$work/root.img"

cat >"$work/cvmcrypt.conf" <<CONF
tpm = $tcti
gate-pcr = 15
volume = /dev/disk/by-partlabel/root root
CONF
echo 'BOOT_IMAGE=/vmlinuz root=/dev/mapper/root cvmcrypt.tempdisk=auto quiet' >"$work/cmdline"

echo "== cvmcrypt boot --dry-run"
"$cvm" --config "$work/cvmcrypt.conf" --kernel-cmdline "$work/cmdline" boot --dry-run
echo "== the same plan as JSON"
"$cvm" --config "$work/cvmcrypt.conf" --kernel-cmdline "$work/cmdline" boot --dry-run --json
echo "== demo finished"
