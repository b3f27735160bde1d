#!/usr/bin/env bats
# Live attestation sources, each with its own stand-in for the platform (nothing here needs real
# SEV-SNP hardware; the test hierarchy of tests/fixtures/make-test-chain stands in for AMD's):
#   hcl-nv     a private swtpm made into an Azure-like vTPM by tests/fixtures/make-hcl-vtpm, behind
#              tests/tpm/tcti-paravisor.c, which rewrites the HCL report when NV 0x01400002 is written
#   tsm        a plain directory served by tests/fixtures/fake-tsm, started and stopped by pid
#   sev-guest  tests/fixtures/fake-sev-guest.c, an LD_PRELOAD shim answering the ioctls on one path
# Helpers come from `make check` in the build directory of $CVMCRYPT.

load helpers
bats_require_minimum_version 1.5.0

setup_file() {
        CHAIN=$(mktemp -d /tmp/cvmcrypt-chain.XXXXXX)
        sh "$BATS_TEST_DIRNAME/../fixtures/make-test-chain" "$CHAIN" >/dev/null 2>&1
        export CHAIN
}

teardown_file() {
        rm -rf "$CHAIN"
}

setup() {
        common_setup
        BUILD=$(dirname "$CVMCRYPT")
        FIXTURE=$BUILD/tests/fixtures/snp-fixture
        for f in "$FIXTURE" "$BUILD/tests/fixtures/libfake-sev-guest.so" "$BUILD/tests/tpm/libtss2-tcti-cvmparavisor.so"; do
                [ -e "$f" ] || { echo "$f not built: run make check first" >&2; return 1; }
        done
        TRUST=(--anchors "$CHAIN/anchors")
        VCEK=(--vcek "$CHAIN/vcek-milan.pem" --chain "$CHAIN/chain-milan.pem")
        HELPER_PID=
}

teardown() {
        if [ -n "$HELPER_PID" ]; then
                kill "$HELPER_PID" 2>/dev/null || true
                wait "$HELPER_PID" 2>/dev/null || true
        fi
        common_teardown
}

# Each failure: exit 5 and every LINE (substring) on a line of stderr.
refused() {
        echo "status $status, stdout '$output', stderr '$stderr'"
        [ "$status" -eq "$EXIT_ATTESTATION" ]
        local want
        for want in "$@"; do
                printf '%s\n' "$stderr" | grep -F -- "$want"
        done
}

# ---- hcl-nv ----

# hcl_vtpm [make-hcl-vtpm OPTIONS]: a private swtpm with the Azure layout.
hcl_vtpm() {
        swtpm_start
        sh "$BATS_TEST_DIRNAME/../fixtures/make-hcl-vtpm" "$FIXTURE" "$CHAIN" "$TEST_TMP/vtpm" "$@"
}

# paravisor [OPTION]: the TCTI of the swtpm behind the paravisor shim.
paravisor() {
        echo "cvmparavisor:refresh=$TEST_TMP/vtpm/refresh${1:+,$1}:$TPM_TCTI"
}

# cvm_pv ARGS...: cvm with the shim on the library path.
cvm_pv() {
        LD_LIBRARY_PATH=$BUILD/tests/tpm${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} cvm "$@"
}

@test "hcl-nv: fresh report, SNP chain, binding, AK at 0x81000003 is HCLAkPub, live quote" {
        hcl_vtpm
        run --separate-stderr cvm_pv attest verify --source hcl-nv --tpm "$(paravisor)" "${VCEK[@]}" "${TRUST[@]}"
        echo "status $status, stdout '$output', stderr '$stderr'"
        [ "$status" -eq 0 ]
        [[ "$output" == *"verified: Milan VCEK, chain SEV-Milan <- ARK-Milan"* ]]
        [[ "$output" == *"user-data is our nonce; vTPM key 0x81000003 is HCLAkPub and its quote of PCRs 0-7 (sha256) with our nonce verifies"* ]]
        [ -z "$stderr" ]
        run --separate-stderr cvm_pv attest verify --json --source hcl-nv --tpm "$(paravisor)" "${VCEK[@]}" "${TRUST[@]}"
        [ "$status" -eq 0 ]
        [ "$(jq -r '[.verified, .source, .hcl_checked, .ak_checked, .quote_checked] | join(",")' <<<"$output")" = true,hcl-nv,true,true,true ]
}

