/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "secmem.h"

#define LOG_LINE_MAX 1024

static int max_level = LOG_INFO;
static int kmsg_fd = -1;
static FILE *stream;

void log_open(const LogTarget *target) {
        log_close();
        if (!target || !target->initrd_release || !target->kmsg)
                return;
        if (access(target->initrd_release, F_OK) < 0)
                return;
        kmsg_fd = open(target->kmsg, O_WRONLY | O_NOCTTY | O_CLOEXEC | O_APPEND);
}

void log_close(void) {
        if (kmsg_fd >= 0)
                (void) close(kmsg_fd);
        kmsg_fd = -1;
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

void log_set_stream(FILE *f) {
        stream = f;
}

bool log_to_kmsg(void) {
        return kmsg_fd >= 0;
}

int format_reason(char *why, size_t n, int r, const char *format, ...) {
        va_list ap;

        if (n > 0) {
                va_start(ap, format);
                (void) vsnprintf(why, n, format, ap);
                va_end(ap);
        }
        return r;
}

char *log_escape(char *dst, size_t n, const char *src) {
        static const char hex[] = "0123456789abcdef";
        size_t j = 0;

        if (n == 0)
                return dst;
        for (const unsigned char *p = (const unsigned char *) src; *p && j + 1 < n; p++) {
                if (*p >= 0x20 && *p != 0x7f) {
                        dst[j++] = (char) *p;
                        continue;
                }
                if (j + 5 > n)
                        break;
                dst[j++] = '\\';
                dst[j++] = 'x';
                dst[j++] = hex[*p >> 4];
                dst[j++] = hex[*p & 0xf];
        }
        dst[j] = '\0';
        return dst;
}

static void write_kmsg(int level, const char *msg) {
        char line[LOG_LINE_MAX + 32];
        int k = snprintf(line, sizeof(line), "<%d>cvmcrypt: %s\n", level, msg);

        if (k > 0)
                (void) !write(kmsg_fd, line, (size_t) k < sizeof(line) ? (size_t) k : sizeof(line) - 1);
}

int log_internal(int level, int error, const char *format, ...) {
        char raw[LOG_LINE_MAX], msg[LOG_LINE_MAX];
        int saved_errno = errno;
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > max_level)
                goto out;

        /* %m must print the error we were given, not whatever errno happens to hold. */
        errno = error;
        va_start(ap, format);
        (void) vsnprintf(raw, sizeof(raw), format, ap);
        va_end(ap);

        if (secmem_text_leaks(raw, strlen(raw)))
                (void) snprintf(raw, sizeof(raw), "(message withheld: it contained secret material)");
        (void) log_escape(msg, sizeof(msg), raw);

        (void) fprintf(stream ? stream : stderr, "cvmcrypt: %s\n", msg);
        if (kmsg_fd >= 0)
                write_kmsg(level, msg);
out:
        errno = saved_errno;
        return -error;
}
