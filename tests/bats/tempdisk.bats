#!/usr/bin/env bats
# cvmcrypt tempdisk on loop devices: every guard refuses with its own message and writes nothing
# (the image's checksum is the same before and after a real, non-dry-run invocation); the accepted
# contents (blank, Azure's fresh NTFS, our own LUKS2) pass; --dry-run shows every verdict. The host
# kernel has no device-mapper: a real run stops at activation, after the header, which the tests
# check. The holders guard needs dm or md, so it is tested on fake sysfs trees in
# tests/unit/test-tempdisk.c. The disk that holds this host's root is only ever given to --dry-run.

load helpers

setup() {
        common_setup
        LOOPS=()
        PARTX=()
        MOUNTS=()
        SWAPS=()
        HOLDER_PID=
        printf 'WARNING: THIS IS A TEMPORARY DISK.\n' >"$TEST_TMP/readme"
}

teardown() {
        local x
        if [ -n "$HOLDER_PID" ]; then
                kill "$HOLDER_PID" 2>/dev/null || true
                wait "$HOLDER_PID" 2>/dev/null || true
        fi
        for x in "${MOUNTS[@]}"; do umount "$x" 2>/dev/null || true; done
        for x in "${SWAPS[@]}"; do swapoff "$x" 2>/dev/null || true; done
        for x in "${PARTX[@]}"; do partx -d "$x" 2>/dev/null || true; done
        for x in "${LOOPS[@]}"; do losetup -d "$x" 2>/dev/null || true; done
        common_teardown
}

# attach IMG [LOSETUP-OPTIONS...]: a loop device for IMG in $LOOP, detached in teardown.
attach() {
        local img=$1
        shift
        LOOP=$(losetup --find --show "$@" "$img")
        LOOPS+=("$LOOP")
}

# partitions LOOP: partition nodes for LOOP (this kernel may not scan partition tables itself).
partitions() {
        [ -e "${1}p1" ] || { partx -a "$1" && PARTX+=("$1"); }
        [ -b "${1}p1" ]
}

sum() {
        sync
        sha256sum "$1" | cut -d' ' -f1
}

# refused IMG GUARD TEXT: a real run on $LOOP (the loop device of IMG) exits 6 naming GUARD and
# TEXT, and neither the image nor the device changed.
refused() {
        local img=$1 guard=$2 text=$3 before dev_before
        before=$(sum "$img")
        dev_before=$(sum "$LOOP")
        run cvm tempdisk --device "${DEVICE:-$LOOP}"
        echo "$output"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"refused by the $guard guard: "*"$text"* ]]
        [ "$(sum "$img")" = "$before" ]
        [ "$(sum "$LOOP")" = "$dev_before" ]
}

# dry_content DEVICE: the content guard's line of a dry run.
dry_content() {
        cvm tempdisk --device "$1" --dry-run 2>/dev/null | grep 'guard content' || true
}

# azure_ntfs IMG [EXTRA]: a disk like Azure's fresh temp disk, an MBR with one NTFS partition
# (type 0x07) labelled "Temporary Storage" holding DATALOSS_WARNING_README.txt. EXTRA: "file"
# adds another file, "svi" the System Volume Information directory, "dir" a directory with a file,
# "label" gives the volume another label. Built as a separate file and copied in at 1 MiB.
azure_ntfs() {
        local img=$1 extra=${2:-} part=$TEST_TMP/part.img label="Temporary Storage"
        [ "$extra" != label ] || label="Data"
        rm -f "$part"
        truncate -s 127M "$part"
        mkntfs -q -F -f -L "$label" "$part" 2>/dev/null
        ntfscp -f "$part" "$TEST_TMP/readme" DATALOSS_WARNING_README.txt
        case $extra in
        file) ntfscp -f "$part" "$TEST_TMP/readme" mydata.txt ;;
        svi | dir)
                mkdir -p "$TEST_TMP/ntfs"
                ntfs-3g "$part" "$TEST_TMP/ntfs"
                MOUNTS+=("$TEST_TMP/ntfs")
                if [ "$extra" = svi ]; then
                        mkdir "$TEST_TMP/ntfs/System Volume Information"
                else
                        mkdir "$TEST_TMP/ntfs/projects"
                        echo data >"$TEST_TMP/ntfs/projects/notes"
                fi
                umount "$TEST_TMP/ntfs"
                ;;
        esac
        rm -f "$img"
        truncate -s 128M "$img"
        echo 'start=2048, type=7' | sfdisk -q "$img"
        dd if="$part" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
}

