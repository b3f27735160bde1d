/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/* Secrets come from a file (or "-" for standard input), from systemd-ask-password, or from the
 * terminal with echo off: never from argv or the environment. Results are secmem buffers, free
 * with secmem_free(); *ret_size excludes the terminating NUL that is always appended. */

#define ASK_SECRET_MAX 1024

/* Whole file content (no newline stripping: key files are bytes), at most ASK_SECRET_MAX bytes. */
int ask_read_key_file(const char *path, char **ret, size_t *ret_size);

/* One line typed by a person: systemd-ask-password when it exists and no terminal is attached
 * to stdin, else /dev/tty with echo off. The trailing newline is removed. */
int ask_secret(const char *prompt, char **ret, size_t *ret_size);
