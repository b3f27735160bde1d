#!/usr/bin/env bats
# cvmcrypt attest show|verify on the real vectors (tests/vectors/README.md): text and JSON output,
# exit codes (0 verified, 5 attestation failed, 2 misuse), one line per failed check.

load helpers
bats_require_minimum_version 1.5.0

setup() {
        common_setup
        V=$BATS_TEST_DIRNAME/../vectors/snp
        ANCHORS=$BATS_TEST_DIRNAME/../../anchors
        A=(--anchors "$ANCHORS")
        printf '{"debug": true}\n' >"$TEST_TMP/allow-debug.json"
}
teardown() { common_teardown; }

# verify_fails LINE...: the last run exited 5 and stderr has each LINE (substring) on a line of its own.
verify_fails() {
        echo "status $status, stdout '$output', stderr '$stderr'"
        [ "$status" -eq "$EXIT_ATTESTATION" ]
        local want
        for want in "$@"; do
                printf '%s\n' "$stderr" | grep -F -- "$want"
        done
}

@test "attest show: every field by name, TCB decoded" {
        run cvm attest show "$V/reports/virtee-milan-v2-report.bin"
        [ "$status" -eq 0 ]
        for field in version guest_svn policy family_id image_id vmpl signature_algo current_tcb platform_info \
                signer_info report_data measurement host_data id_key_digest author_key_digest report_id report_id_ma \
                reported_tcb chip_id committed_tcb current_version committed_version launch_tcb signature_r signature_s; do
                [[ "$output" == *"$field"* ]] || { echo "missing $field"; false; }
        done
        [[ "$output" == *"measurement: 7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"* ]]
        [[ "$output" == *"raw: 0x7308000000000003"* ]]
        [[ "$output" == *"microcode: 115"* ]]
        [[ "$output" == *"current_version: 1.52.4"* ]]
        [[ "$output" == *"flags: smt reserved-must-be-one"* ]]
}

@test "attest show: a v3 report has the CPUID fields and a known product" {
        run cvm attest show "$V/reports/trustee-milan-v3-vlek-report.bin"
        [ "$status" -eq 0 ]
        [[ "$output" == *"cpuid_fam_id: 25"* ]]
        [[ "$output" == *"product: Milan"* ]]
        [[ "$output" == *"signing_key: vlek"* ]]
        [[ "$output" == *"vmpl: 1"* ]]
}

@test "attest show --json: machine-readable, same values" {
        run --separate-stderr cvm attest show --json "$V/reports/gsg-milan-v2-report.bin"
        [ "$status" -eq 0 ]
        [ "$(jq -r .version <<<"$output")" = 2 ]
        [ "$(jq -r .policy.raw <<<"$output")" = 0x00000000000b0000 ]
        [ "$(jq -r '.policy.flags | index("debug") != null' <<<"$output")" = true ]
        [ "$(jq -r .reported_tcb.microcode <<<"$output")" = 68 ]
        [ "$(jq -r .chip_id <<<"$output" | cut -c1-16)" = 3ac3fe21e13fb099 ]
        [ "$(jq -r .current_version <<<"$output")" = 1.49.3 ]
}

@test "attest show --hcl: HCL header, runtime data binding, the SNP report inside" {
        run --separate-stderr cvm attest show --json --hcl "$V/azure-hcl/trustee-genoa-v3-hcl-report.bin"
        [ "$status" -eq 0 ]
        [ "$(jq -r .hcl.header_version <<<"$output")" = 2 ]
        [ "$(jq -r .hcl.runtime_data_bound <<<"$output")" = true ]
        [ "$(jq -r .hcl.ak_pub_bits <<<"$output")" = 2048 ]
        [ "$(jq -r .hcl.vmUniqueId <<<"$output")" = 390CBCF5-6C67-4D9B-98EF-C3F1699CC8FC ]
        [ "$(jq -r .report.product <<<"$output")" = Genoa ]
        [ "$(jq -r .report.cpuid_mod_id <<<"$output")" = 17 ]
        run cvm attest show --hcl "$V/azure-hcl/kinvolk-milan-v2-hcl-report.bin"
        [ "$status" -eq 0 ]
        [[ "$output" == *"runtime_data_bound: true"* ]]
        [[ "$output" == *"secure-boot: true"* ]]
}

