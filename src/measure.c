/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Events and their digests, extending the gate PCR with the log file locked as systemd locks it,
 * prediction and replay. The record format is in measure-log.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <tss2/tss2_tpm2_types.h>

#include "attest.h"
#include "config.h"
#include "encoding.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "measure.h"

#define RS '\x1e'
#define READ_CHUNK 16384

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* ---- digests ---- */

static const EVP_MD *bank_md(uint16_t bank) {
        switch (bank) {
        case TPM2_ALG_SHA1:
                return EVP_sha1();
        case TPM2_ALG_SHA256:
                return EVP_sha256();
        case TPM2_ALG_SHA384:
                return EVP_sha384();
        case TPM2_ALG_SHA512:
                return EVP_sha512();
        default:
                return NULL;
        }
}

/* What an event extends a bank with: the bank's hash of the string, or its HMAC keyed with key. */
static int event_digest(uint16_t bank, const char *s, const void *key, size_t key_size, uint8_t ret[TPM_DIGEST_MAX]) {
        const EVP_MD *md = bank_md(bank);
        unsigned len = 0;

        if (!md)
                return -EOPNOTSUPP;
        if (key) {
                if (key_size == 0 || key_size > INT_MAX ||
                    !HMAC(md, key, (int) key_size, (const unsigned char *) s, strlen(s), ret, &len))
                        return -EIO;
        } else if (EVP_Digest(s, strlen(s), ret, &len, md, NULL) != 1)
                return -EIO;
        return len == tpm_bank_digest_size(bank) ? 0 : -EIO;
}

/* pcr = H(pcr || digest), as TPM2_PCR_Extend does. */
static int soft_extend(uint16_t bank, uint8_t pcr[TPM_DIGEST_MAX], const uint8_t digest[TPM_DIGEST_MAX]) {
        size_t size = tpm_bank_digest_size(bank);
        const EVP_MD *md = bank_md(bank);
        uint8_t buf[2 * TPM_DIGEST_MAX];
        unsigned len = 0;

        if (!md)
                return -EOPNOTSUPP;
        memcpy(buf, pcr, size);
        memcpy(buf + size, digest, size);
        if (EVP_Digest(buf, 2 * size, pcr, &len, md, NULL) != 1 || len != size)
                return -EIO;
        return 0;
}

static const MeasureDigest *find_digest(const MeasureRecord *r, uint16_t bank) {
        for (size_t i = 0; i < r->n_digests; i++)
                if (r->digests[i].bank == bank)
                        return &r->digests[i];
        return NULL;
}

/* ---- files ---- */

static int hash_fd(int fd, uint64_t max, uint8_t ret[32]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t buf[READ_CHUNK];
        uint64_t total = 0;
        unsigned len = 0;

        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                return -EIO;
        for (;;) {
                ssize_t k = read(fd, buf, sizeof(buf));

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                total += (uint64_t) k;
                if (total > max)
                        return -EFBIG;
                if (EVP_DigestUpdate(ctx, buf, (size_t) k) != 1)
                        return -EIO;
        }
        if (EVP_DigestFinal_ex(ctx, ret, &len) != 1 || len != 32)
                return -EIO;
        return 0;
}

/* SHA-256 of a regular file (dir: prefix for messages). nofollow: a symlink is refused. O_NONBLOCK
 * so that a FIFO is reported as what it is instead of blocking the boot. */
