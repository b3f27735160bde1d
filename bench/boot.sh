#!/usr/bin/env bash
# bench/boot.sh: what unlocking the root costs at boot. In the qemu tier (tests/e2e/lib.sh: TCG,
# -smp 1, SeaBIOS, Debian's linux-image-amd64, an swtpm vTPM per variant) and with the same dracut
# base (systemd-initrd rootfs-block, the drivers of $E2E_MODULES), it boots these variants and
# measures the time from qemu's start to the root's /sbin/init and the initramfs size:
#   plain             ext4 root, no encryption
#   keyfile           LUKS2 root, key file in the initramfs, systemd-cryptsetup through crypttab
#                     (the control)
#   cvmcrypt          the tree's dracut/91cvmcrypt and units: `cvmcrypt boot` measures, unlocks with
#                     its TPM token (gate PCR 15, predicted) and caps; no temp disk, no attestation
#   cvmcrypt-tempdisk the same with the temp disk (measure, unlock, temp disk, cap)
#   cvmcrypt-attest   the whole path (measure, attest, unlock, temp disk, cap) as tests/e2e/test-boot.sh
#                     sets it up: HCL report and AK in the swtpm, the paravisor stand-in in the guest
#   systemd-tpm2      systemd-cryptenroll --tpm2-pcrs=7, crypttab tpm2-device=auto (crypt dm tpm2-tss)
#   clevis            clevis luks bind tpm2 '{"pcr_ids":"7"}' with clevis-dracut's modules
# The root's /sbin/init prints the guest's uptime first thing; the host notes the wall time until
# that line shows on the serial console and the CPU time qemu had used by then (E2E_MARK, polled
# every 0.1 s; the CPU time suffers least from the shared machine's load). Then the init checks that
# the initrd did its part (volume open, by cvmcrypt where it should be, temp disk, attestation,
# cap) and powers off. RUNS boots per variant (default 3) in rotating rounds, so that the load of
# the shared machine falls on all alike; medians. Appends a section to bench/RESULTS.md.
# Targets (issue 9): cvmcrypt's whole path adds no more time over the control than systemd's tpm2
# unlock, and at most 1 MB (10^6 bytes) of initramfs.
# Usage: bench/boot.sh [BUILD_DIR]   (default build/; needs `make check` built there for the
#        attest variant's fixtures). Root: installs the clevis packages it needs.
#        VARIANTS="..." picks variants, RUNS=N the boots per variant, RESULTS=FILE where the section
#        goes (default bench/RESULTS.md).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
export CVMCRYPT=$build/cvmcrypt
RUNS=${RUNS:-3}
RESULTS=${RESULTS:-$top/bench/RESULTS.md}
VARIANTS=${VARIANTS:-plain keyfile cvmcrypt cvmcrypt-tempdisk cvmcrypt-attest systemd-tpm2 clevis}
: "${E2E_TIMEOUT:=150}"
[ -x "$CVMCRYPT" ] || { echo "no $CVMCRYPT: run scripts/build.sh build" >&2; exit 1; }
[ "$RUNS" -ge 1 ] || { echo "RUNS must be at least 1" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "bench/boot.sh: run as root (it installs packages)" >&2; exit 1; }

# clevis and its tpm2 pin, and clevis-systemd (the askpass units the dracut module installs).
# clevis-dracut itself depends on the full dracut, which would take over the host's initramfs
# from initramfs-tools: its modules are taken from the package file instead. Nothing is installed
# if apt would remove a package for it.
export DEBIAN_FRONTEND=noninteractive
pkgs=(clevis clevis-luks clevis-tpm2 clevis-systemd tpm2-tools dracut-core systemd cryptsetup-bin openssl)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
        apt-get update -qq
        plan=$(apt-get install -s -y --no-install-recommends "${missing[@]}")
        if grep '^Remv ' <<<"$plan" >&2; then
                echo "bench/boot.sh: installing ${missing[*]} would remove the packages above; not installing" >&2
                exit 1
        fi
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

. "$top/tests/e2e/lib.sh"
e2e_require
e2e_kernel
T=$E2E_TMP
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A why_not # variant -> why it is not measured (with the evidence)
bench_skip() {
        why_not[$1]=$2
        echo "bench/boot.sh: $1 is NOT measured: $2" >&2
}

