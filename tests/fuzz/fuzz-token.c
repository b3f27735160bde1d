/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char why[TOKEN_WHY_MAX], *json = malloc(size + 1), *again = NULL, *third = NULL;
        ProvisionToken prov, prov2;
        RecoveryToken rec;
        Tpm2Token t, t2;

        if (!json)
                return 0;
        memcpy(json, data, size);
        json[size] = '\0';

        /* Whatever parses must format, and the formatted text must parse to the same thing. */
        if (token_tpm2_parse(json, &t, why, sizeof(why)) == 0) {
                if (token_tpm2_format(&t, &again) < 0 || token_tpm2_parse(again, &t2, why, sizeof(why)) < 0 ||
                    token_tpm2_format(&t2, &third) < 0 || strcmp(again, third) != 0)
                        abort();
        }
        if (token_recovery_parse(json, &rec, why, sizeof(why)) == 0) {
                free(again);
                again = NULL;
                if (token_recovery_format(&rec, &again) < 0)
                        abort();
        }
        if (token_provision_parse(json, &prov, why, sizeof(why)) == 0) {
                free(again);
                again = NULL;
                if (token_provision_format(&prov, &again) < 0 || token_provision_parse(again, &prov2, why, sizeof(why)) < 0 ||
                    memcmp(&prov, &prov2, sizeof(prov)) != 0)
                        abort();
        }
        free(again);
        free(third);
        free(json);
        return 0;
}
