# shellcheck shell=bash
# tests/e2e/lib.sh: the qemu end-to-end harness. A test is an executable bash script
# tests/e2e/test-NAME.sh that sources this file, builds an initramfs around a guest script, boots
# it and exits 0 only if the guest reported PASS. scripts/test.sh runs each as one test ("e2e" tier).
#
#   e2e_kernel                 Debian's linux-image-amd64 kernel, never installed on the host:
#                              apt-get download + dpkg -x into $E2E_CACHE (reused, locked, idempotent),
#                              depmod on the extracted tree. Sets E2E_KVER, E2E_KERNEL (vmlinuz),
#                              E2E_MODDIR (its lib/modules/KVER).
#   e2e_initramfs OUT GUEST [SRC[:DEST]...]
#                              cpio newc + zstd initramfs: static busybox, the kernel modules in
#                              $E2E_MODULES $E2E_EXTRA_MODULES with their deps (modprobe works in the
#                              guest), $CVMCRYPT + its libraries + the dlopen'd TCTI and libcryptsetup
#                              libraries, cryptsetup, dmsetup, mke2fs/e2fsck, tpm2 (tpm2-tools), a generated
#                              /init, the guest helpers (/e2e/guest.sh) and GUEST as /e2e/test.sh.
#                              Extras: files (ELF ones come with their libraries) or directories,
#                              at DEST or at SRC's own absolute path.
#   e2e_swtpm_start STATE      swtpm for qemu (ctrl channel) on TPM state dir STATE; sets
#                              E2E_SWTPM_SOCK. e2e_boot starts and stops it by itself.
#   e2e_swtpm_host_start STATE the same state as a host TPM, for enrolling before a boot: sets
#                              E2E_TPM_TCTI=swtpm:path=... (and TPM2TOOLS_TCTI). Stop it before booting.
#   e2e_swtpm_stop             stops the swtpm this file started (by its pid, checked), either mode.
#   e2e_boot NAME INITRAMFS [[SERIAL=]IMAGE...]
#                              one boot: qemu pc (SeaBIOS), accel=tcg, tpm-tis wired to a qemu-mode
#                              swtpm on $E2E_TPM_STATE (a fresh TPM if unset; kept between boots if
#                              set), raw images as virtio-blk disks with serial SERIAL (default
#                              disk0, disk1...), a hard timeout of $E2E_TIMEOUT s. Returns 0 only when
#                              the serial log holds "E2E-RESULT: PASS NAME NONCE"; a missing marker
#                              (timeout, panic, lost output) is a failure. Prints the guest's output
#                              and "e2e: boot NAME: PASS in S s"; the serial log is $E2E_LOG.
#
# Guest protocol: /init mounts proc, sys, devtmpfs and /run, loads the modules, then runs
# /e2e/test.sh with `set -e` after sourcing /e2e/guest.sh (e2e_fail REASON, e2e_disk SERIAL -> /dev/vdX
# from /sys/block/vdX/serial since busybox makes no /dev/disk/by-id, e2e_wait_path). /init itself
# prints "E2E-RESULT: PASS NAME NONCE" when the script returns 0, or "E2E-RESULT: FAIL NAME NONCE
# rc=N REASON", then powers off. NAME and the per-boot random NONCE come on the kernel command line
# (e2e.name=, e2e.nonce=), so a marker cannot come from an earlier boot or an echoed script; an
# initramfs built another way (dracut) must print the same line to pass.
#
# Writing a test (see test-luks-activate.sh):
#   set -euo pipefail; . "$(dirname "$0")/lib.sh"; e2e_require
#   ...make images and data under $E2E_TMP; enroll with e2e_swtpm_host_start/stop if needed...
#   cat >"$E2E_TMP/guest.sh" <<'GUEST'        # runs in the VM: POSIX sh, busybox, set -e
#   dev=$(e2e_disk root); cryptsetup open --key-file /e2e/data/key "$dev" r || e2e_fail "open failed"
#   GUEST
#   e2e_initramfs "$E2E_TMP/initrd" "$E2E_TMP/guest.sh" "$E2E_TMP/data:/e2e/data"
#   e2e_boot my-test "$E2E_TMP/initrd" "root=$E2E_TMP/root.img"   # exits the test unless PASS
#
# Everything lives under one mktemp -d ($E2E_TMP), removed on exit (E2E_KEEP=1 keeps it); qemu and
# swtpm processes started here are stopped by pid on exit. Knobs: CVMCRYPT (binary, default
# build/cvmcrypt), E2E_CACHE, E2E_KERNEL_PKG (pin a linux-image-6.1.*-amd64 package), E2E_TIMEOUT
# (180), E2E_MEM (1024), E2E_CMDLINE (appended to the kernel command line), E2E_QEMU_ARGS (array of
# extra qemu arguments, set after sourcing), E2E_EXTRA_MODULES, E2E_TYPE_AFTER and E2E_TYPE_TEXT
# (type TEXT and Enter on the serial console once the console shows PATTERN, e.g. a passphrase at
# systemd's prompt; typed at most once per boot), E2E_MARK (a string: e2e_boot then sets
# E2E_MARK_SECONDS to the wall time from qemu's start until the string first showed on the serial
# console, polled every 0.1 s, and E2E_MARK_CPU_SECONDS to the CPU time qemu had used by then;
# both empty when it never did).

