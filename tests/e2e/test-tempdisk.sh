#!/usr/bin/env bash
# e2e: the temp disk in a VM. Boot 1: a blank disk (serial "resource") is formatted by cvmcrypt
# tempdisk with a fresh key (LUKS2 without keyslots, aes-xts-plain64, 4096-byte sectors), ext4 is
# made and mounted at /mnt/resource with a swap file on it, a file is written; a second disk with an
# ext4 file system is refused by the content guard and stays byte for byte the same. Boot 2 of the
# same images, the disk named through tempdisk= in the configuration: our own header is accepted,
# the new volume has a new UUID, and the file of boot 1 is gone; then, as in an initrd, runtime
# mount and swap units instead of a mount. Between the boots the host checks the header and that
# the file's content is nowhere in the image in clear.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_require

t0=$(date +%s%N)
data=$E2E_TMP/data
mkdir -p "$data"
token="cvmcrypt-tempdisk-e2e-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$token" >"$data/token"
printf 'tempdisk-swap=64M\n' >"$data/boot1.conf"
printf 'tempdisk=/dev/disk/by-id/virtio-resource\n' >"$data/boot2.conf"

resource=$E2E_TMP/resource.img
truncate -s 2G "$resource"
userdisk=$E2E_TMP/userdisk.img
truncate -s 64M "$userdisk"
mkfs.ext4 -q -L userdata "$userdisk"
user_sum=$(sha256sum "$userdisk" | cut -d' ' -f1)
printf '%s\n' "$user_sum" >"$data/userdisk.sha256"

cat >"$E2E_TMP/guest.sh" <<'GUEST'
boot=$(sed -n 's/.*e2e\.boot=\([0-9]*\).*/\1/p' /proc/cmdline)
prev=$(sed -n 's/.*e2e\.prev=\([0-9a-f-]*\).*/\1/p' /proc/cmdline)
dev=$(e2e_disk resource) || e2e_fail "no disk with serial resource"
user=$(e2e_disk userdisk) || e2e_fail "no disk with serial userdisk"
: >/tmp/empty-cmdline

e2e_step "boot $boot: dry run: every guard passes on $dev"
cvmcrypt --config /e2e/data/boot$boot.conf --kernel-cmdline /tmp/empty-cmdline tempdisk --device "$dev" --dry-run ||
        e2e_fail "dry run refused $dev"
if [ "$boot" = 2 ]; then
        cvmcrypt --config /e2e/data/boot2.conf --kernel-cmdline /tmp/empty-cmdline tempdisk --device "$dev" --dry-run |
                grep -q 'guard content      ok       our own earlier LUKS2 volume' || e2e_fail "boot 1's header not recognised"
        mkdir -p /dev/disk/by-id
        ln -s "../../${dev#/dev/}" /dev/disk/by-id/virtio-resource
        args="--json"
else
        args="--device $dev"
fi

e2e_step "boot $boot: format, mkfs, mount"
t1=$(cut -d' ' -f1 /proc/uptime)
# shellcheck disable=SC2086
out=$(cvmcrypt --config /e2e/data/boot$boot.conf --kernel-cmdline /tmp/empty-cmdline tempdisk $args) ||
        e2e_fail "cvmcrypt tempdisk failed: $out"
t2=$(cut -d' ' -f1 /proc/uptime)
echo "$out"
echo "E2E-STEP: tempdisk took $(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", b - a }') s (uptime resolution 10 ms)"
uuid=$(cryptsetup luksUUID "$dev") || e2e_fail "$dev is not LUKS after formatting"
case $boot in
1) echo "$out" | grep -qx "identity: cvmcrypt:tempdisk:device:$dev:$uuid" || e2e_fail "identity line does not name UUID $uuid" ;;
2) echo "$out" | grep -qF "\"uuid\":\"$uuid\",\"fs\":\"ext4\",\"mount\":\"/mnt/resource\",\"mount-by\":\"mount\",\"swapfile\":null,\"identity\":\"cvmcrypt:tempdisk:device:/dev/disk/by-id/virtio-resource:$uuid\"" ||
        e2e_fail "JSON result does not name UUID $uuid and the configured path" ;;
esac
[ "$uuid" != "$prev" ] || e2e_fail "boot $boot reused the UUID $prev of the previous boot"