@test "blank disk: --dry-run shows the plan and six passing guards, writes nothing" {
        truncate -s 256M "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img"
        before=$(sum "$TEST_TMP/d.img")
        run cvm tempdisk --device "$LOOP" --dry-run
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "${lines[0]}" == "tempdisk plan (dry run: nothing is written)" ]]
        [[ "$output" == *"$LOOP (found by --device: device:$LOOP), 0.2 GiB"* ]]
        for g in whole-disk system-disk holders in-use exclusive; do
                [[ "$output" == *"guard $g"*" ok "* ]]
        done
        [[ "$output" == *"guard content      ok       blank (no signature, no partition table)"* ]]
        [[ "$output" == *"format: LUKS2 without keyslots (label cvmcrypt-tempdisk), aes-xts-plain64, 512-bit key from getrandom, 4096-byte sectors -> /dev/mapper/cvmcrypt-tempdisk"* ]]
        [[ "$output" == *"mkfs:   ext4 (64 KiB clusters, lazy inode tables and journal, no discard)"* ]]
        [[ "$output" == *"mount:  /mnt/resource, nosuid,nodev, now"* ]]
        [[ "$output" == *"swap:   none"* ]]
        [ "$(sum "$TEST_TMP/d.img")" = "$before" ]
}

@test "--dry-run --json: every guard's verdict and the configured plan" {
        truncate -s 64M "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img"
        printf 'tempdisk-fs=xfs\ntempdisk-swap=16M\ntempdisk-mount=/mnt/scratch\ntempdisk-crypt=plain\n' >"$TEST_TMP/c.conf"
        CVM_CONFIG=$TEST_TMP/c.conf run cvm tempdisk --device "$LOOP" --dry-run --json
        echo "$output"
        [ "$status" -eq 0 ]
        printf '%s' "$output" | python3 -c '
import json, sys
d = json.load(sys.stdin)["disks"][0]
assert all(g["ok"] for g in d["guards"].values()), d["guards"]
assert sorted(d["guards"]) == sorted(["whole-disk", "system-disk", "holders", "in-use", "exclusive", "content"])
assert d["content"] == "blank" and d["fs"] == "xfs" and d["mount"] == "/mnt/scratch" and d["swap"] == 16 << 20, d
assert d["format"].startswith("plain dm-crypt aes-xts-plain64"), d["format"]
assert d["mapping"] == "/dev/mapper/cvmcrypt-tempdisk" and d["found-by"] == "--device"'
}

@test "blank disk, real run: a LUKS2 header without keyslots (about 1 MiB written), then no device-mapper" {
        truncate -s 1G "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img"
        w0=$(awk '{ print $7 }' "/sys/block/${LOOP#/dev/}/stat")
        run cvm tempdisk --device "$LOOP"
        echo "$output"
        # This host cannot activate a mapping: exit 6 after the header was written.
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"activating /dev/mapper/cvmcrypt-tempdisk failed"* ]]
        w1=$(awk '{ print $7 }' "/sys/block/${LOOP#/dev/}/stat")
        [ $(((w1 - w0) * 512)) -le $((1200 * 1024)) ]
        cryptsetup isLuks --type luks2 "$LOOP"
        dump=$(cryptsetup luksDump "$LOOP")
        echo "$dump"
        [[ "$dump" =~ Label:[[:space:]]+cvmcrypt-tempdisk ]]
        [[ "$dump" == *"cipher: aes-xts-plain64"* ]]
        [[ "$dump" == *"sector: 4096 [bytes]"* ]]
        [[ "$dump" == *"offset: 1048576 [bytes]"* ]]
        # No keyslot: nothing on the disk can give the key back.
        [ "$(printf '%s\n' "$dump" | sed -n '/^Keyslots:/,/^Tokens:/p' | wc -l)" -eq 2 ]
        # The data area was not touched: the image is still sparse beyond the header.
        [ "$(du -k "$TEST_TMP/d.img" | cut -f1)" -le 2048 ]
}

