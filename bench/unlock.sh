#!/usr/bin/env bash
# bench/unlock.sh: time one TPM2 unseal of a LUKS2 key, whole process, on one swtpm and one image:
# cvmcrypt unlock --test against systemd-cryptsetup's TPM2 path and clevis tpm2, median of RUNS
# runs each (in rounds of one run per tool), and count the TPM commands each sends (tss2 pcap TCTI).
# Appends to bench/RESULTS.md.
# Usage: bench/unlock.sh [BUILD_DIR]   (default build/; run scripts/build.sh build first)
#        CVMCRYPT=/path/to/cvmcrypt bench/unlock.sh   (a binary outside a build dir)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
cvm=${CVMCRYPT:-$build/cvmcrypt}
RUNS=${RUNS:-11}
[ "$RUNS" -ge 11 ] || { echo "RUNS must be at least 11" >&2; exit 2; }
[ -x "$cvm" ] || { echo "no $cvm: run scripts/build.sh build" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
dpkg -s clevis-luks clevis-tpm2 >/dev/null 2>&1 || apt-get install -y -qq clevis-luks clevis-tpm2 >/dev/null

work=$(mktemp -d /tmp/cvmcrypt-bench.XXXXXX)
cleanup() {
        [ -s "$work/pid" ] && kill "$(cat "$work/pid")" 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT
swtpm socket --tpm2 --server "type=unixio,path=$work/S" --ctrl "type=unixio,path=$work/S.ctrl" \
        --flags not-need-init,startup-clear --tpmstate "dir=$work" --daemon --pid "file=$work/pid"
for _ in $(seq 100); do [ -S "$work/S" ] && break; sleep 0.05; done
tcti=swtpm:path=$work/S
export TPM2TOOLS_TCTI=$tcti

tpm2_pcrextend "7:sha256=$(printf bench | sha256sum | cut -d' ' -f1)"
# The fast path: a persistent SRK, as cvmcrypt finds it on a provisioned VM.
tpm2_createprimary -Q -C o -g sha256 -G ecc256:aes128cfb -c "$work/srk.ctx" \
        -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt'
tpm2_evictcontrol -Q -C o -c "$work/srk.ctx" 0x81000001
tpm2_flushcontext -t # no resource manager: free the transient copy

img=$work/disk.img
truncate -s 64M "$img"
head -c 32 /dev/urandom | base64 -w0 >"$work/pass"
cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
        --key-file "$work/pass" "$img"
conf=$work/empty.conf
: >"$conf"
"$cvm" --config "$conf" --kernel-cmdline /dev/null --tpm "$tcti" enroll "$img" --unlock-key-file "$work/pass" \
        --pcrs 7 >/dev/null
PASSWORD=$(cat "$work/pass") systemd-cryptenroll --tpm2-device="$tcti" --tpm2-pcrs=7 "$img" >/dev/null 2>&1
clevis luks bind -y -d "$img" -k "$work/pass" tpm2 '{"pcr_ids":"7"}' >/dev/null 2>&1
clevis_slot=$(clevis luks list -d "$img" | sed -n 's/^\([0-9]*\): tpm2.*/\1/p' | head -n1)
tpm2_flushcontext -t -l -s >/dev/null 2>&1 || true

run_cvmcrypt() { "$cvm" --config "$conf" --kernel-cmdline /dev/null --tpm "$1" unlock "$img" --test >/dev/null; }
# systemd-cryptsetup unseals, then fails to activate (no device-mapper here): success means it got
# as far as asking device-mapper, which we check in the pcap run below.
run_systemd() { /lib/systemd/systemd-cryptsetup attach benchsd "$img" - "tpm2-device=$1,headless=1" >/dev/null 2>&1 || true; }
run_clevis() { TPM2TOOLS_TCTI=$1 clevis luks pass -d "$img" -s "$clevis_slot" >/dev/null; }

time_us() { # time_us FUNCTION: one timed run of FUNCTION on the plain TCTI, in microseconds
        local t0 t1
        tpm2_flushcontext -t -l -s >/dev/null 2>&1 || true
        t0=$(date +%s%N)
        "$1" "$tcti"
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000))
}

median_ms() { # median_ms FILE: median of the microsecond times in FILE, in milliseconds
        sort -n "$1" | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] / 1000 }'
}

count_cmds() { # count_cmds FUNCTION: TPM commands of one run, and their names
        local pcap=$work/$1.pcap
        tpm2_flushcontext -t -l -s >/dev/null 2>&1 || true
        TCTI_PCAP_FILE=$pcap "$1" "pcap:$tcti"
        python3 "$top/bench/pcap-count.py" "$pcap"
}

run_cvmcrypt "$tcti" || { echo "cvmcrypt unlock --test failed" >&2; exit 1; }
run_clevis "$tcti" || { echo "clevis luks pass failed" >&2; exit 1; }

# RUNS rounds of one run of each tool, so that other load on the machine falls on all three alike;
# the order rotates, so that each tool follows each other one (and its cache footprint) as often.
tools=(cvmcrypt systemd clevis)
for round in $(seq "$RUNS"); do
        for k in 0 1 2; do
                tool=${tools[(round + k) % 3]}
                time_us "run_$tool" >>"$work/$tool.us"
        done
done
cvm_ms=$(median_ms "$work/cvmcrypt.us")
sd_ms=$(median_ms "$work/systemd.us")
cl_ms=$(median_ms "$work/clevis.us")
mapfile -t cvm_c < <(count_cmds run_cvmcrypt)
mapfile -t sd_c < <(count_cmds run_systemd)
mapfile -t cl_c < <(count_cmds run_clevis)
[[ " ${sd_c[1]} " == *" Unseal "* ]] || { echo "systemd-cryptsetup did not reach Unseal: ${sd_c[1]}" >&2; exit 1; }
ratio_sd=$(awk -v a="$cvm_ms" -v b="$sd_ms" 'BEGIN { printf "%.2f", a / b }')
ratio_cl=$(awk -v a="$cvm_ms" -v b="$cl_ms" 'BEGIN { printf "%.2f", a / b }')

report=$(cat <<REPORT
## unlock: $(date -u +%Y-%m-%d) — \`bench/unlock.sh\` (RUNS=$RUNS, swtpm, persistent SRK)

| tool | median ms (whole process) | TPM commands per unseal |
|---|---|---|
| cvmcrypt unlock --test | $cvm_ms | ${cvm_c[0]} |
| systemd-cryptsetup attach (tpm2-device) | $sd_ms | ${sd_c[0]} |
| clevis luks pass (tpm2) | $cl_ms | ${cl_c[0]} |

Ratio cvmcrypt/systemd: **$ratio_sd** (target ≤ 0.5); cvmcrypt/clevis: $ratio_cl.
cvmcrypt's commands: ${cvm_c[1]}
systemd's commands: ${sd_c[1]}
clevis's commands: ${cl_c[1]}
REPORT
)
printf '%s\n\n' "$report"
printf '%s\n\n' "$report" >>"$top/bench/RESULTS.md"