static int hash_file(int dirfd, const char *dir, const char *path, bool nofollow, uint64_t max, const char *what,
                     uint8_t ret[32], char *why, size_t n) {
        _cleanup_close_ int fd = -EBADF;
        const char *sep = dir ? "/" : "";
        struct stat st;
        int r;

        dir = dir ? dir : "";
        fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
        if (fd < 0 && errno == ELOOP && nofollow)
                return format_reason(why, n, -ELOOP, "%s %s%s%s is a symlink", what, dir, sep, path);
        if (fd < 0) {
                r = negative_errno();
                return format_reason(why, n, r, "cannot open %s %s%s%s: %s", what, dir, sep, path, strerror(-r));
        }
        if (fstat(fd, &st) < 0)
                return format_reason(why, n, negative_errno(), "cannot stat %s %s%s%s", what, dir, sep, path);
        if (!S_ISREG(st.st_mode))
                return format_reason(why, n, -EINVAL, "%s %s%s%s is not a regular file", what, dir, sep, path);
        r = hash_fd(fd, max, ret);
        if (r == -EFBIG)
                return format_reason(why, n, r, "%s %s%s%s is larger than %llu bytes", what, dir, sep, path,
                                     (unsigned long long) max);
        if (r < 0)
                return format_reason(why, n, r, "cannot read %s %s%s%s: %s", what, dir, sep, path, strerror(-r));
        return 0;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int list_dir(DIR *d, const char *dir, char **names, size_t *ret_count, char *why, size_t n) {
        struct dirent *de;
        size_t count = 0;

        while ((errno = 0, de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (count >= ATTEST_ANCHOR_FILES_MAX) {
                        *ret_count = count;
                        return format_reason(why, n, -E2BIG, "the trust anchors %s hold more than %u entries", dir,
                                             ATTEST_ANCHOR_FILES_MAX);
                }
                names[count] = strdup(de->d_name);
                if (!names[count]) {
                        *ret_count = count;
                        return -ENOMEM;
                }
                count++;
        }
        *ret_count = count;
        if (errno != 0)
                return format_reason(why, n, negative_errno(), "cannot list the trust anchors %s", dir);
        return 0;
}

int measure_anchors_digest(const char *dir, uint8_t ret[32], char *why, size_t n) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        _cleanup_(closedirp) DIR *d = NULL;
        char *names[ATTEST_ANCHOR_FILES_MAX];
        size_t count = 0;
        unsigned len = 0;
        int fd, r;

        if (!dir || !ret)
                return -EINVAL;
        if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                return -ENOMEM;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                r = negative_errno();
                return format_reason(why, n, r, "cannot open the trust anchors %s: %s", dir, strerror(-r));
        }
        d = fdopendir(fd);
        if (!d) {
                r = negative_errno();
                (void) close(fd);
                return r;
        }
        r = list_dir(d, dir, names, &count, why, n);
        /* Sorted bytewise, so the digest does not depend on the filesystem's order. */
        qsort(names, count, sizeof(char *), name_cmp);
        for (size_t i = 0; i < count && r >= 0; i++) {
                uint8_t h[32];

                r = hash_file(dirfd(d), dir, names[i], true, ATTEST_CERT_FILE_MAX, "trust anchor", h, why, n);
                if (r >= 0 && (EVP_DigestUpdate(ctx, names[i], strlen(names[i]) + 1) != 1 ||
                               EVP_DigestUpdate(ctx, h, sizeof(h)) != 1))
                        r = -EIO;
        }
        for (size_t i = 0; i < count; i++)
                free(names[i]);
        if (r < 0)
                return r;
        if (EVP_DigestFinal_ex(ctx, ret, &len) != 1 || len != 32)
                return -EIO;
        return 0;
}

/* ---- plan and prediction ---- */

static void plan_add(MeasurePlan *p, MeasureEvent e, const uint8_t *digest, const char *alt, const char *path) {
        MeasureItem *it = &p->items[p->n++];
        char hex[65];

        *it = (MeasureItem){ .event = e, .path = path };
        if (digest) {
                hex_encode(digest, 32, hex);
                (void) snprintf(it->string, sizeof(it->string), "cvmcrypt:%s:sha256:%s", measure_event_name(e), hex);
        } else
                (void) snprintf(it->string, sizeof(it->string), "cvmcrypt:%s:%s", measure_event_name(e), alt);
}

static int plan_policy(const char *path, MeasurePlan *p, char *why, size_t n) {
        char policy_why[256] = "";
        AttestPolicy policy;
        int r;

        r = attest_policy_load(path, &policy, policy_why, sizeof(policy_why));
        if (r < 0)
                return format_reason(why, n, r, "attestation policy %s: %s", path, policy_why);
        r = attest_policy_digest(&policy, p->policy_digest);
        if (r < 0)
                return format_reason(why, n, r, "cannot digest the attestation policy %s", path);
        p->has_policy = true;
        return 0;
}