E2E_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${CVMCRYPT:=$E2E_TOP/build/cvmcrypt}"
: "${E2E_CACHE:=/var/cache/cvmcrypt-e2e}"
: "${E2E_TIMEOUT:=180}"
: "${E2E_MEM:=1024}"
: "${E2E_CMDLINE:=}"
: "${E2E_EXTRA_MODULES:=}"
# Modules every initramfs gets (with their dependencies). TPM TIS/CRB, sha256 and aes are built in.
: "${E2E_MODULES:=virtio_pci virtio_blk virtio_rng dm_crypt xts aesni_intel crc32c_intel crc32c_generic \
ext4 af_alg algif_skcipher algif_hash}"
# Libraries that are loaded with dlopen (so ldd does not list them) or that cvmcrypt will link.
E2E_DLOPEN_LIBS=(libtss2-tctildr.so.0 libtss2-tcti-device.so.0 libtss2-esys.so.0 libtss2-mu.so.0
        libtss2-rc.so.0 libtss2-sys.so.1 libcryptsetup.so.12 libgcc_s.so.1)
E2E_MULTIARCH=x86_64-linux-gnu
E2E_PIDS=()
E2E_SWTPM_RUN=
[ -n "${E2E_QEMU_ARGS+x}" ] || E2E_QEMU_ARGS=()

e2e_log() { echo "e2e: $*" >&2; }

e2e_cleanup() {
        local pid
        e2e_swtpm_stop
        for pid in "${E2E_PIDS[@]}"; do
                e2e__kill "$pid"
        done
        E2E_PIDS=()
        if [ -n "${E2E_TMP:-}" ] && [ -d "$E2E_TMP" ]; then
                if [ "${E2E_KEEP:-0}" = 1 ]; then
                        e2e_log "kept $E2E_TMP"
                else
                        rm -rf "$E2E_TMP"
                fi
        fi
}

E2E_TMP=$(mktemp -d /tmp/cvmcrypt-e2e.XXXXXX)
trap e2e_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# e2e__kill PID: TERM, up to 5 s, then KILL. Only for pids this file started.
e2e__kill() {
        local pid=$1 i
        kill "$pid" 2>/dev/null || return 0
        for i in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || return 0
                sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
}

# e2e_require: everything the harness runs; a missing tool is a failure, never a skip.
e2e_require() {
        local c missing=()
        for c in qemu-system-x86_64 swtpm apt-get apt-cache dpkg depmod cpio zstd ldd ldconfig flock \
                cryptsetup mkfs.ext4 e2fsck busybox; do
                command -v "$c" >/dev/null 2>&1 || missing+=("$c")
        done
        if [ "${#missing[@]}" -gt 0 ]; then
                e2e_log "missing ${missing[*]} (scripts/deps.sh installs them)"
                return 1
        fi
        if ldd "$(command -v busybox)" >/dev/null 2>&1; then
                e2e_log "$(command -v busybox) is not static (install busybox-static)"
                return 1
        fi
        [ -x "$CVMCRYPT" ] || { e2e_log "no cvmcrypt binary at $CVMCRYPT (build first)"; return 1; }
}

