#!/usr/bin/env bats
# Command-line contract: help, version, exit codes, one-line errors for every misuse.

load helpers

setup() { common_setup; }
teardown() { common_teardown; }

@test "exit codes in helpers.bash match src/exit-codes.h" {
        hdr=$BATS_TEST_DIRNAME/../../src/exit-codes.h
        for name in EXIT_OK EXIT_FAILURE_GENERIC EXIT_USAGE EXIT_CONFIG EXIT_DENIED EXIT_ATTESTATION \
                EXIT_DEVICE EXIT_TPM EXIT_UNAVAILABLE; do
                want=$(sed -n "s/^ *$name = \([0-9]*\),.*/\1/p" "$hdr")
                [ -n "$want" ]
                [ "${!name}" = "$want" ]
        done
}

@test "exit codes are documented in the man page" {
        man=$BATS_TEST_DIRNAME/../../docs/cvmcrypt.8
        for code in 0 1 2 3 4 5 6 7 8; do
                grep -q "^\.IP $code\$" "$man"
        done
}

@test "--version prints the version" {
        run "$CVMCRYPT" --version
        [ "$status" -eq 0 ]
        [[ "$output" =~ ^cvmcrypt\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
}

@test "--help lists every command of design.md" {
        run "$CVMCRYPT" --help
        [ "$status" -eq 0 ]
        for verb in enroll unlock boot tempdisk attest measure predict status reseal recover provision; do
                [[ "$output" == *"  $verb "* ]]
        done
}

@test "every command has --help" {
        for verb in enroll unlock boot tempdisk attest measure predict cap status reseal recover remove \
                provision image-prepare; do
                run "$CVMCRYPT" "$verb" --help
                [ "$status" -eq 0 ]
                [[ "$output" == "Usage: cvmcrypt $verb"* ]]
                [[ "$output" == *"--config FILE"* ]]
                [[ "$output" == *"--tpm TCTI"* ]]
                [[ "$output" == *"--json"* ]]
        done
}

@test "global options are accepted before and after the command" {
        run cvm --json boot --dry-run
        [ "$status" -eq 0 ]
        run cvm boot --dry-run --json --tpm swtpm:path=/nonexistent
        [ "$status" -eq 0 ]
        [[ "$output" == *'"tpm":"swtpm:path=/nonexistent"'* ]]
}

# Each misuse: exit 2, nothing on stdout, exactly one line on stderr naming the problem.
misuse() {
        local expect=$1
        shift
        run --separate-stderr "$CVMCRYPT" "$@"
        echo "argv: $* -> status $status, stdout '$output', stderr '$stderr'"
        [ "$status" -eq "$EXIT_USAGE" ]
        [ -z "$output" ]
        [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
        [[ "$stderr" == *"$expect"* ]]
}

@test "CLI misuse: one-line error and exit 2" {
        bats_require_minimum_version 1.5.0
        misuse "no command given"
        misuse "unknown command 'frobnicate'" frobnicate
        misuse "unknown option '--bogus'" --bogus
        misuse "unknown option '-x'" -x boot
        misuse "boot: unknown option '--bogus'" boot --bogus
        misuse "option '--config' needs an argument" --config
        misuse "boot: option '--tpm' needs an argument" boot --dry-run --tpm
        misuse "boot: expected no arguments, got extra arguments" boot --dry-run extra
        misuse "boot: unknown option '--device'" boot --device /dev/null
        misuse "unknown command ''" ""
}

@test "boot outside an initrd refuses and touches nothing" {
        [ ! -e /etc/initrd-release ]
        run cvm boot
        [ "$status" -eq "$EXIT_DENIED" ]
        [ "$output" = "cvmcrypt: boot: not in an initrd (/etc/initrd-release is missing): nothing done" ]
}

@test "random argv never crashes (argv fuzz run)" {
        # Harmless tokens only: no real device is ever named.
        tokens=(boot tempdisk enroll unlock attest status cap measure predict --json --help --version -v
                --config /nonexistent/c --tpm swtpm:path=/nonexistent --kernel-cmdline /dev/null --dry-run
                --device /nonexistent/d - -- "" "$(printf 'x%.0s' {1..5000})" $'\e[2J' "%s%n%s" =)
        RANDOM=4242
        for i in $(seq 300); do
                args=()
                n=$((RANDOM % 6))
                for _ in $(seq $n); do args+=("${tokens[RANDOM % ${#tokens[@]}]}"); done
                run "$CVMCRYPT" --kernel-cmdline /dev/null "${args[@]}"
                case $status in
                0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8) ;;
                *) echo "argv (${args[*]}) -> status $status: $output"; false ;;
                esac
                if [[ "$output" == *Sanitizer* || "$output" == *"runtime error"* ]]; then
                        echo "argv (${args[*]}): $output"
                        false
                fi
        done
}