@test "hcl-nv: the live verification sends 11 TPM commands (2048-byte report)" {
        hcl_vtpm
        TCTI_PCAP_FILE=$TEST_TMP/t.pcap run cvm_pv attest verify --source hcl-nv --tpm "pcap:$(paravisor)" "${VCEK[@]}" "${TRUST[@]}"
        [ "$status" -eq 0 ]
        run python3 "$BATS_TEST_DIRNAME/../../bench/pcap-count.py" "$TEST_TMP/t.pcap"
        echo "$output"
        # NV_ReadPublic + NV_Write (nonce), NV_ReadPublic x2 + GetCapability + NV_Read x2 (report),
        # ReadPublic x2 + Quote (AK), PCR_Read. The paravisor's own writes happen behind the capture.
        [ "${lines[0]}" -eq 11 ]
        [ "$(sed 's/0x137/NV_Write/; s/0x158/Quote/' <<<"${lines[1]}")" = \
                "NV_ReadPublic NV_Write NV_ReadPublic NV_ReadPublic GetCapability NV_Read NV_Read ReadPublic ReadPublic Quote PCR_Read" ]
}

@test "hcl-nv: each run writes a new nonce to NV 0x01400002 and gets it back as user-data" {
        hcl_vtpm
        local n1 n2
        cvm_pv attest fetch --source hcl-nv --tpm "$(paravisor)" "$TEST_TMP/h1.bin"
        n1=$(tpm2_nvread 0x01400002 -C o | od -An -v -tx1 | tr -d ' \n')
        cvm_pv attest fetch --source hcl-nv --tpm "$(paravisor)" "$TEST_TMP/h2.bin"
        n2=$(tpm2_nvread 0x01400002 -C o | od -An -v -tx1 | tr -d ' \n')
        echo "n1 $n1 n2 $n2"
        [[ "$n1" =~ ^[0-9a-f]{128}$ ]]
        [ "$n1" != "$n2" ]
        [ "$n1" != "$(printf '%0128d' 0)" ]
        [ "$(cvm attest show --json --hcl "$TEST_TMP/h1.bin" | jq -r .hcl.user_data)" = "$n1" ]
        [ "$(cvm attest show --json --hcl "$TEST_TMP/h2.bin" | jq -r .hcl.user_data)" = "$n2" ]
        # What fetch wrote is exactly what the vTPM now holds.
        tpm2_nvread 0x01400001 -C o -o "$TEST_TMP/nv.bin"
        cmp "$TEST_TMP/nv.bin" "$TEST_TMP/h2.bin"
}

@test "hcl-nv: a report the paravisor did not refresh is stale and refused" {
        hcl_vtpm
        # Straight to swtpm: the write to NV 0x01400002 changes nothing in NV 0x01400001.
        run --separate-stderr cvm attest verify --source hcl-nv --tpm "$TPM_TCTI" --timeout 1 "${VCEK[@]}" "${TRUST[@]}"
        refused "the HCL report's user-data is not the nonce written to NV index 0x01400002: the paravisor did not refresh it within 1 s (stale report)"
        [ -z "$output" ]
}

