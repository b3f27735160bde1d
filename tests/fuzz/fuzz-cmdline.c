/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ConfigError err;
        Config c;

        config_init(&c);
        (void) config_parse_cmdline_text(&c, (const char *) data, size, "fuzz", &err);
        config_done(&c);
        return 0;
}
