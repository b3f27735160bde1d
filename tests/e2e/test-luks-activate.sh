#!/usr/bin/env bash
# e2e: a LUKS2 volume holding an ext4 file system, made on the host without device-mapper (mkfs.ext4 -d
# on a plain image, then an offline cryptsetup reencrypt --encrypt), is activated inside a VM by
# passphrase, mounted read-only and read. The same boot checks the vTPM devices (tpm_tis on swtpm),
# that the gate PCR starts at zero while SeaBIOS measured PCR 0, and that cvmcrypt and its libraries
# run in the initramfs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_require

t0=$(date +%s%N)
data=$E2E_TMP/data
mkdir -p "$data" "$E2E_TMP/rootfs/etc"
passphrase="e2e-passphrase-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s' "$passphrase" >"$data/passphrase"
echo "cvmcrypt e2e root $(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$E2E_TMP/rootfs/etc/e2e-check"
cp "$E2E_TMP/rootfs/etc/e2e-check" "$data/e2e-check"
"$CVMCRYPT" --version >"$data/version"

# The root image: a 32 MiB ext4 at the start of a 64 MiB file, encrypted in place; the LUKS2 header
# takes the room that --reduce-device-size frees.
root=$E2E_TMP/root.img
truncate -s 64M "$root"
mkfs.ext4 -q -F -L e2e-root -d "$E2E_TMP/rootfs" "$root" 32M
cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 32M --batch-mode \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$data/passphrase" "$root" >/dev/null
cryptsetup isLuks --type luks2 "$root"
cryptsetup open --test-passphrase --key-file "$data/passphrase" "$root"

cat >"$E2E_TMP/guest.sh" <<'GUEST'
e2e_step "vTPM devices"
[ -c /dev/tpm0 ] || e2e_fail "/dev/tpm0 is missing"
[ -c /dev/tpmrm0 ] || e2e_fail "/dev/tpmrm0 is missing"
drv=$(readlink /sys/class/tpm/tpm0/device/driver || true)
[ "${drv##*/}" = tpm_tis ] || e2e_fail "tpm0 is driven by '${drv##*/}', not tpm_tis"

e2e_step "PCRs through the device TCTI: PCR 0 measured by SeaBIOS, gate PCR 15 zero"
pcrs=$(tpm2 pcrread sha256:0,15 -T device:/dev/tpmrm0) || e2e_fail "tpm2 pcrread failed"
echo "$pcrs"
zero=0x0000000000000000000000000000000000000000000000000000000000000000
echo "$pcrs" | grep -q "^ *0 *: $zero" && e2e_fail "PCR 0 is zero: the firmware measured nothing"
echo "$pcrs" | grep -q "^ *15 *: $zero" || e2e_fail "PCR 15 is not zero at boot"

e2e_step "cvmcrypt runs with its libraries"
v=$(cvmcrypt --version) || e2e_fail "cvmcrypt --version failed"
[ "$v" = "$(cat /e2e/data/version)" ] || e2e_fail "cvmcrypt --version says '$v'"
cvmcrypt boot --dry-run --kernel-cmdline /proc/cmdline || e2e_fail "cvmcrypt boot --dry-run failed"

e2e_step "LUKS2 volume: wrong passphrase refused, right one activates"
dev=$(e2e_disk root) || e2e_fail "no disk with serial root"
cryptsetup isLuks --type luks2 "$dev" || e2e_fail "$dev is not LUKS2"
if printf wrong | cryptsetup open --test-passphrase --key-file - "$dev" 2>/dev/null; then
        e2e_fail "a wrong passphrase opened $dev"
fi
cryptsetup open --key-file /e2e/data/passphrase "$dev" e2eroot || e2e_fail "cryptsetup open $dev failed"
[ -b /dev/mapper/e2eroot ] || e2e_fail "/dev/mapper/e2eroot is missing after activation"
cryptsetup status e2eroot

e2e_step "mount read-only and read the known file"
mount -t ext4 -o ro /dev/mapper/e2eroot /mnt || e2e_fail "mount of the activated volume failed"
cmp /mnt/etc/e2e-check /e2e/data/e2e-check || e2e_fail "/etc/e2e-check differs: '$(cat /mnt/etc/e2e-check)'"
umount /mnt
cryptsetup close e2eroot || e2e_fail "cryptsetup close failed"
e2e_step "done"
GUEST

e2e_initramfs "$E2E_TMP/initrd" "$E2E_TMP/guest.sh" "$data:/e2e/data"
t1=$(date +%s%N)
e2e_boot luks-activate "$E2E_TMP/initrd" "root=$root"
t2=$(date +%s%N)
awk -v a=$((t1 - t0)) -v b=$((t2 - t1)) -v c="$E2E_BOOT_SECONDS" \
        'BEGIN { printf "e2e: luks-activate: setup and initramfs %.1f s, boot %s s, total %.1f s\n", a / 1e9, c, (a + b) / 1e9 }'