int measure_plan(const MeasureInputs *in, MeasurePlan *ret, char *why, size_t n) {
        MeasurePlan p = {};
        uint8_t d[32];
        int r;

        if (!in || !in->binary || !ret)
                return -EINVAL;
        r = hash_file(AT_FDCWD, NULL, in->binary, false, MEASURE_BINARY_MAX, "the binary", d, why, n);
        if (r < 0)
                return r;
        plan_add(&p, MEASURE_BINARY, d, NULL, in->binary);
        /* Missing is a defined event, never a skip; anything else that fails stops the measurement. */
        r = in->config ? hash_file(AT_FDCWD, NULL, in->config, false, CONFIG_FILE_MAX, "the configuration", d, why, n)
                       : -ENOENT;
        if (r < 0 && r != -ENOENT)
                return r;
        plan_add(&p, MEASURE_CONFIG, r < 0 ? NULL : d, "absent", in->config);
        r = in->anchors ? measure_anchors_digest(in->anchors, d, why, n) : -ENOENT;
        if (r < 0 && r != -ENOENT)
                return r;
        plan_add(&p, MEASURE_ANCHORS, r < 0 ? NULL : d, "absent", in->anchors);
        if (in->policy) {
                r = plan_policy(in->policy, &p, why, n);
                if (r < 0)
                        return r;
        }
        plan_add(&p, MEASURE_POLICY, p.has_policy ? p.policy_digest : NULL, "none", in->policy);
        *ret = p;
        return 0;
}

int measure_plan_add_attested(MeasurePlan *p) {
        if (!p || p->n >= ELEMENTSOF(p->items))
                return -EINVAL;
        if (!p->has_policy)
                return -ENOENT;
        plan_add(p, MEASURE_ATTESTED, p->policy_digest, NULL, NULL);
        return 0;
}

int measure_predict(const MeasurePlan *p, uint16_t bank, uint8_t ret[TPM_DIGEST_MAX]) {
        uint8_t v[TPM_DIGEST_MAX] = {}, d[TPM_DIGEST_MAX];
        int r;

        if (!p || !ret)
                return -EINVAL;
        for (size_t i = 0; i < p->n; i++) {
                r = event_digest(bank, p->items[i].string, NULL, 0, d);
                if (r >= 0)
                        r = soft_extend(bank, v, d);
                if (r < 0)
                        return r;
        }
        memcpy(ret, v, sizeof(v));
        return 0;
}

/* ---- TPM banks ---- */

typedef struct Banks {
        uint16_t bank[MEASURE_BANKS_MAX];
        size_t n;
} Banks;

/* strict: every active bank must be one we can hash (an unextended bank could be extended later to
 * the value a policy expects); otherwise those we cannot hash are left out (verify). */
static int active_banks(TpmContext *t, bool strict, Banks *ret, char *why, size_t n) {
        uint16_t all[16];
        size_t count = 0;
        int r;

        *ret = (Banks){};
        r = tpm_active_banks(t, all, ELEMENTSOF(all), &count);
        if (r < 0)
                return format_reason(why, n, r, "cannot list the TPM's PCR banks: %s", strerror(-r));
        for (size_t i = 0; i < count; i++) {
                if (!bank_md(all[i])) {
                        if (!strict)
                                continue;
                        return format_reason(why, n, -EOPNOTSUPP, "the TPM's active PCR bank %s (0x%04x) is not supported",
                                             strna(tpm_bank_name(all[i])), all[i]);
                }
                if (ret->n >= MEASURE_BANKS_MAX)
                        return format_reason(why, n, -E2BIG, "the TPM has more than %u active PCR banks", MEASURE_BANKS_MAX);
                ret->bank[ret->n++] = all[i];
        }
        if (ret->n == 0)
                return format_reason(why, n, -EOPNOTSUPP, "the TPM has no active SHA PCR bank");
        return 0;
}

static int extend_record(TpmContext *t, const Banks *b, MeasureRecord *rec, const void *key, size_t key_size) {
        uint8_t digests[MEASURE_BANKS_MAX][TPM_DIGEST_MAX] = {};
        int r;

        for (size_t i = 0; i < b->n; i++) {
                r = event_digest(b->bank[i], rec->string, key, key_size, digests[i]);
                if (r < 0)
                        return r;
                rec->digests[i].bank = b->bank[i];
                memcpy(rec->digests[i].value, digests[i], TPM_DIGEST_MAX);
        }
        rec->n_digests = b->n;
        return tpm_pcr_extend_banks(t, rec->pcr, b->bank, (const uint8_t(*)[TPM_DIGEST_MAX]) digests, b->n);
}

/* ---- the log file ---- */

static int write_all(int fd, const char *p, size_t size) {
        while (size > 0) {
                ssize_t k = write(fd, p, size);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                p += k;
                size -= (size_t) k;
        }
        return 0;
}

static int mkdir_parents(const char *path) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        return 0;
}

