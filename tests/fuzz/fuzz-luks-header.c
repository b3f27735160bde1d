/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Two ways in: an input that starts with the LUKS magic is a raw header area (reconciled, then
 * validated, as luks_header_snapshot() does); anything else is
 * JSON text that gets wrapped into two valid binary headers with correct checksums, so the fuzzer
 * reaches the JSON checks instead of stopping at the checksum. Each is checked twice: as unlock
 * does, and with the provisioning states allowed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/luks2-fixture.h"
#include "luks-header.h"

#define HDR_SIZE 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_be64(uint8_t *p, uint64_t v) {
        for (int i = 7; i >= 0; i--, v >>= 8)
                p[i] = (uint8_t) v;
}

static void binary_header(uint8_t *copy, int secondary) {
        memcpy(copy, secondary ? "SKUL\xba\xbe" : "LUKS\xba\xbe", 6);
        copy[7] = 2;
        put_be64(copy + 8, HDR_SIZE);
        put_be64(copy + 16, 1);
        memcpy(copy + 72, "sha256", 6);
        memcpy(copy + 168, "3f0c4a43-5f4e-4d5e-9a53-2f6b8c1d0e7a", 36);
        put_be64(copy + 256, secondary ? HDR_SIZE : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char why[LUKS_WHY_MAX];
        LuksHeaderInfo info;

        if (size >= 6 && memcmp(data, "LUKS\xba\xbe", 6) == 0) {
                /* As the snapshot does it: reconcile the copies, then validate. */
                uint8_t *copy = malloc(size);

                if (!copy)
                        return 0;
                memcpy(copy, data, size);
                (void) luks_header_reconcile(copy, size, why, sizeof(why));
                (void) luks_header_validate(copy, size, &info, why, sizeof(why));
                (void) luks_header_validate_flags(copy, size, LUKS_SNAPSHOT_PROVISION, &info, why, sizeof(why));
                free(copy);
                return 0;
        }

        {
                uint8_t *buf = calloc(1, 2 * HDR_SIZE);
                char *json = malloc(size + 1);
                size_t len = size < HDR_SIZE - 4096 - 1 ? size : HDR_SIZE - 4096 - 1;

                if (!buf || !json) {
                        free(buf);
                        free(json);
                        return 0;
                }
                memcpy(json, data, len);
                json[len] = '\0';
                binary_header(buf, 0);
                binary_header(buf + HDR_SIZE, 1);
                if (luks2_fixture_set_json(buf, json) == 0) {
                        (void) luks_header_validate(buf, 2 * HDR_SIZE, &info, why, sizeof(why));
                        /* The states of a first boot's re-key, accepted only for provision. */
                        (void) luks_header_validate_flags(buf, 2 * HDR_SIZE, LUKS_SNAPSHOT_PROVISION, &info, why,
                                                          sizeof(why));
                }
                free(buf);
                free(json);
        }
        return 0;
}
