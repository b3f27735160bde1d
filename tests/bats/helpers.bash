# Shared by every bats file: `load helpers`. Each test gets its own temporary directory and, when it
# asks for one, its own swtpm; teardown stops exactly the processes the test started, by pid.

: "${CVMCRYPT:=$BATS_TEST_DIRNAME/../../build/cvmcrypt}"
export CVMCRYPT

# Mirror of src/exit-codes.h; cli.bats checks that the two agree.
EXIT_OK=0
EXIT_FAILURE_GENERIC=1
EXIT_USAGE=2
EXIT_CONFIG=3
EXIT_DENIED=4
EXIT_ATTESTATION=5
EXIT_DEVICE=6
EXIT_TPM=7
EXIT_UNAVAILABLE=8

common_setup() {
        TEST_TMP=$(mktemp -d /tmp/cvmcrypt-test.XXXXXX)
        # An empty kernel command line, so the host's /proc/cmdline never leaks into a test.
        : >"$TEST_TMP/cmdline"
        : >"$TEST_TMP/empty.conf"
        CMDLINE_OPT=(--kernel-cmdline "$TEST_TMP/cmdline")
}

common_teardown() {
        swtpm_stop
        [ -n "${TEST_TMP:-}" ] && rm -rf "$TEST_TMP"
        TEST_TMP=
}

# cvm ARGS...: the binary with a private empty kernel command line and no default config file.
cvm() {
        "$CVMCRYPT" --config "${CVM_CONFIG:-$TEST_TMP/empty.conf}" "${CMDLINE_OPT[@]}" "$@"
}

# Starts a private swtpm in host mode (TCTI swtpm:path=...). Sets TPM_DIR, TPM_TCTI, TPM2TOOLS_TCTI.
# With a directory argument, reuses that TPM state (to restart a TPM without losing it).
swtpm_start() {
        local state=${1:-}
        TPM_DIR=$(mktemp -d /tmp/cvmcrypt-swtpm.XXXXXX)
        [ -n "$state" ] || state=$TPM_DIR
        swtpm socket --tpm2 \
                --server "type=unixio,path=$TPM_DIR/S" \
                --ctrl "type=unixio,path=$TPM_DIR/S.ctrl" \
                --flags not-need-init,startup-clear \
                --tpmstate "dir=$state" \
                --daemon --pid "file=$TPM_DIR/pid" >"$TPM_DIR/log" 2>&1 || {
                echo "swtpm failed to start: $(cat "$TPM_DIR/log")" >&2
                return 1
        }
        local i
        for i in $(seq 100); do
                [ -S "$TPM_DIR/S" ] && [ -s "$TPM_DIR/pid" ] && break
                sleep 0.05
        done
        TPM_STATE=$state
        TPM_TCTI="swtpm:path=$TPM_DIR/S"
        export TPM_DIR TPM_STATE TPM_TCTI TPM2TOOLS_TCTI=$TPM_TCTI
}

swtpm_stop() {
        [ -n "${TPM_DIR:-}" ] || return 0
        local pid i
        pid=$(cat "$TPM_DIR/pid" 2>/dev/null || true)
        if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
                for i in $(seq 100); do
                        kill -0 "$pid" 2>/dev/null || break
                        sleep 0.05
                done
                kill -9 "$pid" 2>/dev/null || true
        fi
        rm -rf "$TPM_DIR"
        # A state directory that swtpm_restart copied out belongs to this test too.
        case ${TPM_STATE:-} in /tmp/cvmcrypt-swtpm-state.*) rm -rf "$TPM_STATE" ;; esac
        TPM_DIR= TPM_STATE=
}

# swtpm_restart: same TPM state (persistent objects, NV), a fresh process: PCRs back to zero.
swtpm_restart() {
        local state=$TPM_STATE keep
        keep=$(mktemp -d /tmp/cvmcrypt-swtpm-state.XXXXXX)
        cp -a "$state/." "$keep/"
        rm -f "$keep/S" "$keep/S.ctrl" "$keep/pid" "$keep/log"
        swtpm_stop
        swtpm_start "$keep"
}

# pcr_extend PCR [DATA]: extends PCR in the sha256 bank with SHA-256(DATA).
pcr_extend() {
        local digest
        digest=$(printf '%s' "${2:-cvmcrypt-test}" | sha256sum | cut -d' ' -f1)
        tpm2_pcrextend "$1:sha256=$digest"
}

# make_luks_image FILE PASSPHRASE [SIZE]: LUKS2 image with a fast PBKDF (tests only).
make_luks_image() {
        truncate -s "${3:-32M}" "$1"
        printf '%s' "$2" | cryptsetup luksFormat --type luks2 --batch-mode \
                --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file - "$1"
}

# passphrase_opens FILE PASSPHRASE: true if the passphrase opens a keyslot (no activation).
passphrase_opens() {
        printf '%s' "$2" | cryptsetup open --test-passphrase --key-file - "$1"
}

# token_edit FILE TOKEN-ID PYTHON-STATEMENT: rewrites one LUKS2 token through cryptsetup's own
# token export/import; the statement edits the dict `t`.
token_edit() {
        local img=$1 id=$2 stmt=$3 json
        json=$(cryptsetup token export --token-id "$id" "$img")
        json=$(printf '%s' "$json" | python3 -c "import json,sys; t=json.load(sys.stdin); $stmt; print(json.dumps(t))")
        cryptsetup token remove --token-id "$id" "$img"
        printf '%s' "$json" | cryptsetup token import --token-id "$id" "$img"
}

# token_field FILE TOKEN-ID FIELD: prints one field of a token.
token_field() {
        cryptsetup token export --token-id "$2" "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['$3'])"
}

# no_lsan CMD...: runs CMD with LeakSanitizer off, for runs under strace: LeakSanitizer refuses to
# work under ptrace and fails the process at exit. (ASAN_OPTIONS is set only in the sanitizer tier;
# leaks are checked by the runs without strace.)
no_lsan() {
        if [ -n "${ASAN_OPTIONS:-}" ]; then
                ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" "$@"
        else
                "$@"
        fi
}
