#!/usr/bin/env bash
# bench/provision.sh: first-boot overhead of `cvmcrypt provision` in the qemu tier (TCG), on a root of
# SIZE (default 2 GiB) made by image-prepare. One VM gets two copies of the image: it re-keys copy A
# with `cvmcrypt provision` (prepare, re-key, finish, open through the new TPM slot, measure) and
# copy B with `cryptsetup reencrypt` (offline, same resilience), and reports each one's throughput,
# their ratio (cvmcrypt / cryptsetup, target >= 0.9) and the whole provisioning delay. Appends a
# section to bench/RESULTS.md.
set -euo pipefail
. "$(dirname "$0")/../tests/e2e/lib.sh"
e2e_require
SIZE=${SIZE:-2G}
: "${E2E_TIMEOUT:=1800}"

mkdir -p "$E2E_TMP/tree/etc" "$E2E_TMP/data"
cp -r /usr/share/doc/bash "$E2E_TMP/tree/"
base=$E2E_TMP/base.img
truncate -s "$SIZE" "$base"
mkfs.ext4 -q -F -b 4096 -d "$E2E_TMP/tree" "$base"
: >"$E2E_TMP/empty.conf"
"$CVMCRYPT" --config "$E2E_TMP/empty.conf" --kernel-cmdline /dev/null image-prepare "$base" \
        --key-file "$E2E_TMP/data/build.key" --pcrs 7 >/dev/null
cp --sparse=always "$base" "$E2E_TMP/a.img"
cp --sparse=always "$base" "$E2E_TMP/b.img"
bytes=$(( $(stat -c %s "$base") - 16 * 1024 * 1024 ))
echo "$bytes" >"$E2E_TMP/data/bytes"
openssl req -x509 -newkey rsa:3072 -nodes -keyout "$E2E_TMP/admin.key" -out "$E2E_TMP/data/admin.pem" \
        -subj /CN=bench -days 2 2>/dev/null
printf 'provision-escrow-cert=/e2e/data/admin.pem\nprovision-escrow-out=/run/escrow.pem\n' >"$E2E_TMP/data/cvmcrypt.conf"

cat >"$E2E_TMP/guest.sh" <<'GUEST'
a=$(e2e_disk a) && b=$(e2e_disk b) || e2e_fail "no disks"
cvm() { cvmcrypt --config /e2e/data/cvmcrypt.conf --kernel-cmdline /proc/cmdline "$@"; }
now() { cut -d' ' -f1 /proc/uptime; }
cvm measure >/dev/null || e2e_fail "measure failed"
t0=$(now)
cvm provision "$a" root >/dev/null || e2e_fail "provision failed"
t1=$(now)
cryptsetup reencrypt --batch-mode --force-offline-reencrypt --resilience checksum --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000 --key-file /e2e/data/build.key "$b" >/dev/null || e2e_fail "cryptsetup reencrypt failed"
t2=$(now)
echo "E2E-BENCH: provision $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') cryptsetup $(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')"
GUEST
e2e_initramfs "$E2E_TMP/initrd" "$E2E_TMP/guest.sh" "$E2E_TMP/data:/e2e/data"
E2E_TPM_STATE=$E2E_TMP/tpm
e2e_boot bench-provision "$E2E_TMP/initrd" "a=$E2E_TMP/a.img" "b=$E2E_TMP/b.img"
read -r _ _ tp _ tc < <(grep -ao 'E2E-BENCH: .*' "$E2E_LOG" | tr -d '\r' | head -n 1)
mib=$(awk -v b="$bytes" 'BEGIN { print b / 1048576 }')
line=$(awk -v m="$mib" -v p="$tp" -v c="$tc" 'BEGIN {
        printf "| %.0f MiB | %.1f s (%.1f MiB/s) | %.1f s (%.1f MiB/s) | **%.2f** |", m, p, m / p, c, m / c, c / p }')
echo "$line"
cat >>"$(dirname "$0")/RESULTS.md" <<EOF

## provision: $(date -u +%F) — \`bench/provision.sh\` (qemu TCG, -smp 1, SIZE=$SIZE)

| data | cvmcrypt provision (whole first-boot step) | cryptsetup reencrypt (re-key only) | ratio (target >= 0.9) |
|---|---|---|---|
$line

The provision time includes everything the first boot adds: the TPM seal, the escrow (RSA-3072
CMS), the re-key in 16 MiB hot zones, the clean-up, opening the volume through the new slot and
the measurement. Total VM time $E2E_BOOT_SECONDS s.
EOF