@test "our own earlier LUKS2 is accepted and gets a new UUID" {
        truncate -s 64M "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img"
        run cvm tempdisk --device "$LOOP"
        [ "$status" -eq "$EXIT_DEVICE" ]
        uuid1=$(cryptsetup luksUUID "$LOOP")
        [[ "$(dry_content "$LOOP")" == *" ok "*"our own earlier LUKS2 volume (label cvmcrypt-tempdisk)"* ]]
        run cvm tempdisk --device "$LOOP"
        [ "$status" -eq "$EXIT_DEVICE" ]
        uuid2=$(cryptsetup luksUUID "$LOOP")
        [ -n "$uuid1" ] && [ -n "$uuid2" ] && [ "$uuid1" != "$uuid2" ]
}

@test "a LUKS2 volume with another label is refused, unchanged" {
        make_luks_image "$TEST_TMP/d.img" "pass" 64M
        cryptsetup config --label data "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img"
        refused "$TEST_TMP/d.img" content "holds a signature of type crypto_LUKS (label 'data')"
        # Our label on a LUKS1 volume is not ours either.
        rm -f "$TEST_TMP/l1.img"
        truncate -s 64M "$TEST_TMP/l1.img"
        printf pass | cryptsetup luksFormat --type luks1 --batch-mode --pbkdf-force-iterations 1000 --key-file - "$TEST_TMP/l1.img"
        attach "$TEST_TMP/l1.img"
        refused "$TEST_TMP/l1.img" content "holds a signature of type crypto_LUKS"
}

@test "an ext4 file system is refused by the content guard, unchanged" {
        truncate -s 64M "$TEST_TMP/d.img"
        mkfs.ext4 -q -L userdata "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img"
        refused "$TEST_TMP/d.img" content "holds a signature of type ext4 (label 'userdata')"
}

@test "a signature only in the last MiB (md 1.0 superblock, backup GPT header) is refused, unchanged" {
        python3 - "$TEST_TMP/md.img" <<'EOF'
import os, struct, sys
size = 64 << 20
off = ((size // 512) - 16) & ~7          # md 1.0: 8 KiB before the end, 4 KiB aligned (sectors)
sb = bytearray(256)
struct.pack_into("<II", sb, 0, 0xa92b4efc, 1)
sb[16:32] = os.urandom(16)
sb[32:38] = b"host:0"
struct.pack_into("<I", sb, 72, 1)         # level
struct.pack_into("<Q", sb, 80, off)       # size
struct.pack_into("<I", sb, 92, 2)         # raid_disks
struct.pack_into("<QQQ", sb, 128, 0, off, off)  # data_offset, data_size, super_offset
csum = sum(struct.unpack_from("<64I", sb))
struct.pack_into("<I", sb, 216, (csum & 0xffffffff) + (csum >> 32) & 0xffffffff)
with open(sys.argv[1], "wb") as f:
    f.truncate(size)
    f.seek(off * 512)
    f.write(sb)
EOF
        attach "$TEST_TMP/md.img"
        refused "$TEST_TMP/md.img" content "holds a signature of type linux_raid_member"

        truncate -s 64M "$TEST_TMP/gpt.img"
        sgdisk -n 1:2048:+10M "$TEST_TMP/gpt.img" >/dev/null
        dd if=/dev/zero of="$TEST_TMP/gpt.img" bs=1M count=1 conv=notrunc status=none
        attach "$TEST_TMP/gpt.img"
        refused "$TEST_TMP/gpt.img" content "holds a partition table of type gpt"
}

@test "Azure's fresh NTFS temp disk is accepted, with or without System Volume Information" {
        azure_ntfs "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img"
        run cvm tempdisk --device "$LOOP" --dry-run
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"guard content      ok       Azure's fresh NTFS 'Temporary Storage' volume (only the warning file)"* ]]
        azure_ntfs "$TEST_TMP/svi.img" svi
        attach "$TEST_TMP/svi.img"
        [[ "$(dry_content "$LOOP")" == *" ok "*"Azure's fresh NTFS"* ]]
        # NTFS on the whole disk, without a partition table, is the same volume.
        truncate -s 64M "$TEST_TMP/whole.img"
        mkntfs -q -F -f -L "Temporary Storage" "$TEST_TMP/whole.img" 2>/dev/null
        attach "$TEST_TMP/whole.img"
        [[ "$(dry_content "$LOOP")" == *" ok "*"Azure's fresh NTFS"* ]]
        # A real run replaces it with our header.
        run cvm tempdisk --device "$LOOP"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [ "$(blkid -p -o value -s LABEL "$LOOP")" = cvmcrypt-tempdisk ]
}