/* Opens, locks and reads the log. LOCK_EX for writers, LOCK_SH for readers, as systemd does; a
 * missing log is empty (readers) or created 0600 (writers: whoever can open it can also lock it). */
static int event_log_open(const char *path, bool write, int *ret_fd, char **ret_text, size_t *ret_size, bool *ret_sticky,
                    char *why, size_t n) {
        _cleanup_close_ int fd = -EBADF;
        uint8_t *buf;
        struct stat st;
        int r;

        if (write) {
                r = mkdir_parents(path);
                if (r < 0)
                        return format_reason(why, n, r, "cannot create the directory of the event log %s: %s", path,
                                             strerror(-r));
                fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0600);
        } else
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 && errno == ENOENT && !write) {
                *ret_fd = -EBADF;
                *ret_text = NULL;
                *ret_size = 0;
                *ret_sticky = false;
                return 0;
        }
        if (fd < 0) {
                r = negative_errno();
                return format_reason(why, n, r, "cannot open the event log %s: %s", path, strerror(-r));
        }
        if (flock(fd, write ? LOCK_EX : LOCK_SH) < 0 || fstat(fd, &st) < 0) {
                r = negative_errno();
                return format_reason(why, n, r, "cannot lock the event log %s: %s", path, strerror(-r));
        }
        if (!S_ISREG(st.st_mode))
                return format_reason(why, n, -EINVAL, "the event log %s is not a regular file", path);
        /* Freshly opened: from the start (O_APPEND moves only writes). */
        r = read_bounded(fd, MEASURE_LOG_MAX, &buf, ret_size);
        if (r == -EFBIG)
                return format_reason(why, n, r, "the event log %s is larger than %u bytes", path, MEASURE_LOG_MAX);
        if (r < 0)
                return format_reason(why, n, r, "cannot read the event log %s: %s", path, strerror(-r));
        /* systemd's protocol: the sticky bit is set from before an extend until its record is written. */
        *ret_sticky = st.st_mode & S_ISVTX;
        *ret_text = (char *) buf;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int event_log_parse(const char *path, const char *text, size_t size, MeasureLog *ret, char *why, size_t n) {
        char parse_why[MEASURE_WHY_MAX - 64] = "";
        int r;

        r = measure_log_parse(text ? text : "", size, ret, parse_why, sizeof(parse_why));
        if (r < 0)
                return format_reason(why, n, r, "event log %s: %s", path, parse_why);
        return 0;
}

typedef struct Writer {
        const char *path;
        int fd;
        size_t n_records; /* record separators in the file: the next recnum */
        bool sticky;      /* we set the sticky bit */
        bool owed;        /* a PCR was extended and its record is not written yet */
        MeasureLog log;
} Writer;

#define WRITER_INIT(p) ((Writer){ .path = (p), .fd = -EBADF })

static void writer_done(Writer *w) {
        /* With a record owed the sticky bit stays: the log is incomplete, and says so. */
        if (w->fd >= 0 && w->sticky && !w->owed)
                (void) fchmod(w->fd, 0600);
        if (w->fd >= 0)
                (void) close(w->fd);
        measure_log_done(&w->log);
        w->fd = -EBADF;
}

static int writer_open(Writer *w, bool parse, char *why, size_t n) {
        _cleanup_free_ char *text = NULL;
        bool sticky;
        size_t size;
        int r;

        r = event_log_open(w->path, true, &w->fd, &text, &size, &sticky, why, n);
        if (r < 0)
                return r;
        if (sticky)
                return format_reason(why, n, -ESTALE,
                                     "the event log %s is incomplete: a writer extended a PCR and stopped before logging it",
                                     w->path);
        for (size_t i = 0; i < size; i++)
                w->n_records += text[i] == RS;
        if (parse)
                return event_log_parse(w->path, text, size, &w->log, why, n);
        return 0;
}

static int writer_begin(Writer *w, char *why, size_t n) {
        if (fchmod(w->fd, 0600 | S_ISVTX) < 0)
                return format_reason(why, n, negative_errno(), "cannot mark the event log %s as being written", w->path);
        w->sticky = true;
        return 0;
}

static int writer_append(Writer *w, const MeasureRecord *rec) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = measure_record_format(rec, &text);
        if (r < 0)
                return r;
        r = write_all(w->fd, text, strlen(text));
        if (r < 0)
                return r;
        w->n_records++;
        w->owed = false;
        return 0;
}