# clevis-dracut's modules (60clevis, 60clevis-pin-tpm2) from the package file.
mkdir -p "$T/clevis-deb"
if (cd "$T/clevis-deb" && apt-get download -q clevis-dracut 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) &&
        dpkg-deb -x "$T"/clevis-deb/clevis-dracut_*.deb "$T/clevis-deb/x"; then
        clevis_mods=$T/clevis-deb/x/usr/lib/dracut/modules.d
else
        clevis_mods=
        bench_skip clevis "apt-get download clevis-dracut failed"
fi

# The cvmcrypt in the initramfs is stripped, as the package installs it; enroll and predict see
# the same bytes.
cvm=$T/bin/cvmcrypt
mkdir -p "$T/bin"
strip -o "$cvm" "$CVMCRYPT"

# bench_dracut OUT MODULES CONF [DRACUT-OPTION...]: the options of e2e_dracut, the base modules plus
# MODULES, a private module directory with the host's modules, the tree's 91cvmcrypt and
# clevis-dracut's. CONF is cvmcrypt's configuration (ignored unless MODULES has cvmcrypt).
bench_dracut() {
        local out=$1 mods=$2 conf=$3 base m
        shift 3
        base=$(mktemp -d "$T/dracut.XXXXXX")
        mkdir "$base/modules.d"
        for m in /usr/lib/dracut/*; do [ "${m##*/}" = modules.d ] || ln -s "$m" "$base/"; done
        for m in /usr/lib/dracut/modules.d/* "$E2E_TOP/dracut/91cvmcrypt" ${clevis_mods:+"$clevis_mods"/*}; do
                ln -s "$m" "$base/modules.d/"
        done
        cvmcrypt_bin=$cvm cvmcrypt_conf=$conf cvmcrypt_unitdir=$E2E_TOP/units dracutbasedir=$base \
                dracut --force --quiet --no-hostonly --no-hostonly-cmdline --nostrip --no-early-microcode --reproducible \
                --kver "$E2E_KVER" --kmoddir "$E2E_MODDIR" -m "systemd-initrd rootfs-block $mods" \
                --drivers "$E2E_MODULES $E2E_EXTRA_MODULES" --compress "zstd -q -3 -T0" "$@" "$out"
}

# The root file system: static busybox and an init that reports and checks.
stage=$T/rootfs
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,run,tmp,mnt,etc}
printf 'ID=cvmcrypt-bench\nNAME="cvmcrypt bench root"\n' >"$stage/etc/os-release"
cp "$(command -v busybox)" "$stage/bin/busybox"
chroot "$stage" /bin/busybox --install -s /bin
cat >"$stage/sbin/init" <<'ROOT'
#!/bin/sh
# bench/boot.sh's root: the time first, then what the initrd must have done (bench.check=), then off.
export PATH=/sbin:/bin
mount -t proc proc /proc 2>/dev/null
echo "E2E-TIME: root init at uptime $(cut -d' ' -f1 /proc/uptime) s"
name=unnamed nonce=none checks=
for a in $(cat /proc/cmdline); do
        case $a in
        e2e.name=*) name=${a#*=} ;;
        e2e.nonce=*) nonce=${a#*=} ;;
        bench.check=*) checks=$(echo "${a#*=}" | tr , ' ') ;;
        esac
done
kmsg() { dmesg | grep -F -- "$1" >/dev/null; }
why=
for c in $checks; do
        case $c in
        luks) ls /dev/mapper/luks-* >/dev/null 2>&1 || why="$why; no luks- mapping" ;;
        cvmcrypt) kmsg "opened as luks-" || why="$why; cvmcrypt did not open the root" ;;
        tempdisk) [ -b /dev/mapper/cvmcrypt-tempdisk ] || why="$why; no temp disk mapping" ;;
        attest) kmsg "boot: attest: HCL report" || why="$why; no attestation" ;;
        cap) kmsg "boot: cap: PCR 15 extended" || why="$why; no cap" ;;
        *) why="$why; unknown check $c" ;;
        esac
done
if [ -z "$why" ]; then
        echo "E2E-RESULT: PASS $name $nonce"
else
        echo "E2E-RESULT: FAIL $name $nonce ${why#; }"
fi
sync
poweroff -f
echo o >/proc/sysrq-trigger
sleep 10
ROOT
chmod 755 "$stage/sbin/init"

# try VARIANT STEP COMMAND...: runs COMMAND (its output kept aside); when it fails, the variant is
# not measured, with the step and COMMAND's last messages as the evidence. bash ignores set -e
# inside a function whose status is tested, so the functions run here chain their steps with &&.
try() {
        local v=$1 step=$2
        shift 2
        "$@" >"$T/try.out" 2>&1 && return 0
        e2e_swtpm_stop
        bench_skip "$v" "$step failed: $(tail -n 3 "$T/try.out" | tr '\n' ' ')"
        return 1
}

# make_root IMAGE [KEYFILE]: the root file system, inside LUKS2 (encrypted offline) given a key.
make_root() {
        truncate -s 96M "$1" && mkfs.ext4 -q -F -L bench-root -d "$stage" "$1" 64M || return 1
        [ -n "${2:-}" ] || return 0
        cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 32M --batch-mode \
                --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$2" "$1"
}

# SeaBIOS, booting the kernel given with -kernel, leaves PCR 7 at one EV_SEPARATOR whose digest is
# that of ffffffff (in every bank; read from the guest's event log): the host TPM is brought to
# the same value before systemd-cryptenroll and clevis seal to the current PCR 7.
pcr7_as_booted() {
        local spec='' alg
        for alg in sha1 sha256 sha384 sha512; do
                spec+=${spec:+,}$alg=$(printf '\377\377\377\377' | openssl dgst -"$alg" -r | cut -d' ' -f1)
        done
        tpm2_pcrextend "7:$spec"
}

# enroll_* VARIANT IMAGE [CONF]: each tool's TPM enrollment against the variant's TPM.
enroll_cvmcrypt() {
        local pred
        pred=$("$cvm" --config "$3" --kernel-cmdline /dev/null predict --no-attest --binary "$cvm") &&
                e2e_swtpm_host_start "${state[$1]}" &&
                "$cvm" --config "$3" --kernel-cmdline /dev/null --tpm "$E2E_TPM_TCTI" enroll "$2" \
                        --unlock-key-file "$T/root-key" --pcrs 15 --pcr-value "$pred" &&
                e2e_swtpm_stop
}
enroll_systemd() {
        e2e_swtpm_host_start "${state[$1]}" && pcr7_as_booted &&
                PASSWORD=$passphrase systemd-cryptenroll --tpm2-device="$E2E_TPM_TCTI" --tpm2-pcrs=7 "$2" &&
                e2e_swtpm_stop
}
enroll_clevis() {
        e2e_swtpm_host_start "${state[$1]}" && pcr7_as_booted &&
                clevis luks bind -y -k "$T/root-key" -d "$2" tpm2 '{"pcr_ids":"7"}' &&
                { tpm2_flushcontext -t || true; } && e2e_swtpm_stop
}

passphrase="bench-root-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s' "$passphrase" >"$T/root-key"
chmod 600 "$T/root-key"
truncate -s 64M "$T/tempdisk.img"
mkdir -p "$T/anchors"
cp "$top"/anchors/*.pem "$T/anchors/"

declare -A initrd cmdline state size
# build_variant VARIANT: its root image, TPM state, enrollment and initramfs; 1 (and why_not) when
# that cannot be done here.
build_variant() {
        local v=$1 img=$T/$1.img inc=$T/$1.inc conf=$T/$1.conf uuid t0 mods
        state[$v]=$T/tpm-$v
        try "$v" "making its TPM" e2e_swtpm_host_start "${state[$v]}" || return 1
        e2e_swtpm_stop
        mkdir -p "$inc/etc"
        if [ "$v" = plain ]; then
                try "$v" "making the root image" make_root "$img" || return 1
                cmdline[$v]="root=UUID=$(blkid -o value -s UUID "$img") rootfstype=ext4"
        else
                try "$v" "making the LUKS2 root image" make_root "$img" "$T/root-key" || return 1
                uuid=$(cryptsetup luksUUID "$img")
                cmdline[$v]="root=/dev/mapper/luks-$uuid rootfstype=ext4 bench.check=luks"
                echo "luks-$uuid UUID=$uuid none luks" >"$inc/etc/crypttab"
        fi
        case $v in
        plain) mods='' ;;
        keyfile)
                mods='crypt dm'
                install -m 600 "$T/root-key" "$inc/etc/bench-root.key"
                echo "luks-$uuid UUID=$uuid /etc/bench-root.key luks" >"$inc/etc/crypttab"
                ;;
        cvmcrypt | cvmcrypt-tempdisk)
                mods=cvmcrypt
                {
                        echo "anchors = $T/anchors"
                        echo "volume = UUID=$uuid"
                        if [ "$v" = cvmcrypt ]; then
                                echo "tempdisk = 0"
                        else
                                echo "tempdisk = /dev/disk/by-id/virtio-tempdisk"
                        fi
                } >"$conf"
                try "$v" "cvmcrypt enroll" enroll_cvmcrypt "$v" "$img" "$conf" || return 1
                cmdline[$v]+=",cvmcrypt,cap"
                [ "$v" = cvmcrypt ] || cmdline[$v]+=",tempdisk"
                ;;
        cvmcrypt-attest)
                mods=cvmcrypt
                setup_attest "$img" "$uuid" "$conf" || return 1
                cmdline[$v]+=",cvmcrypt,tempdisk,attest,cap"
                ;;
        systemd-tpm2)
                mods='crypt dm tpm2-tss'
                try "$v" "systemd-cryptenroll" enroll_systemd "$v" "$img" || return 1
                echo "luks-$uuid UUID=$uuid none tpm2-device=auto" >"$inc/etc/crypttab"
                ;;
        clevis)
                mods='crypt dm clevis clevis-pin-tpm2'
                try "$v" "clevis luks bind" enroll_clevis "$v" "$img" || return 1
                ;;
        *) bench_skip "$v" "unknown variant"; return 1 ;;
        esac
        initrd[$v]=$T/$v.initrd
        t0=$SECONDS
        try "$v" "dracut" bench_dracut "${initrd[$v]}" "$mods" "$conf" --include "$inc" / "${extras[@]}" || return 1
        size[$v]=$(stat -c %s "${initrd[$v]}")
        e2e_log "$v: initramfs $((SECONDS - t0)) s, ${size[$v]} bytes"
}

# setup_attest IMAGE UUID CONF: test-boot.sh's Azure-like vTPM (HCL report and AK in the swtpm) and
# the paravisor stand-in that refreshes the report in the guest; enrolls IMAGE --attest. Sets
# extras (the stand-in's files for dracut) and size_no_pv (the initramfs without them).
extras=()
size_no_pv=
setup_attest() {
        local v=cvmcrypt-attest img=$1 uuid=$2 conf=$3 pv=$T/pv f
        for f in "$build/tests/fixtures/snp-fixture" "$build/tests/tpm/libtss2-tcti-cvmparavisor.so"; do
                [ -f "$f" ] || { bench_skip "$v" "$f is not built (run make check in $build)"; return 1; }
        done
        mkdir -p "$pv" "$T/attest/anchors" "$T/attest/certs"
        try "$v" "make-test-chain" sh "$E2E_TOP/tests/fixtures/make-test-chain" "$T/chain" || return 1
        cp "$T/chain/anchors/"*.pem "$T/attest/anchors/"
        cp "$T/chain/vcek-milan.pem" "$T/attest/certs/vcek.pem"
        cp "$T/chain/ask-milan.pem" "$T/attest/certs/ask.pem"
        printf '{"debug": false}\n' >"$T/attest/policy.json"
        try "$v" "make-hcl-vtpm" make_vtpm || return 1
        cp "$build/tests/fixtures/snp-fixture" "$T/chain/vcek-milan.key" "$T/vtpm/akpub.pem" "$pv/"
        printf '#!/bin/sh\nexec %s/snp-fixture hcl %s/vcek-milan.key %s/akpub.pem "$1"\n' "$pv" "$pv" "$pv" >"$pv/refresh"
        chmod 755 "$pv/refresh"
        cat >"$conf" <<EOF
tpm = cvmparavisor:refresh=$pv/refresh:device:/dev/tpmrm0
attest = hcl-nv
attest-certs = $T/attest/certs
policy = $T/attest/policy.json
anchors = $T/attest/anchors
volume = UUID=$uuid
tempdisk = /dev/disk/by-id/virtio-tempdisk
EOF
        try "$v" "cvmcrypt enroll --attest" enroll_attest "$img" "$conf" || return 1
        # The same initramfs without the stand-in (a real paravisor is outside the guest): its size.
        try "$v" "dracut" bench_dracut "$T/attest-no-pv.initrd" cvmcrypt "$conf" --include "$T/$v.inc" / || return 1
        size_no_pv=$(stat -c %s "$T/attest-no-pv.initrd")
        extras=(--include "$pv" "$pv" --include "$build/tests/tpm/libtss2-tcti-cvmparavisor.so"
                "/usr/lib/$E2E_MULTIARCH/libtss2-tcti-cvmparavisor.so")
}
make_vtpm() {
        e2e_swtpm_host_start "${state[cvmcrypt-attest]}" &&
                sh "$E2E_TOP/tests/fixtures/make-hcl-vtpm" "$build/tests/fixtures/snp-fixture" "$T/chain" "$T/vtpm" &&
                e2e_swtpm_stop
}
enroll_attest() {
        e2e_swtpm_host_start "${state[cvmcrypt-attest]}" &&
                "$cvm" --config "$2" --kernel-cmdline /dev/null --tpm "$E2E_TPM_TCTI" enroll "$1" \
                        --unlock-key-file "$T/root-key" --pcrs 15 --attest --binary "$cvm" &&
                e2e_swtpm_stop
}

built=()
for v in $VARIANTS; do
        [ -z "${why_not[$v]:-}" ] || continue
        extras=()
        build_variant "$v" && built+=("$v")
done
extras=()

# Rotating rounds: round r starts at the r-th variant.
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A wall guest cpu total
failed=0
n=${#built[@]}
for r in $(seq "$RUNS"); do
        for i in $(seq 0 $((n - 1))); do
                v=${built[$(((i + r - 1) % n))]}
                [ -z "${why_not[$v]:-}" ] || continue
                name=bench-$v-$r
                if ! E2E_TPM_STATE=${state[$v]} E2E_MARK="E2E-TIME: root init" E2E_CMDLINE="${cmdline[$v]}" \
                        e2e_boot "$name" "${initrd[$v]}" "root=$T/$v.img" "tempdisk=$T/tempdisk.img" >"$T/$name.out"; then
                        cat "$T/$name.out"
                        reason=$(grep -ao "E2E-RESULT: FAIL $name [0-9a-f]* .*" "$E2E_LOG" | tr -d '\r' | cut -d' ' -f5- || true)
                        bench_skip "$v" "boot $r failed: ${reason:-no root init within $E2E_TIMEOUT s} (serial console: last lines above)"
                        failed=1
                        continue
                fi
                echo "$name: root init after ${E2E_MARK_SECONDS:-?} s (guest uptime" \
                        "$(grep -ao 'E2E-TIME: root init at uptime [0-9.]*' "$E2E_LOG" | head -n 1 | awk '{ print $NF }') s)," \
                        "qemu CPU $E2E_MARK_CPU_SECONDS s by then; qemu gone after $E2E_BOOT_SECONDS s"
                wall[$v]+="$E2E_MARK_SECONDS "
                guest[$v]+="$(grep -ao 'E2E-TIME: root init at uptime [0-9.]*' "$E2E_LOG" | head -n 1 | awk '{ print $NF }') "
                cpu[$v]+="$E2E_MARK_CPU_SECONDS "
                total[$v]+="$E2E_BOOT_SECONDS "
        done
done

# ---- report ----
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
declare -A mw mg mc
for v in "${built[@]}"; do
        [ -z "${why_not[$v]:-}" ] || continue
        mw[$v]=$(med "${wall[$v]}")
        mg[$v]=$(med "${guest[$v]}")
        mc[$v]=$(med "${cpu[$v]}")
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
mb() { [ -z "$1" ] || awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }
delta() { # delta A B: A - B signed, or n/a
        if [ -n "$1" ] && [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f", a - b }'; else echo n/a; fi
}
verdict() { # verdict A B: met when A <= B
        case "$1 $2" in *n/a*) echo "n/a" ;; *) awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? "met" : "not met" }' ;; esac
}
c=keyfile
cw=${mw[$c]:-} cg=${mg[$c]:-} cc=${mc[$c]:-} cs=${size[$c]:-}
[ -z "${why_not[$c]:-}" ] || cs=
{
        echo
        echo "## boot: $(date -u +%F) — \`bench/boot.sh\` (qemu TCG, -smp 1, SeaBIOS, kernel $E2E_KVER, RUNS=$RUNS, medians)"
        echo
        echo "| variant | s to root init (host, from qemu start) | guest uptime at root init, s | qemu CPU s to root init | initramfs MB | Δ s vs control (host / guest / CPU) | Δ MB vs control |"
        echo "|---|---|---|---|---|---|---|"
        for v in $VARIANTS; do
                if [ -n "${why_not[$v]:-}" ]; then
                        echo "| $v | **not measured**: ${why_not[$v]} | | | $(mb "${size[$v]:-}") | | |"
                        continue
                fi
                echo "| $v | ${mw[$v]} | ${mg[$v]} | ${mc[$v]} | $(mb "${size[$v]}") |" \
                        "$(delta "${mw[$v]}" "$cw") / $(delta "${mg[$v]}" "$cg") / $(delta "${mc[$v]}" "$cc") |" \
                        "$(delta "$(mb "${size[$v]}")" "$(mb "$cs")") |"
        done
        if [ -n "$size_no_pv" ]; then
                echo "| cvmcrypt-attest without the paravisor stand-in (size only) | | | | $(mb "$size_no_pv") | |" \
                        "$(delta "$(mb "$size_no_pv")" "$(mb "$cs")") |"
        fi
        echo
        sdw=$(delta "${mw[systemd-tpm2]:-}" "$cw")
        sdg=$(delta "${mg[systemd-tpm2]:-}" "$cg")
        sdc=$(delta "${mc[systemd-tpm2]:-}" "$cc")
        echo "Targets: over the control, cvmcrypt adds no more time than systemd-tpm2 does (host $sdw s, guest $sdg s,"
        echo "qemu CPU $sdc s) and at most 1.00 MB of initramfs (1 MB = 10^6 bytes)."
        echo
        for v in cvmcrypt cvmcrypt-tempdisk cvmcrypt-attest; do
                [ -n "${mw[$v]:-}" ] || continue
                dw=$(delta "${mw[$v]}" "$cw")
                dg=$(delta "${mg[$v]}" "$cg")
                dc=$(delta "${mc[$v]}" "$cc")
                s=${size[$v]}
                [ "$v" != cvmcrypt-attest ] || [ -z "$size_no_pv" ] || s=$size_no_pv
                ds=$(delta "$(mb "$s")" "$(mb "$cs")")
                echo "- $v: **$dw s** host (time target $(verdict "$dw" "$sdw")), $dg s guest" \
                        "($(verdict "$dg" "$sdg")), $dc s qemu CPU ($(verdict "$dc" "$sdc")); **$ds MB** (size target" \
                        "$(verdict "$ds" 1.00))."
        done
        echo
        echo "Host seconds: wall time from qemu's start until the root's first line showed on the serial"
        echo "console (polled every 0.1 s); the guest's uptime leaves out the firmware and the kernel's loading;"
        echo "qemu CPU is the user and system time of qemu's threads until then, the least sensitive to the"
        echo "machine's load (it misses the time the guest idles, e.g. waiting for udev)."
        echo "Load average at the start $load_start, at the end $load_end ($(nproc) host CPUs)."
        echo "Median total VM time (to qemu's exit): $(for v in "${built[@]}"; do
                [ -z "${why_not[$v]:-}" ] && printf '%s %s s, ' "$v" "$(med "${total[$v]}")"; done | sed 's/, $//')."
        echo "Every boot, host s to root init, in round order: $(for v in "${built[@]}"; do
                [ -z "${why_not[$v]:-}" ] && printf '%s %s; ' "$v" "${wall[$v]% }"; done | sed 's/; $//')."
} | tee -a "$RESULTS"
exit "$failed"