e2e_kernel() {
        [ -n "${E2E_KERNEL:-}" ] && return 0
        local pkg='' deb='' key='' lock dir tmp
        mkdir -p "$E2E_CACHE"
        exec {lock}>"$E2E_CACHE/lock"
        flock "$lock"
        pkg=${E2E_KERNEL_PKG:-}
        [ -n "$pkg" ] || pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
                awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\.[0-9]+-[0-9]+-amd64$/ { print $2; exit }' || true)
        if [ -n "$pkg" ]; then
                deb=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '$1 == "Filename:" { print $2; exit }' || true)
                deb=${deb##*/}
                if [ -z "$deb" ] || [ ! -s "$E2E_CACHE/$deb" ]; then
                        (cd "$E2E_CACHE" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
                        [ -n "$deb" ] || deb=$(cd "$E2E_CACHE" && ls -t "${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
                fi
        fi
        if [ -n "$deb" ] && [ -s "$E2E_CACHE/$deb" ]; then
                key=${deb%.deb}
        else
                # No package lists or no registry: fall back to the newest kernel already extracted.
                key=$(cd "$E2E_CACHE" && ls -td linux-image-*/.done 2>/dev/null | head -n 1 || true)
                key=${key%/.done}
                if [ -z "$key" ]; then
                        e2e_log "cannot download linux-image-amd64's kernel (run apt-get update) and none is cached"
                        exec {lock}>&-
                        return 1
                fi
                e2e_log "warning: using the cached $key (apt could not name or fetch a newer one)"
                pkg=${key%%_*}
        fi
        dir=$E2E_CACHE/$key
        if [ ! -e "$dir/.done" ]; then
                e2e_log "extracting $deb into $dir"
                tmp=$dir.tmp
                rm -rf "$tmp" "$dir"
                if ! dpkg -x "$E2E_CACHE/$deb" "$tmp" ||
                        ! depmod -b "$tmp" "$(ls "$tmp/lib/modules")"; then
                        rm -rf "$tmp"
                        exec {lock}>&-
                        e2e_log "cannot extract $deb"
                        return 1
                fi
                touch "$tmp/.done"
                mv "$tmp" "$dir"
                # Keep only the current kernel in the cache.
                find "$E2E_CACHE" -mindepth 1 -maxdepth 1 ! -name lock ! -name "$key" ! -name "$deb" \
                        -name 'linux-image-*' -exec rm -rf {} +
        fi
        exec {lock}>&-
        E2E_KVER=$(ls "$dir/lib/modules")
        E2E_KERNEL=$dir/boot/vmlinuz-$E2E_KVER
        E2E_MODDIR=$dir/lib/modules/$E2E_KVER
        [ -f "$E2E_KERNEL" ] && [ -f "$E2E_MODDIR/modules.dep" ] || {
                e2e_log "broken kernel cache $dir (remove it)"
                return 1
        }
        export E2E_KVER E2E_KERNEL E2E_MODDIR
}

# e2e_module_paths NAME...: module files (relative to E2E_MODDIR), dependencies first, each once.
# Built-in modules print nothing; an unknown module is an error.
e2e_module_paths() {
        awk -v want="$*" -v builtin="$E2E_MODDIR/modules.builtin" '
                function norm(p) { sub(/.*\//, "", p); sub(/\.ko(\.(xz|zst|gz))?$/, "", p); gsub(/-/, "_", p); return p }
                function emit(p) { if (!(p in done)) { done[p] = 1; print p } }
                BEGIN { while ((getline l < builtin) > 0) isbuiltin[norm(l)] = 1 }
                { f = $1; sub(/:$/, "", f); dep[norm(f)] = $0 }
                END {
                        n = split(want, w, /[ \t\n]+/)
                        for (i = 1; i <= n; i++) {
                                m = w[i]; gsub(/-/, "_", m)
                                if (m == "" || m in isbuiltin) continue
                                if (!(m in dep)) { print "unknown module " m > "/dev/stderr"; bad = 1; continue }
                                k = split(dep[m], d, / +/)
                                for (j = k; j >= 2; j--) emit(d[j])
                                f = d[1]; sub(/:$/, "", f); emit(f)
                        }
                        exit bad
                }' "$E2E_MODDIR/modules.dep"
}

# e2e__install STAGE SRC DEST: copies a file (dereferenced) to STAGE/DEST and, if it is ELF, the
# libraries it needs (ldd lists the whole closure, so the libraries are not examined again).
e2e__install() {
        local stage=$1 src=$2 dest=$3 lib
        e2e__copy "$stage" "$src" "$dest" || return 1
        if [ "$(head -c 4 "$src" | od -An -c | tr -d ' ')" = '177ELF' ]; then
                # ldd prints "name => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)".
                for lib in $(ldd "$src" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
                        e2e__copy "$stage" "$lib" "$(e2e__usrpath "$lib")" || return 1
                done
        fi
}

# e2e__copy STAGE SRC DEST: SRC's content at STAGE/DEST, replacing a busybox link, once.
e2e__copy() {
        local stage=$1 src=$2 dest=$3
        [ -e "$stage$dest" ] && [ ! -L "$stage$dest" ] && return 0
        mkdir -p "$stage$(dirname "$dest")"
        rm -f "$stage$dest"
        cp -L --preserve=mode "$src" "$stage$dest"
}

# e2e__usrpath PATH: PATH with its directory resolved (merged /usr), the file name kept.
e2e__usrpath() {
        echo "$(realpath "$(dirname "$1")")/$(basename "$1")"
}

# e2e__libpath SONAME: where the host's dynamic linker finds SONAME.
e2e__libpath() {
        local p
        for p in /usr/lib/$E2E_MULTIARCH/$1 /lib/$E2E_MULTIARCH/$1; do
                [ -e "$p" ] && { echo "$p"; return 0; }
        done
        ldconfig -p | awk -v so="$1" '$1 == so && /x86-64/ { print $NF; exit }'
}

e2e_initramfs() {
        local out=$1 guest=$2 stage f m paths src dest lib
        shift 2
        e2e_require && e2e_kernel || return 1
        [ -f "$guest" ] || { e2e_log "no guest script $guest"; return 1; }
        stage=$(mktemp -d "$E2E_TMP/initramfs.XXXXXX")
        mkdir -p "$stage"/usr/{bin,sbin,lib,lib64} "$stage"/{dev,proc,sys,run,tmp,mnt,root,etc,e2e}
        ln -s usr/bin "$stage/bin"
        ln -s usr/sbin "$stage/sbin"
        ln -s usr/lib "$stage/lib"
        ln -s usr/lib64 "$stage/lib64"
        mknod -m 600 "$stage/dev/console" c 5 1
        mknod -m 666 "$stage/dev/null" c 1 3

        # busybox and its applets; real binaries installed later replace applet links.
        cp "$(command -v busybox)" "$stage/usr/bin/busybox"
        chroot "$stage" /usr/bin/busybox --install -s || return 1

        # Kernel modules and a modules.dep for them, so that the guest's modprobe resolves deps.
        paths=$(e2e_module_paths $E2E_MODULES $E2E_EXTRA_MODULES) || { e2e_log "module resolution failed"; return 1; }
        for m in $paths; do
                dest=$stage/lib/modules/$E2E_KVER/${m%.xz}
                dest=${dest%.zst}
                dest=${dest%.gz}
                mkdir -p "$(dirname "$dest")"
                # Loaded uncompressed, so it does not matter whether the kernel can decompress modules.
                case $m in
                *.xz) xz -dc "$E2E_MODDIR/$m" >"$dest" ;;
                *.zst) zstd -qdc "$E2E_MODDIR/$m" >"$dest" ;;
                *.gz) gzip -dc "$E2E_MODDIR/$m" >"$dest" ;;
                *) cp "$E2E_MODDIR/$m" "$dest" ;;
                esac
        done
        for f in modules.builtin modules.builtin.modinfo modules.order; do
                cp "$E2E_MODDIR/$f" "$stage/lib/modules/$E2E_KVER/"
        done
        depmod -b "$stage" "$E2E_KVER" || return 1
        for m in $E2E_MODULES $E2E_EXTRA_MODULES; do echo "$m"; done >"$stage/etc/e2e-modules"

        # cvmcrypt, the libraries it links or dlopens, and the tools the guest scripts use.
        e2e__install "$stage" "$CVMCRYPT" /usr/sbin/cvmcrypt || return 1
        for lib in "${E2E_DLOPEN_LIBS[@]}"; do
                src=$(e2e__libpath "$lib")
                [ -n "$src" ] || { e2e_log "library $lib not found on the host"; return 1; }
                e2e__install "$stage" "$src" "$(e2e__usrpath "$src")" || return 1
        done
        for f in cryptsetup dmsetup mke2fs e2fsck tpm2; do
                src=$(command -v "$f") || { e2e_log "$f not found on the host"; return 1; }
                e2e__install "$stage" "$src" "$(e2e__usrpath "$src")" || return 1
        done
        ln -sf mke2fs "$stage/usr/sbin/mkfs.ext4"
        ln -sf e2fsck "$stage/usr/sbin/fsck.ext4"
        cp /etc/mke2fs.conf "$stage/etc/" 2>/dev/null || true
        echo "/usr/lib/$E2E_MULTIARCH" >"$stage/etc/ld.so.conf"
        ldconfig -r "$stage" 2>/dev/null || true
        echo 'root:x:0:0:root:/root:/bin/sh' >"$stage/etc/passwd"
        echo 'root:x:0:' >"$stage/etc/group"

        # Extra files: SRC[:DEST].
        for f in "$@"; do
                src=${f%%:*}
                dest=${f#*:}
                [ "$f" = "$src" ] && dest=$(realpath "$src")
                if [ -d "$src" ]; then
                        mkdir -p "$stage$dest"
                        cp -a "$src/." "$stage$dest/"
                else
                        [ -e "$src" ] || { e2e_log "no such file $src"; return 1; }
                        e2e__install "$stage" "$src" "$dest" || return 1
                fi
        done

        cp "$guest" "$stage/e2e/test.sh"
        e2e__guest_lib >"$stage/e2e/guest.sh"
        e2e__init >"$stage/init"
        chmod 755 "$stage/init"

        (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
                cpio -o -H newc -R 0:0 --reproducible --quiet | zstd -q -T0 -6 >"$out.tmp") || return 1
        mv "$out.tmp" "$out"
        rm -rf "$stage"
}

# e2e_dracut OUT CONF [DRACUT-OPTION...]: a systemd initramfs made by the host's dracut with the
# tree's dracut/91cvmcrypt module and units, $CVMCRYPT (unstripped: boot measures the binary, and
# predict must see the same bytes) configured by CONF, and the drivers in $E2E_MODULES
# $E2E_EXTRA_MODULES. A minimal module set keeps the TCG boot short. E2E_DRACUT_MODULES replaces
# systemd-initrd (the modules besides cvmcrypt), for an initramfs without systemd.
e2e_dracut() {
        local out=$1 conf=$2 base m
        shift 2
        e2e_require && e2e_kernel || return 1
        command -v dracut >/dev/null || { e2e_log "dracut is missing (scripts/deps.sh installs dracut-core)"; return 1; }
        # dracut finds modules only under its base directory: a private one, the host's plus ours.
        base=$(mktemp -d "$E2E_TMP/dracut.XXXXXX")
        mkdir "$base/modules.d"
        for m in /usr/lib/dracut/*; do [ "${m##*/}" = modules.d ] || ln -s "$m" "$base/"; done
        for m in /usr/lib/dracut/modules.d/*; do ln -s "$m" "$base/modules.d/"; done
        ln -s "$E2E_TOP/dracut/91cvmcrypt" "$base/modules.d/91cvmcrypt"
        cvmcrypt_bin=$CVMCRYPT cvmcrypt_conf=$conf cvmcrypt_unitdir=$E2E_TOP/units dracutbasedir=$base \
                dracut --force --quiet --no-hostonly --no-hostonly-cmdline --nostrip --no-early-microcode --reproducible \
                --kver "$E2E_KVER" --kmoddir "$E2E_MODDIR" -m "${E2E_DRACUT_MODULES:-systemd-initrd} cvmcrypt" \
                --drivers "$E2E_MODULES $E2E_EXTRA_MODULES" --compress "zstd -q -3 -T0" "$@" "$out" || {
                e2e_log "dracut failed"
                return 1
        }
}

# e2e_mkinitramfs OUT CONF [HOOK...]: an initramfs-tools initramfs with the tree's hooks/ (hook and
# local-top script), $CVMCRYPT configured by CONF, the drivers in $E2E_MODULES $E2E_EXTRA_MODULES,
# and test-only hook scripts HOOK. mkinitramfs reads /lib/modules/KVER and /boot/config-KVER only:
# it runs in a private mount namespace where an overlay shows the extracted kernel there, so nothing
# is installed on the host.
e2e_mkinitramfs() {
        local out=$1 conf=$2 dir pkg m
        shift 2
        e2e_require && e2e_kernel || return 1
        command -v mkinitramfs >/dev/null || { e2e_log "mkinitramfs is missing (scripts/deps.sh installs initramfs-tools-core)"; return 1; }
        dir=$(mktemp -d "$E2E_TMP/initramfs-tools.XXXXXX")
        mkdir -p "$dir/conf/hooks" "$dir/conf/scripts/local-top" "$dir/conf/conf.d" "$dir/up" "$dir/work"
        cp "$E2E_TOP/hooks/hooks/cvmcrypt" "$@" "$dir/conf/hooks/"
        cp "$E2E_TOP/hooks/scripts/local-top/cvmcrypt" "$dir/conf/scripts/local-top/"
        printf 'MODULES=list\nBUSYBOX=y\nCOMPRESS=zstd\nFSTYPE=ext4\n' >"$dir/conf/initramfs.conf"
        for m in $E2E_MODULES $E2E_EXTRA_MODULES; do echo "$m"; done >"$dir/conf/modules"
        pkg=$(dirname "$(dirname "$(dirname "$E2E_MODDIR")")")
        unshare -m sh -c 'set -e
                mount -t overlay overlay -o "lowerdir=/usr/lib,upperdir=$1/up,workdir=$1/work" /usr/lib
                mkdir -p "/usr/lib/modules/$2"
                mount --bind "$3" "/usr/lib/modules/$2"
                mount --bind "$4/boot" /boot
                CVMCRYPT_BIN=$5 CVMCRYPT_CONF=$6 mkinitramfs -d "$1/conf" -o "$7" "$2"' \
                sh "$dir" "$E2E_KVER" "$E2E_MODDIR" "$pkg" "$CVMCRYPT" "$conf" "$out" || {
                e2e_log "mkinitramfs failed"
                return 1
        }
}

e2e__init() {
        cat <<'EOF'
#!/bin/sh
# Generated by tests/e2e/lib.sh: run /e2e/test.sh, print the result marker, power off.
export PATH=/usr/sbin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /dev/pts /dev/shm /run/cryptsetup /run/lock
mount -t devpts devpts /dev/pts
ln -sf /proc/self/fd /dev/fd
name=unnamed nonce=none
for a in $(cat /proc/cmdline); do
        case $a in
        e2e.name=*) name=${a#*=} ;;
        e2e.nonce=*) nonce=${a#*=} ;;
        esac
done
t_init=$(cut -d' ' -f1 /proc/uptime)
echo "E2E-INIT: /init at uptime $t_init s"
while read -r m; do
        modprobe "$m" 2>/dev/null || echo "E2E-WARN: modprobe $m failed"
done </etc/e2e-modules
/bin/sh -c 'set -e; . /e2e/guest.sh; . /e2e/test.sh' </dev/null
rc=$?
reason=$(cat /run/e2e-reason 2>/dev/null)
echo "E2E-TIME: guest uptime at /init $t_init s, at the end $(cut -d' ' -f1 /proc/uptime) s"
echo
if [ "$rc" -eq 0 ] && [ -z "$reason" ]; then
        echo "E2E-RESULT: PASS $name $nonce"
else
        echo "E2E-RESULT: FAIL $name $nonce rc=$rc ${reason:-the guest script failed}"
fi
sync
sleep 0.3
poweroff -f
echo o >/proc/sysrq-trigger
sleep 10
EOF
}

e2e__guest_lib() {
        cat <<'EOF'
# shellcheck shell=sh
# /e2e/guest.sh: helpers for guest test scripts (POSIX sh, busybox), sourced by /init under set -e.

# e2e_fail REASON: records the reason for the result line and ends the test.
e2e_fail() {
        echo "E2E-FAIL: $*"
        echo "$*" >/run/e2e-reason
        exit 1
}

# e2e_step TEXT: progress line with the uptime.
e2e_step() {
        echo "E2E-STEP: [$(cut -d' ' -f1 /proc/uptime)] $*"
}

# e2e_wait_path PATH [SECONDS]: waits for PATH to exist (default 10 s).
e2e_wait_path() {
        _n=$(( ${2:-10} * 10 ))
        while [ ! -e "$1" ]; do
                _n=$((_n - 1))
                [ "$_n" -gt 0 ] || return 1
                sleep 0.1
        done
}

# e2e_disk SERIAL [SECONDS]: prints /dev/vdX of the virtio disk whose serial is SERIAL. busybox makes
# no /dev/disk/by-id links; the serial is in /sys/block/vdX/serial.
e2e_disk() {
        _n=$(( ${2:-10} * 10 ))
        while :; do
                for _d in /sys/block/vd*; do
                        [ -r "$_d/serial" ] || continue
                        if [ "$(cat "$_d/serial")" = "$1" ]; then
                                e2e_wait_path "/dev/${_d##*/}" 5 || return 1
                                echo "/dev/${_d##*/}"
                                return 0
                        fi
                done
                _n=$((_n - 1))
                [ "$_n" -gt 0 ] || { echo "E2E-FAIL: no disk with serial $1" >&2; return 1; }
                sleep 0.1
        done
}
EOF
}