static int writer_end(Writer *w) {
        if (fsync(w->fd) < 0 || fchmod(w->fd, 0600) < 0 || fsync(w->fd) < 0)
                return negative_errno();
        w->sticky = false;
        return 0;
}

static void read_boot_id(char ret[33]) {
        _cleanup_fclose_ FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
        char line[64];
        size_t j = 0;

        ret[0] = '\0';
        if (!f || !fgets(line, sizeof(line), f))
                return;
        /* systemd writes it as 32 hex digits without dashes. */
        for (size_t i = 0; line[i] && line[i] != '\n'; i++) {
                if (line[i] == '-')
                        continue;
                if (j >= 32 || !((line[i] >= '0' && line[i] <= '9') || (line[i] >= 'a' && line[i] <= 'f')))
                        return;
                ret[j++] = line[i];
        }
        ret[j == 32 ? 32 : 0] = '\0';
}

static void record_init(MeasureRecord *rec, unsigned pcr, MeasureEvent e, const char *string, const char *path) {
        struct timespec ts;

        *rec = (MeasureRecord){ .pcr = pcr, .event = e };
        (void) snprintf(rec->string, sizeof(rec->string), "%s", string);
        /* The path is information for people; one that JSON cannot carry as plain ASCII is left out. */
        if (path && strlen(path) < sizeof(rec->path)) {
                bool plain = true;

                for (const char *s = path; *s && plain; s++)
                        plain = *s >= 0x20 && *s <= 0x7e;
                if (plain)
                        (void) snprintf(rec->path, sizeof(rec->path), "%s", path);
        }
        read_boot_id(rec->boot_id);
        if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0) {
                rec->has_timestamp = true;
                rec->timestamp = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
        }
}

/* Extends and logs each item with the log locked (the caller opened it). */
static int extend_items(TpmContext *t, Writer *w, const Banks *b, unsigned pcr, const MeasureItem *items, size_t count,
                        char *why, size_t n) {
        int r;

        r = writer_begin(w, why, n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < count; i++) {
                MeasureRecord rec;

                record_init(&rec, pcr, items[i].event, items[i].string, items[i].path);
                rec.index = w->n_records;
                r = extend_record(t, b, &rec, NULL, 0);
                if (r < 0)
                        return format_reason(why, n, r, "cannot extend PCR %u with %s: %s", pcr, rec.string, strerror(-r));
                w->owed = true;
                r = writer_append(w, &rec);
                if (r < 0)
                        return format_reason(why, n, r, "PCR %u was extended with %s, but the event log %s cannot be written: %s",
                                             pcr, rec.string, w->path, strerror(-r));
        }
        r = writer_end(w);
        if (r < 0)
                return format_reason(why, n, r, "cannot finish the event log %s: %s", w->path, strerror(-r));
        return 0;
}

static int check_start(TpmContext *t, const MeasureLog *log, unsigned pcr, const Banks *b, char *why, size_t n) {
        for (size_t i = 0; i < log->n; i++) {
                const MeasureRecord *rec = &log->records[i];

                if (rec->event == MEASURE_BINARY)
                        return format_reason(why, n, -EALREADY, "cvmcrypt already measured itself in this boot (event log record %zu)", i);
                if (rec->event != MEASURE_FOREIGN && !rec->nv && rec->pcr == pcr)
                        return format_reason(why, n, -EALREADY, "cvmcrypt already extended PCR %u in this boot (event log record %zu: %s)",
                                             pcr, i, rec->string);
        }
        for (size_t k = 0; k < b->n; k++) {
                uint8_t want[TPM_DIGEST_MAX] = {};
                TpmPcrValues v;
                int r;

                r = tpm_pcr_read(t, b->bank[k], 1u << pcr, &v);
                if (r < 0)
                        return format_reason(why, n, r, "cannot read PCR %u: %s", pcr, strerror(-r));
                for (size_t i = 0; i < log->n; i++) {
                        const MeasureRecord *rec = &log->records[i];
                        const MeasureDigest *d;

                        if (rec->nv || rec->pcr != pcr)
                                continue;
                        d = find_digest(rec, b->bank[k]);
                        if (!d)
                                return format_reason(why, n, -EBADMSG, "event log record %zu (PCR %u) has no %s digest", i,
                                                     pcr, tpm_bank_name(b->bank[k]));
                        r = soft_extend(b->bank[k], want, d->value);
                        if (r < 0)
                                return r;
                }
                if (memcmp(want, v.value[pcr], tpm_bank_digest_size(b->bank[k])) != 0)
                        return format_reason(why, n, -EALREADY,
                                             "PCR %u is not at its expected start (%s): it was extended without an event log record, or by cvmcrypt earlier in this boot",
                                             pcr, tpm_bank_name(b->bank[k]));
        }
        return 0;
}