e2e_step "boot $boot: dm-crypt aes-xts-plain64, 512-bit key, 4096-byte sectors, no keyslot"
status=$(cryptsetup status cvmcrypt-tempdisk) || e2e_fail "no active mapping cvmcrypt-tempdisk"
echo "$status"
echo "$status" | grep -q 'type: *LUKS2' || e2e_fail "not LUKS2"
echo "$status" | grep -q 'cipher: *aes-xts-plain64' || e2e_fail "cipher is not aes-xts-plain64"
echo "$status" | grep -q 'sector size: *4096' || e2e_fail "sector size is not 4096"
# The key sits in the kernel keyring (cryptsetup status shows 0 bits): the table names its size.
table=$(dmsetup table cvmcrypt-tempdisk) || e2e_fail "dmsetup table failed"
echo "$table" | sed 's/cryptsetup:[^ ]*/cryptsetup:.../'
echo "$table" | grep -q ' crypt aes-xts-plain64 :64:logon:' || e2e_fail "not aes-xts-plain64 with a 64-byte key"
echo "$table" | grep -q 'sector_size:4096' || e2e_fail "table without sector_size:4096"
echo "$table" | grep -q 'allow_discards' && e2e_fail "discards pass through to the host"
cryptsetup luksDump "$dev" | sed -n '/^Keyslots:/,/^Tokens:/p' | grep -q '^  [0-9]*: ' && e2e_fail "the header has a keyslot"
[ "$(cryptsetup luksDump "$dev" | sed -n 's/^Label:[[:space:]]*//p')" = cvmcrypt-tempdisk ] || e2e_fail "label is not cvmcrypt-tempdisk"

e2e_step "boot $boot: ext4 mounted at /mnt/resource, nosuid,nodev"
grep '^/dev/mapper/cvmcrypt-tempdisk /mnt/resource ext4 ' /proc/mounts || e2e_fail "/mnt/resource is not the ext4 on the mapping"
grep '^/dev/mapper/cvmcrypt-tempdisk /mnt/resource ext4 [^ ]*nosuid,nodev' /proc/mounts >/dev/null ||
        e2e_fail "/mnt/resource is not nosuid,nodev"
case $boot in
1)
        grep -q '^/mnt/resource/swapfile ' /proc/swaps || e2e_fail "the swap file is not in use"
        cat /proc/swaps
        cp /e2e/data/token /mnt/resource/token
        ;;
2)
        [ ! -e /mnt/resource/token ] || e2e_fail "boot 1's file survived: $(cat /mnt/resource/token)"
        [ -d /mnt/resource/lost+found ] || e2e_fail "not a fresh file system"
        ;;
esac

e2e_step "boot $boot: a disk with an ext4 file system is refused and left alone"
set +e
refusal=$(cvmcrypt --config /e2e/data/boot1.conf --kernel-cmdline /tmp/empty-cmdline tempdisk --device "$user" 2>&1)
rc=$?
set -e
echo "$refusal"
[ "$rc" -eq 6 ] || e2e_fail "refusal exit status $rc, not 6"
echo "$refusal" | grep -q "refused by the content guard: $user holds a signature of type ext4 (label 'userdata')" ||
        e2e_fail "no content-guard refusal"
[ "$(sha256sum "$user" | cut -d' ' -f1)" = "$(cat /e2e/data/userdisk.sha256)" ] || e2e_fail "$user changed"

e2e_step "boot $boot: unmount; the ext4 is clean, with a journal, metadata checksums, 64 KiB clusters, 32-bit block numbers"
[ "$boot" = 1 ] && swapoff /mnt/resource/swapfile
umount /mnt/resource
e2fsck -fn /dev/mapper/cvmcrypt-tempdisk || e2e_fail "e2fsck found problems"
# The superblock's compat, incompat and ro_compat feature words: has_journal is compat 0x4,
# 64bit incompat 0x80, flex_bg incompat 0x200, bigalloc ro_compat 0x200, metadata_csum ro_compat 0x400;
# the cluster size is 1024 << s_log_cluster_size (at 28).
# shellcheck disable=SC2046
set -- $(od -An -tx4 -j 1116 -N 12 /dev/mapper/cvmcrypt-tempdisk)
[ $((0x$1 & 0x4)) = 4 ] || e2e_fail "the ext4 has no journal (compat 0x$1)"
[ $((0x$2 & 0x80)) = 0 ] || e2e_fail "the ext4 has 64-bit block numbers on a 2 GiB disk (incompat 0x$2)"
[ $((0x$2 & 0x200)) = 512 ] || e2e_fail "the ext4 has no flex_bg (incompat 0x$2)"
[ $((0x$3 & 0x400)) = 1024 ] || e2e_fail "the ext4 has no metadata checksums (ro_compat 0x$3)"
[ $((0x$3 & 0x200)) = 512 ] || e2e_fail "the ext4 has no clusters (ro_compat 0x$3)"
[ "$(od -An -tu4 -j 1052 -N 4 /dev/mapper/cvmcrypt-tempdisk | tr -d ' ')" = 6 ] || e2e_fail "the ext4's clusters are not 64 KiB"
cryptsetup close cvmcrypt-tempdisk || e2e_fail "cryptsetup close failed"