# e2e_swtpm_start STATE: qemu-mode swtpm on STATE (created if missing). Sets E2E_SWTPM_SOCK.
e2e_swtpm_start() {
        e2e__swtpm qemu "$1"
}

# e2e_swtpm_host_start STATE: host-mode swtpm on STATE. Sets E2E_TPM_TCTI and TPM2TOOLS_TCTI.
e2e_swtpm_host_start() {
        e2e__swtpm host "$1"
}

e2e__swtpm() {
        local mode=$1 state run
        [ -z "$E2E_SWTPM_RUN" ] || { e2e_log "an swtpm is already running ($E2E_SWTPM_RUN)"; return 1; }
        mkdir -p "$2"
        state=$(realpath "$2")
        run=$(mktemp -d "$E2E_TMP/swtpm.XXXXXX")
        local args=(socket --tpm2 --tpmstate "dir=$state" --daemon --pid "file=$run/pid"
                --log "file=$run/log,level=1")
        if [ "$mode" = qemu ]; then
                args+=(--ctrl "type=unixio,path=$run/sock")
        else
                args+=(--server "type=unixio,path=$run/S" --ctrl "type=unixio,path=$run/S.ctrl"
                        --flags not-need-init,startup-clear)
        fi
        if ! swtpm "${args[@]}" >"$run/out" 2>&1; then
                e2e_log "swtpm failed to start: $(cat "$run/out" "$run/log" 2>/dev/null)"
                return 1
        fi
        E2E_SWTPM_RUN=$run
        for _ in $(seq 100); do
                [ -s "$run/pid" ] && { [ -S "$run/sock" ] || [ -S "$run/S" ]; } && break
                sleep 0.05
        done
        if [ "$mode" = qemu ]; then
                E2E_SWTPM_SOCK=$run/sock
                [ -S "$E2E_SWTPM_SOCK" ] || { e2e_log "swtpm made no socket"; return 1; }
        else
                [ -S "$run/S" ] || { e2e_log "swtpm made no socket"; return 1; }
                E2E_TPM_TCTI="swtpm:path=$run/S"
                export E2E_TPM_TCTI TPM2TOOLS_TCTI=$E2E_TPM_TCTI
        fi
}