int measure_start(TpmContext *t, const char *log, unsigned pcr, const MeasurePlan *p, char *why, size_t n) {
        _cleanup_(writer_done) Writer w = WRITER_INIT(log);
        Banks b;
        int r;

        if (!t || !log || !p || pcr >= TPM_PCR_MAX)
                return -EINVAL;
        r = active_banks(t, true, &b, why, n);
        if (r < 0)
                return r;
        /* Locked before the PCR is read, so nobody extends it between the check and our events. */
        r = writer_open(&w, true, why, n);
        if (r < 0)
                return r;
        r = check_start(t, &w.log, pcr, &b, why, n);
        if (r < 0)
                return r;
        return extend_items(t, &w, &b, pcr, p->items, p->n, why, n);
}

/* An attested event means something only after the start events, once, and before the cap. */
static int check_attestable(const MeasureLog *log, const char *path, unsigned pcr, char *why, size_t n) {
        long attested = -1, capped = -1;
        bool started = false;

        for (size_t i = 0; i < log->n; i++) {
                const MeasureRecord *rec = &log->records[i];

                if (rec->nv || rec->pcr != pcr)
                        continue;
                if (rec->event == MEASURE_BINARY)
                        started = true;
                else if (rec->event == MEASURE_ATTESTED && attested < 0)
                        attested = (long) i;
                else if (rec->event == MEASURE_BOOT_DONE && capped < 0)
                        capped = (long) i;
        }
        if (capped >= 0)
                return format_reason(why, n, -EALREADY, "PCR %u was capped in this boot (event log record %ld): nothing can unseal until the next boot",
                                     pcr, capped);
        if (attested >= 0)
                return format_reason(why, n, -EALREADY, "attestation is already recorded in PCR %u in this boot (event log record %ld)",
                                     pcr, attested);
        if (!started)
                return format_reason(why, n, -ENOMSG,
                                     "cvmcrypt has not measured itself in this boot (no cvmcrypt:binary record for PCR %u in %s): run `cvmcrypt measure` first",
                                     pcr, path);
        return 0;
}

int measure_attest_ready(const char *log, unsigned pcr, char *why, size_t n) {
        _cleanup_(measure_log_done) MeasureLog l = {};
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        bool sticky;
        int r;

        if (!log || pcr >= TPM_PCR_MAX)
                return -EINVAL;
        r = event_log_open(log, false, &fd, &text, &size, &sticky, why, n);
        if (r >= 0)
                r = event_log_parse(log, text, size, &l, why, n);
        if (r >= 0)
                r = check_attestable(&l, log, pcr, why, n);
        return r;
}

int measure_attested(TpmContext *t, const char *log, unsigned pcr, const uint8_t policy_digest[32], char *why,
                     size_t n) {
        _cleanup_(writer_done) Writer w = WRITER_INIT(log);
        MeasurePlan p = { .has_policy = true };
        Banks b;
        int r;

        if (!t || !log || !policy_digest || pcr >= TPM_PCR_MAX)
                return -EINVAL;
        memcpy(p.policy_digest, policy_digest, sizeof(p.policy_digest));
        (void) measure_plan_add_attested(&p);
        r = active_banks(t, true, &b, why, n);
        if (r < 0)
                return r;
        r = writer_open(&w, true, why, n);
        if (r < 0)
                return r;
        r = check_attestable(&w.log, log, pcr, why, n);
        if (r < 0)
                return r;
        return extend_items(t, &w, &b, pcr, p.items, p.n, why, n);
}

