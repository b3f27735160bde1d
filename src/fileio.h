/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Reads fd from its current position to the end into a new buffer (malloc'ed, NUL-terminated
 * after the data for text callers). At most max bytes: a longer input is -EFBIG, never a truncated
 * read. Other errors: -errno of read(), -ENOMEM. Logs nothing. */
int read_bounded(int fd, size_t max, uint8_t **ret, size_t *ret_size);

/* snprintf() into buf that fails with -ENAMETOOLONG instead of truncating: for paths. */
_printf_(3, 4) int path_printf(char *buf, size_t n, const char *fmt, ...);
