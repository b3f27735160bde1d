/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fileio.h"

int read_bounded(int fd, size_t max, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *buf = malloc(max + 1);
        size_t n = 0;

        if (!buf)
                return -ENOMEM;
        /* Up to max + 1, so that a file that is longer (or grew after a size check) is caught. */
        for (;;) {
                ssize_t k = read(fd, buf + n, max + 1 - n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > max)
                        return -EFBIG;
        }
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

int path_printf(char *buf, size_t n, const char *fmt, ...) {
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vsnprintf(buf, n, fmt, ap);
        va_end(ap);
        return k < 0 || (size_t) k >= n ? -ENAMETOOLONG : 0;
}