@test "Azure's NTFS in a GPT: formatted, the backup GPT header erased, so the next run finds its own volume" {
        truncate -s 126M "$TEST_TMP/part.img"
        mkntfs -q -F -f -L "Temporary Storage" "$TEST_TMP/part.img" 2>/dev/null
        ntfscp -f "$TEST_TMP/part.img" "$TEST_TMP/readme" DATALOSS_WARNING_README.txt
        truncate -s 128M "$TEST_TMP/d.img"
        sgdisk -n 1:2048:+126M -t 1:0700 "$TEST_TMP/d.img" >/dev/null
        dd if="$TEST_TMP/part.img" of="$TEST_TMP/d.img" bs=1M seek=1 conv=notrunc,sparse status=none
        attach "$TEST_TMP/d.img"
        [[ "$(dry_content "$LOOP")" == *" ok "*"Azure's fresh NTFS"* ]]
        run cvm tempdisk --device "$LOOP"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"activating /dev/mapper/cvmcrypt-tempdisk failed"* ]]
        [ "$(tail -c 512 "$TEST_TMP/d.img" | head -c 8)" != "EFI PART" ]
        [[ "$(dry_content "$LOOP")" == *" ok "*"our own earlier LUKS2 volume"* ]]
}

@test "NTFS with another file, a directory or another label is refused, unchanged" {
        azure_ntfs "$TEST_TMP/f.img" file
        attach "$TEST_TMP/f.img"
        refused "$TEST_TMP/f.img" content "an NTFS 'Temporary Storage' volume that is not fresh: the root directory holds the file 'mydata.txt'"
        azure_ntfs "$TEST_TMP/d.img" dir
        attach "$TEST_TMP/d.img"
        refused "$TEST_TMP/d.img" content "the root directory holds the directory 'projects'"
        azure_ntfs "$TEST_TMP/l.img" label
        attach "$TEST_TMP/l.img"
        refused "$TEST_TMP/l.img" content "an NTFS volume labelled 'Data', not 'Temporary Storage'"
}

@test "a partition is refused by the whole-disk guard, unchanged" {
        truncate -s 64M "$TEST_TMP/d.img"
        echo 'start=2048, type=83' | sfdisk -q "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img" -P
        partitions "$LOOP"
        DEVICE=${LOOP}p1 refused "$TEST_TMP/d.img" whole-disk "${LOOP}p1 is partition 1 of a disk, not a whole disk"
}

@test "a mounted disk is refused by the in-use guard (and cannot be opened exclusively), unchanged" {
        truncate -s 64M "$TEST_TMP/d.img"
        mkfs.ext4 -q "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img"
        mkdir "$TEST_TMP/mnt"
        # Read-only: a writable ext4 mount writes on its own (inode tables zeroed in the
        # background, the superblock), which would make "unchanged" fail for the kernel's doing.
        mount -o ro "$LOOP" "$TEST_TMP/mnt"
        MOUNTS+=("$TEST_TMP/mnt")
        refused "$TEST_TMP/d.img" in-use "${LOOP#/dev/} is mounted at $TEST_TMP/mnt"
        run cvm tempdisk --device "$LOOP" --dry-run
        [[ "$output" == *"guard exclusive    REFUSED  $LOOP cannot be opened exclusively: Device or resource busy"* ]]
}