@test "attest show: malformed input is an error, not a report" {
        head -c 1183 "$V/reports/gsg-milan-v2-report.bin" >"$TEST_TMP/short.bin"
        run --separate-stderr cvm attest show "$TEST_TMP/short.bin"
        [ "$status" -eq "$EXIT_FAILURE_GENERIC" ]
        [ -z "$output" ]
        [[ "$stderr" == *"not a valid SEV-SNP report"* ]]
        run --separate-stderr cvm attest show "$V/azure-hcl/trustee-milan-v3-hcl-report.bin"
        [ "$status" -eq "$EXIT_FAILURE_GENERIC" ]
        [[ "$stderr" == *"use --hcl"* ]]
}

@test "verify: virtee Milan v2 is valid end to end" {
        run --separate-stderr cvm attest verify "$V/reports/virtee-milan-v2-report.bin" \
                --vcek "$V/reports/virtee-milan-v2-report.vcek.der" --chain "$V/chains/ask_ark_milan.pem" "${A[@]}"
        [ "$status" -eq 0 ]
        [[ "$output" == *"verified: Milan VCEK, chain SEV-Milan <- ARK-Milan (sha256 69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd)"* ]]
        [ -z "$stderr" ]
}

@test "verify: without --chain the shipped ASK is used" {
        run cvm attest verify "$V/reports/virtee-milan-v2-report.bin" --vcek "$V/reports/virtee-milan-v2-report.vcek.der" "${A[@]}"
        [ "$status" -eq 0 ]
}

@test "verify --json: verdict, chain and policy digest" {
        run --separate-stderr cvm attest verify --json "$V/reports/trustee-milan-v3-vlek-report.bin" \
                --vcek "$V/reports/trustee-milan-v3-vlek-report.vlek.der" --chain "$V/chains/asvk_ark_milan_vlek.pem" "${A[@]}"
        [ "$status" -eq 0 ]
        [ "$(jq -r .verified <<<"$output")" = true ]
        [ "$(jq -r .signing_key <<<"$output")" = vlek ]
        [ "$(jq -r .intermediate <<<"$output")" = SEV-VLEK-Milan ]
        [ "$(jq -r .ark_sha256 <<<"$output")" = 69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd ]
        [ "$(jq -r '.problems | length' <<<"$output")" = 0 ]
        [[ "$(jq -r .policy_sha256 <<<"$output")" =~ ^[0-9a-f]{64}$ ]]
}

