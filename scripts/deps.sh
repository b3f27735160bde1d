#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing cvmcrypt need. Idempotent.
set -euo pipefail

packages=(
        # build
        build-essential autoconf automake libtool pkg-config
        libcryptsetup-dev libtss2-dev libjson-c-dev libssl-dev libblkid-dev
        # tests: TPM emulator and tools, LUKS tools, bats, fuzzing, fixtures
        swtpm swtpm-tools tpm2-tools cryptsetup-bin e2fsprogs bats
        # bats --jobs runs test files side by side through GNU parallel
        parallel
        clang libclang-rt-14-dev python3 openssl xxd man-db
        # crash tests: SIGKILL at every write through strace's fault injection
        strace
        # temp disk guard tests: partition tables, NTFS volumes like Azure's, XFS
        fdisk ntfs-3g xfsprogs
        # e2e tier (tests/e2e): qemu TCG boots of Debian's kernel, which tests/e2e/lib.sh fetches with
        # apt-get download into /var/cache/cvmcrypt-e2e (never installed on the host); the initramfs is
        # static busybox + cpio + zstd, kmod's depmod resolves module dependencies
        qemu-system-x86 busybox-static cpio zstd xz-utils kmod dmsetup
        # boot integration: dracut and initramfs-tools build the e2e initramfs images (the -core
        # packages: the tools without taking over the host's own initramfs)
        dracut-core initramfs-tools-core
        # Debian packaging (tests/pkg/test-deb.sh): dpkg-buildpackage with debhelper, lintian
        debhelper devscripts lintian dpkg-dev fakeroot
)

if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: run as root (it installs Debian packages)" >&2
        exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