@test "a disk in use as swap is refused by the in-use guard, unchanged" {
        truncate -s 64M "$TEST_TMP/d.img"
        mkswap -q "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img"
        swapon "$LOOP"
        SWAPS+=("$LOOP")
        refused "$TEST_TMP/d.img" in-use "${LOOP#/dev/} is in use as swap ($LOOP)"
}

@test "a blank disk another process holds O_EXCL is refused by the exclusive guard, unchanged" {
        truncate -s 64M "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img"
        python3 -c 'import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
open(sys.argv[2], "w").close()
time.sleep(300)' "$LOOP" "$TEST_TMP/held" &
        HOLDER_PID=$!
        for _ in $(seq 100); do [ -e "$TEST_TMP/held" ] && break; sleep 0.05; done
        [ -e "$TEST_TMP/held" ]
        refused "$TEST_TMP/d.img" exclusive "$LOOP cannot be opened exclusively: Device or resource busy"
        [[ "$(dry_content "$LOOP")" == *" ok "*"blank"* ]]
}

@test "the disk holding this host's root is refused by the system-disk guard (dry run only)" {
        majmin=$(awk '$5 == "/" { print $3; exit }' /proc/self/mountinfo)
        sys=$(realpath "/sys/dev/block/$majmin")
        [ -e "$sys/partition" ] && sys=$(dirname "$sys")
        [ -e "$sys/slaves" ] && [ -n "$(ls "$sys/slaves")" ] && skip "root is on a stacked device"
        run cvm tempdisk --device "/dev/${sys##*/}" --dry-run
        echo "$output"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"guard system-disk  REFUSED  /dev/${sys##*/} holds the file system mounted at /"* ]]
        [[ "$output" == *"refused by the system-disk guard"* ]]
}

@test "cvmcrypt.tempdisk=0 on the kernel command line turns it off, --device included" {
        truncate -s 64M "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img"
        before=$(sum "$TEST_TMP/d.img")
        printf 'quiet cvmcrypt.tempdisk=0\n' >"$TEST_TMP/cmdline"
        run cvm tempdisk --device "$LOOP"
        [ "$status" -eq 0 ]
        [ "$output" = "tempdisk: turned off (tempdisk=0)" ]
        [ "$(sum "$TEST_TMP/d.img")" = "$before" ]
}

@test "tempdisk-crypt=plain writes nothing before activation" {
        truncate -s 64M "$TEST_TMP/d.img"
        attach "$TEST_TMP/d.img"
        before=$(sum "$TEST_TMP/d.img")
        printf 'cvmcrypt.tempdisk-crypt=plain\n' >"$TEST_TMP/cmdline"
        run cvm tempdisk --device "$LOOP"
        echo "$output"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"activating /dev/mapper/cvmcrypt-tempdisk failed"* ]]
        [ "$(sum "$TEST_TMP/d.img")" = "$before" ]
}

@test "detection by identity finds no temp disk on this host (dry run only)" {
        run cvm tempdisk --dry-run
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$output" = "tempdisk: no temp disk found by identity (Azure resource disk, NVMe Direct Disk)" ]
}

@test "a configured tempdisk= path that does not exist is an error; a non-stable path is a config error" {
        printf 'tempdisk=/dev/disk/by-id/cvmcrypt-test-none\n' >"$TEST_TMP/c.conf"
        CVM_CONFIG=$TEST_TMP/c.conf run cvm tempdisk --dry-run
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"tempdisk: /dev/disk/by-id/cvmcrypt-test-none does not exist"* ]]
        printf 'tempdisk=/dev/sdb\n' >"$TEST_TMP/c.conf"
        CVM_CONFIG=$TEST_TMP/c.conf run cvm tempdisk --dry-run
        [ "$status" -eq "$EXIT_CONFIG" ]
}