e2e_swtpm_stop() {
        local run=${E2E_SWTPM_RUN:-} pid
        [ -n "$run" ] || return 0
        pid=$(cat "$run/pid" 2>/dev/null || true)
        # Only the swtpm whose command line names our private run directory.
        if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$run/"; then
                e2e__kill "$pid"
        fi
        E2E_SWTPM_RUN='' E2E_SWTPM_SOCK='' E2E_TPM_TCTI=''
        unset TPM2TOOLS_TCTI
}

e2e_boot() {
        local name=$1 initrd=$2 arg serial file n=0 nonce qpid rc qrc start deadline end secs log state
        shift 2
        [[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || { e2e_log "boot name '$name': letters, digits, . _ - only"; return 1; }
        e2e_require && e2e_kernel || return 1
        local qemu=(qemu-system-x86_64 -machine pc,accel=tcg -cpu max -smp 1 -m "$E2E_MEM"
                -nodefaults -no-user-config -display none -no-reboot
                -kernel "$E2E_KERNEL" -initrd "$initrd"
                -device virtio-rng-pci)
        for arg in "$@"; do
                if [[ $arg =~ ^([A-Za-z0-9_.-]{1,20})=(.+)$ ]]; then
                        serial=${BASH_REMATCH[1]} file=${BASH_REMATCH[2]}
                else
                        serial=disk$n file=$arg
                fi
                [ -f "$file" ] || { e2e_log "no disk image $file"; return 1; }
                qemu+=(-drive "file=$file,if=none,id=d$n,format=raw,cache=unsafe"
                        -device "virtio-blk-pci,drive=d$n,serial=$serial")
                n=$((n + 1))
        done
        nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
        log=$E2E_TMP/$name.serial.log
        E2E_LOG=$log
        : >"$log"
        local typed=0 fifo='' tfd='' catpid='' mark='' cpu='' mark_cpu=''
        E2E_MARK_SECONDS='' E2E_MARK_CPU_SECONDS=''
        if [ -n "${E2E_TYPE_AFTER:-}" ]; then
                # The console through a pipe chardev: FIFO.in is its keyboard, FIFO.out is copied to
                # the log (qemu opens both read-write, so nothing blocks).
                fifo=$E2E_TMP/$name.serial
                rm -f "$fifo.in" "$fifo.out"
                mkfifo "$fifo.in" "$fifo.out"
                exec {tfd}<>"$fifo.in"
                cat "$fifo.out" >>"$log" &
                catpid=$!
                E2E_PIDS+=("$catpid")
                qemu+=(-chardev "pipe,id=ser0,path=$fifo" -serial chardev:ser0)
        else
                qemu+=(-serial "file:$log")
        fi
        qemu+=(-append "console=ttyS0 quiet panic=-1 e2e.name=$name e2e.nonce=$nonce $E2E_CMDLINE")
        state=${E2E_TPM_STATE:-$(mktemp -d "$E2E_TMP/tpmstate.XXXXXX")}
        e2e_swtpm_start "$state" || return 1
        qemu+=(-chardev "socket,id=chrtpm,path=$E2E_SWTPM_SOCK" -tpmdev emulator,id=tpm0,chardev=chrtpm
                -device tpm-tis,tpmdev=tpm0)
        qemu+=("${E2E_QEMU_ARGS[@]}")

        start=$(date +%s%N)
        "${qemu[@]}" </dev/null >"$E2E_TMP/$name.qemu.log" 2>&1 &
        qpid=$!
        E2E_PIDS+=("$qpid")
        rc=0
        deadline=$((SECONDS + E2E_TIMEOUT))
        while kill -0 "$qpid" 2>/dev/null; do
                if [ "$SECONDS" -ge "$deadline" ]; then
                        e2e_log "boot $name: timeout after $E2E_TIMEOUT s, killing qemu"
                        e2e__kill "$qpid"
                        rc=124
                        break
                fi
                if [ -n "$tfd" ] && [ "$typed" = 0 ] && grep -aqF -- "$E2E_TYPE_AFTER" "$log"; then
                        sleep 0.5
                        printf '%s\r' "$E2E_TYPE_TEXT" >&"$tfd"
                        typed=1
                        e2e_log "boot $name: typed on the console after '$E2E_TYPE_AFTER'"
                fi
                if [ -n "${E2E_MARK:-}" ] && [ -z "$mark" ]; then
                        # utime + stime of all of qemu's threads, in clock ticks.
                        cpu=$(awk '{ print $14 + $15 }' "/proc/$qpid/stat" 2>/dev/null || echo "$cpu")
                        if grep -aqF -- "$E2E_MARK" "$log"; then
                                mark=$(date +%s%N)
                                mark_cpu=$cpu
                        fi
                fi
                sleep 0.1
        done
        if [ -n "$tfd" ]; then
                exec {tfd}>&-
                # qemu has gone: the copy ends with the pipe's last bytes.
                for _ in $(seq 20); do kill -0 "$catpid" 2>/dev/null || break; sleep 0.1; done
                e2e__kill "$catpid"
        fi
        if wait "$qpid" 2>/dev/null; then qrc=0; else qrc=$?; fi
        [ "$rc" -ne 0 ] || rc=$qrc
        end=$(date +%s%N)
        local p rest=()
        for p in "${E2E_PIDS[@]}"; do [ "$p" = "$qpid" ] || [ "$p" = "$catpid" ] || rest+=("$p"); done
        E2E_PIDS=("${rest[@]}")
        local swtpm_log=$E2E_SWTPM_RUN/log
        e2e_swtpm_stop
        secs=$(awk -v ns=$((end - start)) 'BEGIN { printf "%.1f", ns / 1e9 }')
        E2E_BOOT_SECONDS=$secs
        # Shown only after qemu had gone: the poll missed it, so qemu's end is the bound.
        [ -n "$mark" ] || [ -z "${E2E_MARK:-}" ] || ! grep -aqF -- "$E2E_MARK" "$log" || mark=$end mark_cpu=$cpu
        [ -z "$mark" ] || E2E_MARK_SECONDS=$(awk -v ns=$((mark - start)) 'BEGIN { printf "%.2f", ns / 1e9 }')
        [ -z "$mark_cpu" ] || E2E_MARK_CPU_SECONDS=$(awk -v t="$mark_cpu" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')

        if grep -aqF "E2E-RESULT: PASS $name $nonce" "$log" && ! grep -aqF "E2E-RESULT: FAIL" "$log"; then
                # The guest's own output, without the kernel's boot messages.
                sed -n '/^E2E-INIT:/,$p' "$log" | tr -d '\r' |
                        grep -av '^E2E-RESULT:\|^E2E-TIME:\|^$\|^\[ *[0-9]*\.[0-9]*\]' | sed 's/^/  | /'
                echo "e2e: boot $name: PASS in $secs s ($(grep -ao 'E2E-TIME: .*' "$log" | tr -d '\r' | sed 's/E2E-TIME: //'))"
                return 0
        fi
        echo "e2e: boot $name: FAIL after $secs s (qemu exit $rc)"
        if grep -aq "E2E-RESULT: FAIL $name $nonce" "$log"; then
                grep -ao "E2E-RESULT: FAIL $name $nonce.*" "$log" | tr -d '\r' | sed 's/^/  /'
        else
                echo "  no result marker for this boot (timeout, kernel panic or lost console output)"
        fi
        echo "  --- serial console ($log), last 80 lines:"
        tail -n 80 "$log" | tr -d '\r' | sed 's/^/  | /'
        if [ -s "$swtpm_log" ]; then
                echo "  --- swtpm:"
                sed 's/^/  | /' "$swtpm_log"
        fi
        if [ -s "$E2E_TMP/$name.qemu.log" ]; then
                echo "  --- qemu:"
                sed 's/^/  | /' "$E2E_TMP/$name.qemu.log"
        fi
        return 1
}