@test "verify: gsg Milan v2 fails the default policy (DEBUG), passes one that allows debug" {
        run --separate-stderr cvm attest verify "$V/reports/gsg-milan-v2-report.bin" \
                --vcek "$V/reports/gsg-milan-v2-report.vcek.der" --chain "$V/chains/ask_ark_milan.pem" "${A[@]}"
        verify_fails "attest verify: debug: the guest policy allows debugging"
        [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
        [ -z "$output" ]
        run cvm attest verify "$V/reports/gsg-milan-v2-report.bin" --policy "$TEST_TMP/allow-debug.json" \
                --vcek "$V/reports/gsg-milan-v2-report.vcek.der" --chain "$V/chains/ask_ark_milan.pem" "${A[@]}"
        [ "$status" -eq 0 ]
}

@test "verify: the policy comes from the configuration when --policy is absent" {
        printf 'policy = %s\nanchors = %s\n' "$TEST_TMP/allow-debug.json" "$(cd "$ANCHORS" && pwd)" >"$TEST_TMP/c.conf"
        chmod 600 "$TEST_TMP/c.conf"
        CVM_CONFIG=$TEST_TMP/c.conf run cvm attest verify "$V/reports/gsg-milan-v2-report.bin" \
                --vcek "$V/reports/gsg-milan-v2-report.vcek.der"
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "verify: DERIVED bit-flip reports have invalid signatures" {
        run --separate-stderr cvm attest verify "$V/negative/DERIVED-gsg-milan-v2-report.measurement-bitflip.bin" \
                --policy "$TEST_TMP/allow-debug.json" \
                --vcek "$V/reports/gsg-milan-v2-report.vcek.der" --chain "$V/chains/ask_ark_milan.pem" "${A[@]}"
        verify_fails "report-signature: report signature invalid"
        run --separate-stderr cvm attest verify "$V/negative/DERIVED-virtee-milan-v2-report.policy-debug-set.bin" \
                --vcek "$V/reports/virtee-milan-v2-report.vcek.der" --chain "$V/chains/ask_ark_milan.pem" "${A[@]}"
        verify_fails "report-signature: report signature invalid" "debug: the guest policy allows debugging"
}

@test "verify: a chain of the wrong product is refused" {
        run --separate-stderr cvm attest verify "$V/reports/gsg-milan-v2-report.bin" --policy "$TEST_TMP/allow-debug.json" \
                --vcek "$V/reports/gsg-milan-v2-report.vcek.der" --chain "$V/chains/ask_ark_genoa.pem" "${A[@]}"
        verify_fails "chain: VCEK does not chain to ARK-Genoa"
        run --separate-stderr cvm attest verify "$V/reports/trustee-milan-v3-vlek-report.bin" \
                --vcek "$V/reports/trustee-milan-v3-vlek-report.vlek.der" --chain "$V/chains/asvk_ark_genoa_vlek.pem" "${A[@]}"
        verify_fails "chain: VLEK does not chain to ARK-Genoa"
}

@test "verify: an ARK that is not among the anchors is refused" {
        mkdir "$TEST_TMP/anchors"
        cp "$ANCHORS/ark-genoa.pem" "$TEST_TMP/anchors/"
        run --separate-stderr cvm attest verify "$V/reports/virtee-milan-v2-report.bin" --anchors "$TEST_TMP/anchors" \
                --vcek "$V/reports/virtee-milan-v2-report.vcek.der" --chain "$V/chains/ask_ark_milan.pem"
        verify_fails "ark-pinned: ARK-Milan in the chain is not one of the trusted ARKs"
}

@test "verify --json on failure: every problem listed, exit 5" {
        run --separate-stderr cvm attest verify --json --hcl "$V/azure-hcl/kinvolk-milan-v2-hcl-report.bin" \
                --vcek "$V/negative/kinvolk-wrongchip-vcek-chain.pem" "${A[@]}"
        [ "$status" -eq "$EXIT_ATTESTATION" ]
        [ "$(jq -r .verified <<<"$output")" = false ]
        [ "$(jq -r '[.problems[].check] | sort | join(",")' <<<"$output")" = hwid,report-signature ]
        printf '%s\n' "$stderr" | grep -F "hwid: VCEK hwID da8a5695"
        printf '%s\n' "$stderr" | grep -F "report-signature:"
}

@test "verify --hcl: SNP report, JSON binding and vTPM quote (Milan and Genoa)" {
        run cvm attest verify --hcl "$V/azure-hcl/trustee-milan-v3-hcl-report.bin" \
                --vcek "$V/azure-hcl/trustee-milan-v3-hcl-report.vcek.pem" --chain "$V/chains/ask_ark_milan.pem" "${A[@]}" \
                --quote "$V/azure-hcl/trustee-milan-v3-tpm-quote.attest.bin" \
                --quote-sig "$V/azure-hcl/trustee-milan-v3-tpm-quote.sig.bin" \
                --pcr-values "$V/azure-hcl/trustee-milan-v3-pcrs-sha256.txt" --nonce "$(printf challenge | od -An -tx1 | tr -d ' \n')"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"verified: Milan VCEK"* ]]
        [[ "$output" == *"hcl: runtime data bound to REPORT_DATA; quote signed by HCLAkPub, nonce and PCR digest match"* ]]
        run cvm attest verify --hcl "$V/azure-hcl/trustee-genoa-v3-hcl-report.bin" \
                --vcek "$V/azure-hcl/trustee-genoa-v3-hcl-report.vcek.pem" "${A[@]}" \
                --quote "$V/azure-hcl/trustee-genoa-v3-tpm-quote.attest.bin" \
                --quote-sig "$V/azure-hcl/trustee-genoa-v3-tpm-quote.sig.bin" \
                --pcr-values "$V/azure-hcl/trustee-genoa-v3-pcrs-sha256.txt" \
                --nonce 0218488bae25d2509232bf676f1a66a30d7372add909109b36016ef136f2938ca05475f8b46094de6b64270ea35d950f
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "verify --hcl: wrong nonce and wrong PCR values are refused" {
        sed 's/^7 ./7 f/' "$V/azure-hcl/trustee-milan-v3-pcrs-sha256.txt" >"$TEST_TMP/pcrs.txt"
        run --separate-stderr cvm attest verify --hcl "$V/azure-hcl/trustee-milan-v3-hcl-report.bin" \
                --vcek "$V/azure-hcl/trustee-milan-v3-hcl-report.vcek.pem" "${A[@]}" \
                --quote "$V/azure-hcl/trustee-milan-v3-tpm-quote.attest.bin" \
                --quote-sig "$V/azure-hcl/trustee-milan-v3-tpm-quote.sig.bin" \
                --pcr-values "$TEST_TMP/pcrs.txt" --nonce 00
        verify_fails "quote-nonce:" "quote-pcrs:"
}

@test "verify --hcl: a vm-configuration policy is checked against the runtime data" {
        printf '{"vm-configuration": {"console-enabled": false}}' >"$TEST_TMP/p.json"
        run --separate-stderr cvm attest verify --hcl "$V/azure-hcl/trustee-milan-v3-hcl-report.bin" --policy "$TEST_TMP/p.json" \
                --vcek "$V/azure-hcl/trustee-milan-v3-hcl-report.vcek.pem" "${A[@]}"
        verify_fails "vm-configuration: console-enabled is true, the policy demands false"
}

@test "verify: a malformed policy names the file and the problem" {
        printf '{"debug": false, "debug": true}' >"$TEST_TMP/p.json"
        run --separate-stderr cvm attest verify "$V/reports/virtee-milan-v2-report.bin" --policy "$TEST_TMP/p.json" \
                --vcek "$V/reports/virtee-milan-v2-report.vcek.der" "${A[@]}"
        [ "$status" -eq "$EXIT_FAILURE_GENERIC" ]
        [[ "$stderr" == *"policy $TEST_TMP/p.json: offset"*"appears twice"* ]]
}

@test "verify: missing trust anchors are an error" {
        run --separate-stderr cvm attest verify "$V/reports/virtee-milan-v2-report.bin" --anchors /nonexistent/anchors \
                --vcek "$V/reports/virtee-milan-v2-report.vcek.der"
        [ "$status" -ne 0 ]
        [ "$status" -ne "$EXIT_ATTESTATION" ]
        [[ "$stderr" == *"trust anchors /nonexistent/anchors"* ]]
}

# Each misuse: exit 2, nothing on stdout, one line on stderr.
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

@test "attest misuse: exit 2 with one line" {
        local r=$V/reports/virtee-milan-v2-report.bin
        misuse "expected verify|show|fetch" attest
        misuse "unknown subcommand 'frobnicate'" attest frobnicate
        misuse "give either a report FILE or --hcl FILE" attest show
        misuse "give either a report FILE or --hcl FILE" attest show "$r" --hcl "$r"
        misuse "--vcek FILE is required" attest verify "$r"
        misuse "are for 'attest verify'" attest show "$r" --vcek "$r"
        misuse "a quote needs --hcl, --quote, --quote-sig, --pcr-values and --nonce together" attest verify "$r" --vcek "$r" --nonce 00
        misuse "attest: option '--vcek' needs an argument" attest verify "$r" --vcek
        misuse "attest: expected verify|show|fetch [FILE], got extra arguments" attest show "$r" "$r"
}

@test "attest --help lists the attestation options" {
        run cvm attest --help
        [ "$status" -eq 0 ]
        for opt in --vcek --chain --anchors --policy --crl --hcl --quote --quote-sig --pcr-values --nonce; do
                [[ "$output" == *"  $opt "* ]] || { echo "missing $opt"; false; }
        done
}
