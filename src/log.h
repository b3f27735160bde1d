/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <syslog.h>

#include "macro.h"

/* Where the logger writes. Paths are parameters so tests can point them at temporary files. */
typedef struct LogTarget {
        const char *initrd_release; /* if this file exists we are in the initrd: also write to kmsg */
        const char *kmsg;
} LogTarget;

#define LOG_TARGET_DEFAULT ((LogTarget){ .initrd_release = "/etc/initrd-release", .kmsg = "/dev/kmsg" })

void log_open(const LogTarget *target);
void log_close(void);
void log_set_max_level(int level);
int log_get_max_level(void);
void log_set_stream(FILE *f);
bool log_to_kmsg(void);

/* Logs (unless above the max level) and returns -|error| (or 0 when error is 0). Never pass secrets:
 * a message that still contains bytes of a live secure-memory buffer is withheld. */
int log_internal(int level, int error, const char *format, ...) _printf_(3, 4);

#define log_error_errno(e, ...) log_internal(LOG_ERR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_WARNING, (e), __VA_ARGS__)
#define log_debug_errno(e, ...) log_internal(LOG_DEBUG, (e), __VA_ARGS__)
#define log_error(...) ((void) log_internal(LOG_ERR, 0, __VA_ARGS__))
#define log_warning(...) ((void) log_internal(LOG_WARNING, 0, __VA_ARGS__))
#define log_notice(...) ((void) log_internal(LOG_NOTICE, 0, __VA_ARGS__))
#define log_info(...) ((void) log_internal(LOG_INFO, 0, __VA_ARGS__))
#define log_debug(...) ((void) log_internal(LOG_DEBUG, 0, __VA_ARGS__))

/* Formats a one-line reason into why (size n; nothing when n is 0) for the caller to log once,
 * and returns r: library modules report why they failed without logging it themselves. */
int format_reason(char *why, size_t n, int r, const char *format, ...) _printf_(4, 5);

/* Copies src into dst (size n), escaping control bytes as \xNN: host-controlled strings (labels,
 * paths, JSON) must not inject terminal escapes or fake log lines. Returns dst. */
char *log_escape(char *dst, size_t n, const char *src);