/* The cap: the PCR is what keeps the secrets, so it is extended even when the log is unusable. */
static int extend_forced(TpmContext *t, const char *log, MeasureRecord *rec, const void *key, size_t key_size,
                         char *why, size_t n) {
        _cleanup_(writer_done) Writer w = WRITER_INIT(log);
        char log_why[MEASURE_WHY_MAX] = "";
        Banks b;
        int r, lr;

        r = active_banks(t, true, &b, why, n);
        if (r < 0)
                return r;
        lr = writer_open(&w, false, log_why, sizeof(log_why));
        if (lr >= 0)
                lr = writer_begin(&w, log_why, sizeof(log_why));
        rec->index = w.n_records;
        r = extend_record(t, &b, rec, key, key_size);
        if (r < 0)
                return format_reason(why, n, r, "cannot extend PCR %u with %s: %s", rec->pcr, rec->string, strerror(-r));
        if (lr < 0)
                return format_reason(why, n, 1, "PCR %u was extended with %s, but not logged: %s", rec->pcr, rec->string,
                                     log_why);
        w.owed = true;
        lr = writer_append(&w, rec);
        if (lr >= 0)
                lr = writer_end(&w);
        if (lr < 0)
                return format_reason(why, n, 1, "PCR %u was extended with %s, but the event log %s cannot be written: %s",
                                     rec->pcr, rec->string, log, strerror(-lr));
        return 0;
}

int measure_volume(TpmContext *t, const char *log, unsigned pcr, const char *name, const char *uuid, const void *vk,
                   size_t vk_size, char *why, size_t n) {
        char string[MEASURE_STRING_MAX];
        MeasureRecord rec;

        if (!t || !log || pcr >= TPM_PCR_MAX || !vk || vk_size == 0)
                return -EINVAL;
        if (!measure_volume_name_valid(name) || !measure_volume_uuid_valid(uuid))
                return format_reason(why, n, -EINVAL, "volume name or UUID cannot be measured (printable ASCII without ':', hex UUID)");
        (void) snprintf(string, sizeof(string), "cvmcrypt:%s:%s", name, uuid);
        record_init(&rec, pcr, MEASURE_VOLUME, string, NULL);
        (void) snprintf(rec.name, sizeof(rec.name), "%s", name);
        (void) snprintf(rec.uuid, sizeof(rec.uuid), "%s", uuid);
        return extend_forced(t, log, &rec, vk, vk_size, why, n);
}

int measure_boot_done(TpmContext *t, const char *log, unsigned pcr, char *why, size_t n) {
        MeasureRecord rec;

        if (!t || !log || pcr >= TPM_PCR_MAX)
                return -EINVAL;
        record_init(&rec, pcr, MEASURE_BOOT_DONE, "cvmcrypt:boot-done", NULL);
        return extend_forced(t, log, &rec, NULL, 0, why, n);
}

int measure_provisioned(TpmContext *t, const char *log, unsigned pcr, const char *uuid, char *why, size_t n) {
        char string[MEASURE_STRING_MAX];
        MeasureRecord rec;

        if (!t || !log || pcr >= TPM_PCR_MAX)
                return -EINVAL;
        if (!measure_volume_uuid_valid(uuid))
                return format_reason(why, n, -EINVAL, "the volume UUID cannot be measured (hex digits and dashes)");
        (void) snprintf(string, sizeof(string), "cvmcrypt:provisioned:%s", uuid);
        record_init(&rec, pcr, MEASURE_PROVISIONED, string, NULL);
        return extend_forced(t, log, &rec, NULL, 0, why, n);
}

/* ---- replay ---- */

static void note_bad(MeasurePcrResult *res, size_t index, const char *format, ...) _printf_(3, 4);
static void note_bad(MeasurePcrResult *res, size_t index, const char *format, ...) {
        va_list ap;

        if (res->bad_record >= 0 && (size_t) res->bad_record <= index)
                return;
        res->bad_record = (long) index;
        va_start(ap, format);
        (void) vsnprintf(res->reason, sizeof(res->reason), format, ap);
        va_end(ap);
}

static bool replay_bank(const MeasureLog *log, unsigned pcr, uint16_t bank, MeasurePcrResult *res,
                        uint8_t replayed[TPM_DIGEST_MAX]) {
        size_t size = tpm_bank_digest_size(bank);

        memset(replayed, 0, TPM_DIGEST_MAX);
        for (size_t i = 0; i < log->n; i++) {
                const MeasureRecord *rec = &log->records[i];
                const MeasureDigest *d;
                uint8_t want[TPM_DIGEST_MAX];

                if (rec->nv || rec->pcr != pcr)
                        continue;
                d = find_digest(rec, bank);
                if (!d) {
                        note_bad(res, i, "record %zu has no %s digest", i, tpm_bank_name(bank));
                        return false;
                }
                /* Our unkeyed events carry what was hashed: an edit of either side shows here. */
                if (rec->event != MEASURE_FOREIGN && rec->event != MEASURE_VOLUME &&
                    (event_digest(bank, rec->string, NULL, 0, want) < 0 || memcmp(want, d->value, size) != 0))
                        note_bad(res, i, "record %zu: its %s digest is not the hash of its event string", i,
                                 tpm_bank_name(bank));
                if (soft_extend(bank, replayed, d->value) < 0)
                        return false;
        }
        return true;
}

