#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dracut module: cvmcrypt in the initramfs (see cvmcrypt(8)). With systemd in the initrd, the units
# cvmcrypt-unlock.service (measure, attest, unlock, cap), cvmcrypt-cap.service and
# cvmcrypt-tempdisk.service; without it, an initqueue hook that runs `cvmcrypt boot` once.
# Where things come from (environment, for tests and unusual layouts):
#   cvmcrypt_bin      the binary (default: cvmcrypt on PATH); it goes to /usr/sbin/cvmcrypt
#   cvmcrypt_conf     the configuration (default: the binary's own default path)
#   cvmcrypt_unitdir  the units (default: the systemd unit directory)

cvmcrypt_setup_env() {
    : "${cvmcrypt_bin:=$(command -v cvmcrypt)}"
    [[ -x $cvmcrypt_bin ]] || return 1
    # The binary reads its configuration from where it was built to: put it there.
    cvmcrypt_conf_path=$("$cvmcrypt_bin" --help | sed -n 's/.*configuration file (default \(.*\))$/\1/p')
    : "${cvmcrypt_conf:=$cvmcrypt_conf_path}"
    : "${cvmcrypt_unitdir:=$systemdsystemunitdir}"
}

# cvmcrypt_plan KEY: a path the configuration names (anchors, policy, attest-certs), as the binary
# itself resolves it (defaults included); empty when unset.
cvmcrypt_plan() {
    local conf=/dev/null
    [[ -f $cvmcrypt_conf ]] && conf=$cvmcrypt_conf
    "$cvmcrypt_bin" --config "$conf" --kernel-cmdline /dev/null boot --dry-run --json 2>/dev/null |
        sed -n "s|^  \"$1\":\"\\(/[^\"]*\\)\",\$|\\1|p"
}

# called by dracut
check() {
    cvmcrypt_setup_env || return 1
    # On by itself wherever cvmcrypt is configured; otherwise only when asked for.
    [[ -f $cvmcrypt_conf ]] && return 0
    return 255
}

# called by dracut
depends() {
    # Not systemd: dracut-systemd brings it in wherever systemd is installed, and an initramfs made
    # without it (--omit dracut-systemd) gets the initqueue hook instead.
    echo "crypt dm rootfs-block"
    return 0
}

# called by dracut
installkernel() {
    # dm-crypt, the vTPM (TIS on Hyper-V and QEMU, CRB elsewhere), and the disks of an Azure CVM:
    # Hyper-V storage and NVMe (the OS disk and the NVMe Direct temp disks).
    hostonly='' instmods dm_crypt tpm_tis tpm_crb hv_vmbus hv_storvsc nvme sd_mod
}

# called by dracut
install() {
    local dir f lib _arch=${DRACUT_ARCH:-$(uname -m)}

    cvmcrypt_setup_env || return 1
    inst_binary "$cvmcrypt_bin" /usr/sbin/cvmcrypt
    # The TPM libraries loaded with dlopen (ldd does not list them), and mkfs for the temp disk.
    for lib in libtss2-tctildr.so libtss2-tcti-device.so; do
        inst_libdir_file {"tls/$_arch/",tls/,"$_arch/",}"$lib.*"
    done
    inst_multiple mke2fs
    inst_multiple -o mkfs.ext4 mkfs.xfs udevadm
    [[ -e $initdir/usr/sbin/mkfs.ext4 || -e $initdir/sbin/mkfs.ext4 ]] || ln_r /usr/sbin/mke2fs /usr/sbin/mkfs.ext4
    [[ -f /etc/mke2fs.conf ]] && inst_simple /etc/mke2fs.conf

    # The configuration and the files it names: boot measures them, so exactly this system's.
    [[ -f $cvmcrypt_conf ]] && inst_simple "$cvmcrypt_conf" "$cvmcrypt_conf_path"
    f=$(cvmcrypt_plan policy)
    [[ -n $f ]] && inst_simple "$f"
    for dir in "$(cvmcrypt_plan anchors)" "$(cvmcrypt_plan attest-certs)"; do
        [[ -d $dir ]] || continue
        for f in "$dir"/* "$dir"/.[!.]*; do
            [[ -f $f ]] && inst_simple "$f"
        done
    done

    if dracut_module_included "systemd"; then
        for f in cvmcrypt-unlock.service cvmcrypt-cap.service cvmcrypt-tempdisk.service; do
            inst_simple "$cvmcrypt_unitdir/$f" "$systemdsystemunitdir/$f"
        done
        $SYSTEMCTL -q --root "$initdir" enable cvmcrypt-unlock.service cvmcrypt-tempdisk.service
    else
        inst_hook initqueue/settled 10 "$moddir/cvmcrypt-boot.sh"
    fi
}