@test "hcl-nv: the key at 0x81000003 is not HCLAkPub: refused by name" {
        hcl_vtpm --ak other
        run --separate-stderr cvm_pv attest verify --source hcl-nv --tpm "$(paravisor)" "${VCEK[@]}" "${TRUST[@]}"
        refused "attest verify: hcl-ak: the vTPM key at 0x81000003 is not HCLAkPub of the HCL report"
        [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
}

@test "hcl-nv: no key at 0x81000003: refused" {
        hcl_vtpm --ak none
        run --separate-stderr cvm_pv attest verify --source hcl-nv --tpm "$(paravisor)" "${VCEK[@]}" "${TRUST[@]}"
        refused "attest verify: hcl-ak: no key at persistent handle 0x81000003 in the vTPM"
}

@test "hcl-nv: HCLAkPub at 0x81000003 but not a restricted signing key: refused" {
        hcl_vtpm --ak unrestricted
        run --separate-stderr cvm_pv attest verify --source hcl-nv --tpm "$(paravisor)" "${VCEK[@]}" "${TRUST[@]}"
        refused "hcl-ak: the vTPM key at 0x81000003 is not a restricted fixedTPM signing key"
}

@test "hcl-nv: a quote made by another key of the TPM is refused" {
        hcl_vtpm --decoy
        run --separate-stderr cvm_pv attest verify --source hcl-nv --tpm "$(paravisor quote-handle=0x81000004)" "${VCEK[@]}" "${TRUST[@]}"
        refused "attest verify: quote-signature: the quote is not signed by the attestation key"
        [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
}

@test "hcl-nv: an HCL report whose SNP signature is bad is refused" {
        hcl_vtpm --bad-sig
        run --separate-stderr cvm_pv attest verify --source hcl-nv --tpm "$(paravisor)" "${VCEK[@]}" "${TRUST[@]}"
        refused "attest verify: report-signature: report signature invalid"
}

@test "hcl-nv: the report is checked against the policy too" {
        hcl_vtpm
        printf '{"vm-configuration": {"console-enabled": false}}' >"$TEST_TMP/p.json"
        run --separate-stderr cvm_pv attest verify --source hcl-nv --tpm "$(paravisor)" --policy "$TEST_TMP/p.json" "${VCEK[@]}" "${TRUST[@]}"
        refused "vm-configuration: console-enabled is true, the policy demands false"
}

@test "hcl-nv: a vTPM without NV 0x01400001 is not an Azure CVM vTPM, and is left alone" {
        swtpm_start
        run --separate-stderr cvm attest verify --source hcl-nv --tpm "$TPM_TCTI" "${VCEK[@]}" "${TRUST[@]}"
        echo "status $status, stderr '$stderr'"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$stderr" == *"attest verify: not an Azure CVM vTPM: NV index 0x01400001 (HCL report) is not defined"* ]]
        run tpm2_nvreadpublic 0x01400002
        [ "$status" -ne 0 ]
}

@test "hcl-nv: NV 0x01400002 missing is defined (64 bytes, owner read/write) like Azure's tools do" {
        hcl_vtpm --no-request-index
        run tpm2_nvreadpublic 0x01400002
        [ "$status" -ne 0 ]
        run --separate-stderr cvm_pv attest verify --source hcl-nv --tpm "$(paravisor)" "${VCEK[@]}" "${TRUST[@]}"
        [ "$status" -eq 0 ]
        run tpm2_nvreadpublic 0x01400002
        [ "$status" -eq 0 ]
        [[ "$output" == *"size: 64"* ]]
}

@test "hcl-nv: show and fetch --json" {
        hcl_vtpm
        run --separate-stderr cvm_pv attest show --json --source hcl-nv --tpm "$(paravisor)"
        [ "$status" -eq 0 ]
        [ "$(jq -r '[.source, .hcl.runtime_data_bound, .report.version] | join(",")' <<<"$output")" = hcl-nv,true,3 ]
        run --separate-stderr cvm_pv attest fetch --json --source hcl-nv --tpm "$(paravisor)" --nonce 00112233 "$TEST_TMP/h.bin"
        [ "$status" -eq 0 ]
        [ "$(jq -r '[.source, .hcl, .size] | join(",")' <<<"$output")" = hcl-nv,true,2048 ]
        [[ "$(jq -r .nonce <<<"$output")" == 00112233000000* ]]
        [[ "$(cvm attest show --json --hcl "$TEST_TMP/h.bin" | jq -r .hcl.user_data)" == 00112233000000* ]]
}

# ---- configfs-tsm ----

# tsm_start [fake-tsm OPTIONS]: the report directory $TSM served in the background.
tsm_start() {
        TSM=$TEST_TMP/tsm
        mkdir "$TSM"
        "$FIXTURE" certtable vcek="$CHAIN/vcek-milan.pem" ask="$CHAIN/ask-milan.pem" ark="$CHAIN/ark-milan.pem" >"$TEST_TMP/certs.bin"
        bash "$BATS_TEST_DIRNAME/../fixtures/fake-tsm" "$FIXTURE" "$CHAIN/vcek-milan.key" "$TSM" "$@" 3>&- &
        HELPER_PID=$!
}

@test "tsm: report over our nonce, certificates from auxblob, verified" {
        tsm_start --certs "$TEST_TMP/certs.bin"
        run --separate-stderr cvm attest verify --source "tsm:$TSM" "${TRUST[@]}"
        echo "status $status, stdout '$output', stderr '$stderr'"
        [ "$status" -eq 0 ]
        [[ "$output" == *"verified: Milan VCEK, chain SEV-Milan <- ARK-Milan"* ]]
        [[ "$output" == *"report: fresh from tsm, REPORT_DATA is our nonce"* ]]
        [ "$(grep -c '^served ' "$TSM.log")" -eq 1 ]
}

@test "tsm: fetch writes the report and its certificates; verify reads them back" {
        tsm_start --certs "$TEST_TMP/certs.bin"
        mkdir "$TEST_TMP/certs"
        run --separate-stderr cvm attest fetch --source "tsm:$TSM" --nonce c0ffee --certs "$TEST_TMP/certs" "$TEST_TMP/r.bin"
        echo "status $status, stdout '$output', stderr '$stderr'"
        [ "$status" -eq 0 ]
        [[ "$output" == *"certificates: vcek ask ark in $TEST_TMP/certs"* ]]
        [ "$(stat -c %s "$TEST_TMP/r.bin")" -eq 1184 ]
        [[ "$(cvm attest show --json "$TEST_TMP/r.bin" | jq -r .report_data)" == c0ffee0000* ]]
        openssl x509 -inform DER -in "$TEST_TMP/certs/vcek.der" -noout -subject | grep -F SEV-VCEK
        run cvm attest verify "$TEST_TMP/r.bin" --certs "$TEST_TMP/certs" "${TRUST[@]}"
        [ "$status" -eq 0 ]
}

@test "tsm: a stale report (REPORT_DATA is not our nonce) is refused" {
        tsm_start --stale --certs "$TEST_TMP/certs.bin"
        run --separate-stderr cvm attest verify --source "tsm:$TSM" "${TRUST[@]}"
        refused "the report's REPORT_DATA is not the nonce we sent (stale or replayed report)"
}

@test "tsm: a changed generation means another writer: retried with a fresh entry, refused if it keeps happening" {
        tsm_start --busy-first 1 --certs "$TEST_TMP/certs.bin"
        run --separate-stderr cvm attest verify --source "tsm:$TSM" "${TRUST[@]}"
        [ "$status" -eq 0 ]
        [ "$(grep -c '^served ' "$TSM.log")" -eq 2 ]
        kill "$HELPER_PID"
        wait "$HELPER_PID" 2>/dev/null || true
        rm -rf "$TSM" "$TSM.log"
        tsm_start --generation 2 --certs "$TEST_TMP/certs.bin"
        run --separate-stderr cvm attest verify --source "tsm:$TSM" "${TRUST[@]}"
        echo "status $status, stderr '$stderr'"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$stderr" == *"another writer kept changing our report entry (generation); giving up"* ]]
        [ "$(grep -c '^served ' "$TSM.log")" -eq 3 ]
}

@test "tsm: a provider other than sev_guest, no provider, no answer" {
        tsm_start --provider tdx_guest
        run --separate-stderr cvm attest fetch --source "tsm:$TSM" "$TEST_TMP/r.bin"
        [ "$status" -eq "$EXIT_UNAVAILABLE" ]
        [[ "$stderr" == *"the configfs-tsm provider is not sev_guest"* ]]
        run --separate-stderr cvm attest fetch --source "tsm:$TEST_TMP/none" "$TEST_TMP/r.bin"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$stderr" == *"$TEST_TMP/none: no configfs-tsm report provider here"* ]]
        mkdir "$TEST_TMP/silent"
        run --separate-stderr cvm attest fetch --source "tsm:$TEST_TMP/silent" --timeout 1 "$TEST_TMP/r.bin"
        [ "$status" -eq "$EXIT_FAILURE_GENERIC" ]
        [[ "$stderr" == *"$TEST_TMP/silent: no report within 1 s"* ]]
        [ ! -e "$TEST_TMP/r.bin" ]
}

@test "tsm: a report without certificates needs --vcek or --certs" {
        tsm_start
        run --separate-stderr cvm attest verify --source "tsm:$TSM" "${TRUST[@]}"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$stderr" == *"came without certificates; give --vcek or --certs"* ]]
        run cvm attest verify --source "tsm:$TSM" "${VCEK[@]}" "${TRUST[@]}"
        [ "$status" -eq 0 ]
}

# ---- /dev/sev-guest ----

# sev ARGS...: cvm with the fake device at $TEST_TMP/sev-guest (CVMTEST_SEV_MODE from the caller).
sev() {
        ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
                LD_PRELOAD=$BUILD/tests/fixtures/libfake-sev-guest.so CVMTEST_SEV_GUEST=$TEST_TMP/sev-guest \
                CVMTEST_SEV_KEY=$CHAIN/vcek-milan.key CVMTEST_SEV_CERTS=${SEV_CERTS-$TEST_TMP/certs.bin} \
                CVMTEST_SEV_LOG=$TEST_TMP/sev.log cvm "$@"
}

sev_setup() {
        "$FIXTURE" certtable vcek="$CHAIN/vcek-milan.pem" ask="$CHAIN/ask-milan.pem" ark="$CHAIN/ark-milan.pem" >"$TEST_TMP/certs.bin"
}

@test "sev-guest: SNP_GET_EXT_REPORT with our nonce and the certificate table, verified" {
        sev_setup
        run --separate-stderr sev attest verify --source "sev-guest:$TEST_TMP/sev-guest" "${TRUST[@]}"
        echo "status $status, stdout '$output', stderr '$stderr'"
        [ "$status" -eq 0 ]
        [[ "$output" == *"report: fresh from sev-guest, REPORT_DATA is our nonce"* ]]
        [ "$(cat "$TEST_TMP/sev.log")" = ext ]
        run --separate-stderr sev attest show --json --source "sev-guest:$TEST_TMP/sev-guest"
        [ "$status" -eq 0 ]
        [ "$(jq -r '.certificates | join(",")' <<<"$output")" = vcek,ask,ark ]
}

@test "sev-guest: without the extended request, SNP_GET_REPORT and certificates from files" {
        sev_setup
        CVMTEST_SEV_MODE=noext run --separate-stderr sev attest verify --source "sev-guest:$TEST_TMP/sev-guest" "${VCEK[@]}" "${TRUST[@]}"
        [ "$status" -eq 0 ]
        [ "$(tr '\n' ' ' <"$TEST_TMP/sev.log")" = "ext plain " ]
}

@test "sev-guest: stale report, bad signature, firmware error, malformed certificate table" {
        sev_setup
        CVMTEST_SEV_MODE=stale run --separate-stderr sev attest verify --source "sev-guest:$TEST_TMP/sev-guest" "${TRUST[@]}"
        refused "the report's REPORT_DATA is not the nonce we sent"
        CVMTEST_SEV_MODE=badsig run --separate-stderr sev attest verify --source "sev-guest:$TEST_TMP/sev-guest" "${TRUST[@]}"
        refused "report-signature: report signature invalid"
        CVMTEST_SEV_MODE=fwerror run --separate-stderr sev attest fetch --source "sev-guest:$TEST_TMP/sev-guest" "$TEST_TMP/r.bin"
        [ "$status" -eq "$EXIT_FAILURE_GENERIC" ]
        [[ "$stderr" == *"the SEV firmware refused the report request"* ]]
        # Two entries pointing at the same bytes.
        python3 -c 'import struct,sys; d=bytearray(open(sys.argv[1],"rb").read()); d[24+16:24+24]=d[16:24]; open(sys.argv[1],"wb").write(d)' "$TEST_TMP/certs.bin"
        run --separate-stderr sev -v attest verify --source "sev-guest:$TEST_TMP/sev-guest" "${TRUST[@]}"
        [ "$status" -eq "$EXIT_FAILURE_GENERIC" ]
        [[ "$stderr" == *"Certificate table: entries 0 and 1 overlap"* ]]
        [[ "$stderr" == *"malformed certificate table"* ]]
}

@test "sev-guest: no device" {
        run --separate-stderr cvm attest fetch --source "sev-guest:$TEST_TMP/nothing" "$TEST_TMP/r.bin"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$stderr" == *"$TEST_TMP/nothing: no SEV-SNP guest device here"* ]]
}

# ---- command line ----

misuse() {
        local expect=$1
        shift
        run --separate-stderr cvm "$@"
        echo "argv: $* -> status $status, stdout '$output', stderr '$stderr'"
        [ "$status" -eq "$EXIT_USAGE" ]
        [ -z "$output" ]
        [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
        [[ "$stderr" == *"$expect"* ]]
}

@test "attest --source misuse: exit 2 with one line" {
        local f=$TEST_TMP/r.bin
        misuse "attest fetch: give --source SOURCE and the FILE to write the report to" attest fetch
        misuse "attest fetch: give --source SOURCE and the FILE to write the report to" attest fetch --source tsm
        misuse "--source must be hcl-nv, tsm[:DIR] or sev-guest[:DEVICE]" attest show --source nv
        misuse "--source must be hcl-nv, tsm[:DIR] or sev-guest[:DEVICE]" attest show --source tsm:relative/dir
        misuse "--source must be hcl-nv, tsm[:DIR] or sev-guest[:DEVICE]" attest show --source hcl-nv:/x
        misuse "give either a report FILE or --hcl FILE, or --source SOURCE" attest verify "$f" --source tsm --vcek "$f"
        misuse "--vcek FILE is required (the VCEK or VLEK that signed the report), or --certs DIR" attest verify --source hcl-nv
        misuse "give --vcek FILE or --certs DIR, not both" attest verify --source tsm --vcek "$f" --certs "$TEST_TMP"
        misuse "are for --hcl FILE; with --source hcl-nv the vTPM is quoted live" attest verify --source hcl-nv --vcek "$f" --nonce 00
        misuse "--timeout takes 1..600 seconds, with --source" attest show "$f" --timeout 5
        misuse "--timeout takes 1..600 seconds, with --source" attest show --source tsm --timeout 0
        misuse "attest fetch: --nonce must be 1..64 bytes as hex" attest fetch --source tsm --nonce 0g "$f"
        misuse "are for 'attest verify'" attest fetch --source tsm --vcek "$f" "$f"
        misuse "are for 'attest verify'" attest show --source tsm --certs "$TEST_TMP"
}
