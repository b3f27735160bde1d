#!/usr/bin/env bash
# e2e: cvmcrypt unlocks a LUKS2 root in a VM with the vTPM. Boot 1 reads the PCRs the firmware
# measured; the host enrolls the image against those values on the VM's TPM state (host-mode swtpm),
# as an image builder would with predicted values; boot 2 runs `cvmcrypt unlock`, which activates
# the volume through the checked detached header, mounts it and reads a known file. In the same
# boot a changed PCR is refused by name and the recovery key still opens the volume. Then `cvmcrypt
# boot` with a TPM device that is not there: it gives up after tpm-timeout=, and waits for one that
# appears while it waits.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_require

data=$E2E_TMP/data
state=$E2E_TMP/tpm
mkdir -p "$data" "$state" "$E2E_TMP/rootfs/etc"
printf 'e2e-build-key-%s' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$E2E_TMP/build-key"
echo "cvmcrypt tpm unlock $(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$E2E_TMP/rootfs/etc/e2e-check"
cp "$E2E_TMP/rootfs/etc/e2e-check" "$data/e2e-check"

root=$E2E_TMP/root.img
truncate -s 64M "$root"
mkfs.ext4 -q -F -L e2e-root -d "$E2E_TMP/rootfs" "$root" 32M
cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 32M --batch-mode \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$E2E_TMP/build-key" "$root" >/dev/null

# Boot 1: what did the firmware measure?
cat >"$E2E_TMP/measure.sh" <<'GUEST'
tpm2 pcrread sha256:0,7 -T device:/dev/tpmrm0 | sed -n 's/^ *\([07]\) *: 0x\([0-9A-F]*\)$/E2E-PCR \1 \2/p'
GUEST
e2e_initramfs "$E2E_TMP/initrd-measure" "$E2E_TMP/measure.sh"
E2E_TPM_STATE=$state
e2e_boot tpm-unlock-measure "$E2E_TMP/initrd-measure"
pcr0=$(sed -n 's/.*E2E-PCR 0 \([0-9A-F]\{64\}\).*/\1/p' "$E2E_LOG" | head -n1)
pcr7=$(sed -n 's/.*E2E-PCR 7 \([0-9A-F]\{64\}\).*/\1/p' "$E2E_LOG" | head -n1)
[ -n "$pcr0" ] && [ -n "$pcr7" ] || { e2e_log "boot 1 reported no PCR values"; exit 1; }

# Enroll on the host against the VM's TPM, bound to the values boot 1 saw.
e2e_swtpm_host_start "$state"
: >"$E2E_TMP/empty.conf"
"$CVMCRYPT" --config "$E2E_TMP/empty.conf" --kernel-cmdline /dev/null --tpm "$E2E_TPM_TCTI" enroll "$root" \
        --unlock-key-file "$E2E_TMP/build-key" --pcrs 0,7 --pcr-value "0=$pcr0" --pcr-value "7=$pcr7" \
        --recovery-key-file "$data/recovery-key"
e2e_swtpm_stop

# Boot 2: unlock with the vTPM, no key material in the initramfs but the recovery key for the
# fallback check.
cat >"$E2E_TMP/unlock.sh" <<'GUEST'
dev=$(e2e_disk root) || e2e_fail "no disk with serial root"
: >/e2e/empty.conf
cvm() { cvmcrypt --config /e2e/empty.conf --kernel-cmdline /proc/cmdline "$@"; }

e2e_step "cvmcrypt unlock with the vTPM (default TCTI device:/dev/tpmrm0)"
cvm unlock "$dev" e2eroot || e2e_fail "cvmcrypt unlock failed"
[ -b /dev/mapper/e2eroot ] || e2e_fail "/dev/mapper/e2eroot is missing"
cryptsetup status e2eroot | grep -q 'cipher:  aes-xts-plain64' || e2e_fail "unexpected cipher"
mount -t ext4 -o ro /dev/mapper/e2eroot /mnt || e2e_fail "mount failed"
cmp /mnt/etc/e2e-check /e2e/data/e2e-check || e2e_fail "/etc/e2e-check differs"
umount /mnt
cryptsetup close e2eroot

e2e_step "a changed PCR 7 is refused by name; the recovery key still opens the volume"
tpm2 pcrextend "7:sha256=$(printf changed | sha256sum | cut -d' ' -f1)" -T device:/dev/tpmrm0
if out=$(cvm unlock "$dev" --test 2>&1); then e2e_fail "unlocked after PCR 7 changed"; fi
echo "$out"
echo "$out" | grep -q "PCR 7 differs from the sealed policy" || e2e_fail "refusal does not name PCR 7"
cvm unlock "$dev" --test --recovery --recovery-key-file /e2e/data/recovery-key || e2e_fail "recovery key failed"

# The TPM's driver is built in and takes a new number when rebound: the configured device is a
# link to it that appears while boot waits (or never).
e2e_step "boot gives up on a TPM that does not appear within tpm-timeout=, and waits for one that does"
touch /etc/initrd-release
printf 'tpm=device:/run/late/tpmrm0\ntpm-timeout=1\ntempdisk=0\n' >/e2e/late.conf
if out=$(cvmcrypt --config /e2e/late.conf --kernel-cmdline /dev/null boot 2>&1); then e2e_fail "boot succeeded without a TPM"; fi
echo "$out"
echo "$out" | grep -qF "the TPM device /run/late/tpmrm0 did not appear within 1 s (tpm-timeout=)" || e2e_fail "no timeout message"
printf 'tpm=device:/run/late/tpmrm0\ntpm-timeout=30\ntempdisk=0\n' >/e2e/late.conf
cvmcrypt --config /e2e/late.conf --kernel-cmdline /dev/null boot >/run/late.log 2>&1 &
pid=$!
sleep 2
mkdir -p /run/late
ln -s /dev/tpmrm0 /run/late/tpmrm0
wait "$pid" || { cat /run/late.log; e2e_fail "boot failed after the TPM appeared"; }
cat /run/late.log
grep -qF "waiting up to 30 s for the TPM device /run/late/tpmrm0" /run/late.log || e2e_fail "boot did not say it waits"
grep -qF "the TPM device /run/late/tpmrm0 appeared" /run/late.log || e2e_fail "boot did not say the TPM appeared"
grep -qF "cap: PCR 15 extended" /run/late.log || e2e_fail "boot did not cap after the wait"
rm /etc/initrd-release
e2e_step "done"
GUEST
e2e_initramfs "$E2E_TMP/initrd-unlock" "$E2E_TMP/unlock.sh" "$data:/e2e/data"
e2e_boot tpm-unlock "$E2E_TMP/initrd-unlock" "root=$root"