static void compare_pcr(const MeasureLog *log, unsigned pcr, const TpmPcrValues *actual, size_t n_actual,
                        MeasurePcrResult *res) {
        bool banks_ok = true;

        *res = (MeasurePcrResult){ .pcr = pcr, .bad_record = -1 };
        for (size_t i = 0; i < log->n; i++)
                res->n_records += !log->records[i].nv && log->records[i].pcr == pcr;
        for (size_t a = 0; a < n_actual && res->n_banks < MEASURE_BANKS_MAX; a++) {
                MeasureBankResult *br;
                bool complete;

                if (!(actual[a].mask & (1u << pcr)) || !bank_md(actual[a].bank))
                        continue;
                br = &res->banks[res->n_banks++];
                *br = (MeasureBankResult){ .bank = actual[a].bank };
                memcpy(br->actual, actual[a].value[pcr], tpm_bank_digest_size(br->bank));
                complete = replay_bank(log, pcr, br->bank, res, br->replayed);
                br->ok = complete && memcmp(br->replayed, br->actual, tpm_bank_digest_size(br->bank)) == 0;
                banks_ok = banks_ok && br->ok;
        }
        res->ok = res->n_banks > 0 && banks_ok && res->bad_record < 0;
        if (res->n_banks == 0)
                (void) snprintf(res->reason, sizeof(res->reason), "no active PCR bank to compare");
        else if (!res->ok && res->bad_record < 0)
                (void) snprintf(res->reason, sizeof(res->reason),
                                "the log does not replay to the TPM's value: an extend without a record, or a record removed or edited");
}

void measure_compare(const MeasureLog *log, unsigned pcr, const TpmPcrValues *actual, size_t n_actual,
                     MeasureVerdict *ret) {
        uint32_t mask = pcr < TPM_PCR_MAX ? 1u << pcr : 0;

        *ret = (MeasureVerdict){ .n_records = log->n, .incomplete = log->incomplete, .ok = !log->incomplete };
        for (size_t i = 0; i < log->n; i++)
                if (!log->records[i].nv)
                        mask |= 1u << log->records[i].pcr;
        for (unsigned p = 0; p < TPM_PCR_MAX; p++) {
                if (!(mask & (1u << p)))
                        continue;
                compare_pcr(log, p, actual, n_actual, &ret->pcrs[ret->n_pcrs]);
                ret->ok = ret->ok && ret->pcrs[ret->n_pcrs].ok;
                ret->n_pcrs++;
        }
}

int measure_verify(TpmContext *t, const char *log, unsigned pcr, MeasureVerdict *ret, char *why, size_t n) {
        _cleanup_(measure_log_done) MeasureLog l = {};
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        TpmPcrValues actual[MEASURE_BANKS_MAX];
        uint32_t mask = 1u << pcr;
        size_t size = 0;
        bool sticky;
        Banks b;
        int r;

        if (!t || !log || !ret || pcr >= TPM_PCR_MAX)
                return -EINVAL;
        r = active_banks(t, false, &b, why, n);
        if (r < 0)
                return r;
        /* The shared lock stays until the PCRs are read: no writer can extend in between. */
        r = event_log_open(log, false, &fd, &text, &size, &sticky, why, n);
        if (r < 0)
                return r;
        r = event_log_parse(log, text, size, &l, why, n);
        if (r < 0)
                return r;
        l.incomplete = sticky;
        for (size_t i = 0; i < l.n; i++)
                if (!l.records[i].nv)
                        mask |= 1u << l.records[i].pcr;
        for (size_t k = 0; k < b.n; k++) {
                r = tpm_pcr_read(t, b.bank[k], mask, &actual[k]);
                if (r < 0)
                        return format_reason(why, n, r, "cannot read the %s PCRs: %s", tpm_bank_name(b.bank[k]), strerror(-r));
        }
        measure_compare(&l, pcr, actual, b.n, ret);
        return 0;
}