if [ "$boot" = 2 ]; then
        e2e_step "boot 2, as in the initrd: runtime units instead of a mount, the swap file made beforehand"
        touch /etc/initrd-release
        out=$(cvmcrypt --config /e2e/data/boot1.conf --kernel-cmdline /tmp/empty-cmdline tempdisk --device "$dev") ||
                e2e_fail "cvmcrypt tempdisk in the initrd failed: $out"
        rm /etc/initrd-release
        echo "$out"
        echo "$out" | grep -q "ext4 mount unit for /mnt/resource, swap file /mnt/resource/swapfile" || e2e_fail "no units announced"
        grep -q '^/dev/mapper/cvmcrypt-tempdisk ' /proc/mounts && e2e_fail "mounted in the initrd"
        for f in mnt-resource.mount mnt-resource-swapfile.swap local-fs.target.wants/mnt-resource.mount \
                swap.target.wants/mnt-resource-swapfile.swap; do
                [ -e "/run/systemd/system/$f" ] || e2e_fail "no /run/systemd/system/$f"
        done
        cat /run/systemd/system/mnt-resource.mount /run/systemd/system/mnt-resource-swapfile.swap
        mkdir -p /mnt/check
        mount /dev/mapper/cvmcrypt-tempdisk /mnt/check
        [ "$(stat -c '%s %a' /mnt/check/swapfile)" = "67108864 600" ] || e2e_fail "swap file: $(stat -c '%s %a' /mnt/check/swapfile)"
        swapon /mnt/check/swapfile || e2e_fail "the prepared swap file does not swap on"
        swapoff /mnt/check/swapfile
        umount /mnt/check
        cryptsetup close cvmcrypt-tempdisk
fi
sync
e2e_step "done"
GUEST

e2e_initramfs "$E2E_TMP/initrd" "$E2E_TMP/guest.sh" "$data:/e2e/data"
t1=$(date +%s%N)
E2E_CMDLINE="e2e.boot=1" e2e_boot tempdisk-1 "$E2E_TMP/initrd" "resource=$resource" "userdisk=$userdisk"
b1=$E2E_BOOT_SECONDS

# On the host: our header, the user's disk untouched, the file nowhere in clear.
uuid1=$(cryptsetup luksUUID "$resource")
[ "$(blkid -p -o value -s LABEL "$resource")" = cvmcrypt-tempdisk ]
[ "$(sha256sum "$userdisk" | cut -d' ' -f1)" = "$user_sum" ]
if grep -aqF "$token" "$resource"; then
        e2e_log "the file written in the VM is in the image in clear"
        exit 1
fi
e2e_log "boot 1 left LUKS2 $uuid1; the written file is not in the image in clear"

E2E_CMDLINE="e2e.boot=2 e2e.prev=$uuid1" e2e_boot tempdisk-2 "$E2E_TMP/initrd" "resource=$resource" "userdisk=$userdisk"
b2=$E2E_BOOT_SECONDS
uuid2=$(cryptsetup luksUUID "$resource")
[ "$uuid2" != "$uuid1" ]
[ "$(sha256sum "$userdisk" | cut -d' ' -f1)" = "$user_sum" ]
awk -v a=$((t1 - t0)) -v t=$(($(date +%s%N) - t0)) -v b1="$b1" -v b2="$b2" -v u1="$uuid1" -v u2="$uuid2" \
        'BEGIN { printf "e2e: tempdisk: UUID %s then %s; setup %.1f s, boots %s s and %s s, total %.1f s\n", u1, u2, a / 1e9, b1, b2, t / 1e9 }'
