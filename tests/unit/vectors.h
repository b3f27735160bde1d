/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Finding and reading tests/vectors and the repository's anchors from a unit test: the harness
 * sets UNIT_SRCDIR=$(top_srcdir)/tests/unit. */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline const char *unit_srcdir(void) {
        const char *d = getenv("UNIT_SRCDIR");
        return d && *d ? d : "tests/unit";
}

/* "<UNIT_SRCDIR>/<rel>" in a static buffer (one of 8, so a few can be live at once). */
static inline const char *src_path(const char *rel) {
        static char buf[8][1024];
        static unsigned i;
        char *p = buf[i++ % 8];

        (void) snprintf(p, sizeof(buf[0]), "%s/%s", unit_srcdir(), rel);
        return p;
}

static inline const char *vector_path(const char *rel) {
        static char buf[512];
        (void) snprintf(buf, sizeof(buf), "../vectors/snp/%s", rel);
        return src_path(buf);
}

/* Whole file, NUL-terminated; NULL (and a TAP comment) if it can't be read. Caller frees. */
static inline uint8_t *read_all(const char *path, size_t *ret_size) {
        FILE *f = fopen(path, "re");
        uint8_t *buf = NULL;
        long n;

        if (!f) {
                printf("# cannot open %s\n", path);
                return NULL;
        }
        if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t) n + 1)) && fread(buf, 1, (size_t) n, f) == (size_t) n) {
                buf[n] = 0;
                *ret_size = (size_t) n;
        } else {
                free(buf);
                buf = NULL;
        }
        fclose(f);
        return buf;
}

static inline uint8_t *read_vector(const char *rel, size_t *ret_size) {
        return read_all(vector_path(rel), ret_size);
}
