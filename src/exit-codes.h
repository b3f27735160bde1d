/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One table shared by main.c, docs/cvmcrypt.8 (EXIT STATUS) and tests/bats/helpers.bash. */
enum {
        EXIT_OK = 0,
        EXIT_FAILURE_GENERIC = 1, /* operation failed for a reason not listed below */
        EXIT_USAGE = 2,           /* bad command line */
        EXIT_CONFIG = 3,          /* configuration file or kernel command line invalid */
        EXIT_DENIED = 4,          /* key refused: PCR mismatch, wrong PIN/passphrase, SRK changed */
        EXIT_ATTESTATION = 5,     /* platform attestation failed or violated the policy */
        EXIT_DEVICE = 6,          /* device or LUKS2 header missing, busy, or rejected */
        EXIT_TPM = 7,             /* TPM unreachable or returned an unexpected error */
        EXIT_UNAVAILABLE = 8,     /* not supported here (EOPNOTSUPP) */
};
