/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Minimal TAP producer: one "ok"/"not ok" line per check, plan printed at the end. */
#pragma once

#include <stdio.h>
#include <string.h>

static unsigned tap_n, tap_failed;

#define CHECK(cond, ...)                                                           \
        do {                                                                       \
                int tap_ok_ = !!(cond); /* evaluated once: conditions may have side effects */ \
                tap_n++;                                                           \
                if (tap_ok_)                                                       \
                        printf("ok %u - ", tap_n);                                 \
                else {                                                             \
                        tap_failed++;                                              \
                        printf("not ok %u - ", tap_n);                             \
                }                                                                  \
                printf(__VA_ARGS__);                                               \
                printf("\n");                                                      \
                if (!tap_ok_)                                                      \
                        printf("# failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
                fflush(stdout);                                                    \
        } while (0)

#define CHECK_STREQ(a, b, ...) CHECK((a) && (b) && strcmp((a), (b)) == 0, __VA_ARGS__)

static inline int tap_done(void) {
        printf("1..%u\n", tap_n);
        return tap_failed ? 1 : 0;
}
