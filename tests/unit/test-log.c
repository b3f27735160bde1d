/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "secmem.h"
#include "tap.h"

static char out[4096];

static const char *captured(FILE *f) {
        size_t n;

        fflush(f);
        rewind(f);
        n = fread(out, 1, sizeof(out) - 1, f);
        out[n] = '\0';
        rewind(f);
        (void) !ftruncate(fileno(f), 0);
        return out;
}

static void test_levels_and_errno(FILE *f) {
        int r;

        log_set_max_level(LOG_INFO);
        log_debug("hidden detail");
        CHECK(strcmp(captured(f), "") == 0, "debug message suppressed at info level");
        r = log_error_errno(-ENOENT, "token %d: %m", 3);
        CHECK(r == -ENOENT, "log_error_errno returns the negative error");
        CHECK(strcmp(captured(f), "cvmcrypt: token 3: No such file or directory\n") == 0, "%%m prints the given error: %s",
              out);
        r = log_error_errno(EIO, "x");
        CHECK(r == -EIO, "positive error is returned negated");
        (void) captured(f);
        log_set_max_level(LOG_DEBUG);
        log_debug("now shown");
        CHECK(strstr(captured(f), "now shown") != NULL, "debug shown at debug level");
}

static void test_escape(FILE *f) {
        char buf[16];

        log_error("label %s", "evil\n\x1b[2Jfake line");
        CHECK(strcmp(captured(f), "cvmcrypt: label evil\\x0a\\x1b[2Jfake line\n") == 0,
              "control characters from outside data are escaped: %s", out);
        CHECK(strcmp(log_escape(buf, sizeof(buf), "abc\tdefghijklmnop"), "abc\\x09defghijk") == 0,
              "escape truncates safely: %s", buf);
        CHECK(strcmp(log_escape(buf, 1, "abc"), "") == 0, "escape into a 1-byte buffer");
}

static void test_redaction(FILE *f) {
        char *key = secmem_alloc(32);
        char hex[65];

        for (int i = 0; i < 32; i++)
                key[i] = (char) (0x41 + (i * 7) % 26); /* printable, so %s would print it */
        for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", (unsigned char) key[i]);
        log_error("volume key is %.32s", key);
        CHECK(strstr(captured(f), "withheld") != NULL && !strstr(out, "AHOV"), "raw secret in a message is withheld: %s",
              out);
        log_error("volume key hex %s", hex);
        CHECK(strstr(captured(f), "withheld") != NULL && !strstr(out, hex), "hex secret in a message is withheld");
        log_error("keyslot %d, %zu bytes", 3, secmem_size(key));
        CHECK(strcmp(captured(f), "cvmcrypt: keyslot 3, 32 bytes\n") == 0, "sizes and slot numbers still log");
        secmem_free(key);
}

static void test_kmsg(void) {
        char release[] = "/tmp/cvmcrypt-release-XXXXXX", kmsg[] = "/tmp/cvmcrypt-kmsg-XXXXXX", buf[256] = "";
        int a = mkstemp(release), b = mkstemp(kmsg);
        LogTarget t = { .initrd_release = release, .kmsg = kmsg };
        FILE *k;

        close(a);
        close(b);
        log_open(&t);
        CHECK(log_to_kmsg(), "in the initrd the log also goes to kmsg");
        log_set_max_level(LOG_INFO);
        log_error("unlock of %s failed", "root");
        log_close();
        k = fopen(kmsg, "re");
        (void) !fgets(buf, sizeof(buf), k);
        fclose(k);
        CHECK(strcmp(buf, "<3>cvmcrypt: unlock of root failed\n") == 0, "kmsg line has level and prefix: %s", buf);
        unlink(release);
        t.initrd_release = release;
        log_open(&t);
        CHECK(!log_to_kmsg(), "outside the initrd kmsg is not used");
        log_close();
        unlink(kmsg);
}

int main(void) {
        FILE *f = tmpfile();

        log_set_stream(f);
        test_levels_and_errno(f);
        test_escape(f);
        test_redaction(f);
        log_set_stream(NULL);
        test_kmsg();
        return tap_done();
}
