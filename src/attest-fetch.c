/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sev-guest.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attest-fetch.h"
#include "attest.h"
#include "hcl.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"

#define SNP_REPORT_DATA_OFFSET 0x50u
#define MSG_REPORT_RSP_HEADER 0x20u /* status, report size, reserved; then the report */
#define TSM_ATTEMPTS 3
#define TSM_TEXT_MAX 64
#define POLL_MS 50u

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

void attest_evidence_done(AttestEvidence *e) {
        if (!e)
                return;
        free(e->report);
        free(e->certs);
        *e = (AttestEvidence){};
}

int attest_random(void *p, size_t n) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = getrandom((uint8_t *) p + done, n - done, 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                done += (size_t) k;
        }
        return 0;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000u, .tv_nsec = (long) (ms % 1000u) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ---- sources by name ---- */

static const char *const source_names[] = {
        [ATTEST_SOURCE_HCL_NV] = "hcl-nv",
        [ATTEST_SOURCE_TSM] = "tsm",
        [ATTEST_SOURCE_SEV_GUEST] = "sev-guest",
};

const char *attest_source_to_string(AttestSource s) {
        return (size_t) s < ELEMENTSOF(source_names) ? source_names[s] : "unknown";
}

int attest_source_parse(const char *spec, AttestSource *ret, const char **ret_path) {
        static const char *const defaults[] = {
                [ATTEST_SOURCE_HCL_NV] = NULL,
                [ATTEST_SOURCE_TSM] = ATTEST_TSM_DIR_DEFAULT,
                [ATTEST_SOURCE_SEV_GUEST] = ATTEST_SEV_GUEST_DEFAULT,
        };

        if (!spec || !ret || !ret_path)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(source_names); i++) {
                size_t n = strlen(source_names[i]);
                const char *path;

                if (strncmp(spec, source_names[i], n) != 0 || (spec[n] && spec[n] != ':'))
                        continue;
                path = spec[n] ? spec + n + 1 : defaults[i];
                /* The HCL report lives in the TPM that --tpm names: no path. */
                if (spec[n] && (!defaults[i] || path[0] != '/'))
                        return -EINVAL;
                *ret = (AttestSource) i;
                *ret_path = path;
                return 0;
        }
        return -EINVAL;
}

/* ---- certificate table ---- */

static const struct {
        SnpCertKind kind;
        const char *name;
        uint8_t guid[16];
} cert_guids[] = {
        { SNP_CERT_VCEK, "vcek", { 0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd } },
        { SNP_CERT_VLEK, "vlek", { 0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e, 0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1 } },
        { SNP_CERT_ASK, "ask", { 0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82 } },
        { SNP_CERT_ARK, "ark", { 0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae } },
        { SNP_CERT_CRL, "crl", { 0x92, 0xf8, 0x1b, 0xc3, 0x58, 0x11, 0x4d, 0x3d, 0x97, 0xff, 0xd1, 0x9f, 0x88, 0xdc, 0x67, 0xea } },
};

const char *snp_cert_kind_to_string(SnpCertKind k) {
        for (size_t i = 0; i < ELEMENTSOF(cert_guids); i++)
                if (cert_guids[i].kind == k)
                        return cert_guids[i].name;
        return "other";
}

static SnpCertKind cert_kind(const uint8_t guid[16]) {
        for (size_t i = 0; i < ELEMENTSOF(cert_guids); i++)
                if (memcmp(cert_guids[i].guid, guid, 16) == 0)
                        return cert_guids[i].kind;
        return SNP_CERT_OTHER;
}

static bool all_zero(const uint8_t *p, size_t n) {
        uint8_t acc = 0;

        for (size_t i = 0; i < n; i++)
                acc |= p[i];
        return acc == 0;
}

int snp_cert_table_parse(const uint8_t *data, size_t size, SnpCertTable *ret) {
        SnpCertTable t = {};
        size_t end = 0, i;

        if (!data || !ret)
                return -EINVAL;
        if (size > SNP_CERT_TABLE_MAX)
                return log_debug_errno(-EBADMSG, "Certificate table: %zu bytes, at most %u", size, SNP_CERT_TABLE_MAX);
        for (i = 0;; i++) {
                const uint8_t *e = data + i * SNP_CERT_ENTRY_SIZE;

                if ((i + 1) * SNP_CERT_ENTRY_SIZE > size)
                        return log_debug_errno(-EBADMSG, "Certificate table: no terminating entry");
                if (all_zero(e, SNP_CERT_ENTRY_SIZE))
                        break;
                if (all_zero(e, 16))
                        return log_debug_errno(-EBADMSG, "Certificate table: entry %zu has a zero GUID", i);
                if (i >= SNP_CERT_ENTRIES_MAX)
                        return log_debug_errno(-EBADMSG, "Certificate table: more than %u entries", SNP_CERT_ENTRIES_MAX);
                memcpy(t.entry[i].guid, e, 16);
                t.entry[i].kind = cert_kind(e);
                t.entry[i].offset = le32(e + 16);
                t.entry[i].size = le32(e + 20);
        }
        t.n = i;
        end = (t.n + 1) * SNP_CERT_ENTRY_SIZE;
        for (i = 0; i < t.n; i++) {
                const SnpCertEntry *a = &t.entry[i];

                if (a->size == 0 || a->offset < end || (uint64_t) a->offset + a->size > size)
                        return log_debug_errno(-EBADMSG, "Certificate table: entry %zu (offset %" PRIu32 ", %" PRIu32
                                               " bytes) is empty or outside the %zu bytes after the table",
                                               i, a->offset, a->size, size);
                for (size_t j = 0; j < i; j++) {
                        const SnpCertEntry *b = &t.entry[j];

                        if (memcmp(a->guid, b->guid, 16) == 0)
                                return log_debug_errno(-EBADMSG, "Certificate table: entries %zu and %zu have the same GUID", j, i);
                        if ((uint64_t) a->offset < (uint64_t) b->offset + b->size &&
                            (uint64_t) b->offset < (uint64_t) a->offset + a->size)
                                return log_debug_errno(-EBADMSG, "Certificate table: entries %zu and %zu overlap", j, i);
                }
        }
        *ret = t;
        return 0;
}

const SnpCertEntry *snp_cert_table_find(const SnpCertTable *t, SnpCertKind kind) {
        for (size_t i = 0; t && i < t->n; i++)
                if (t->entry[i].kind == kind)
                        return &t->entry[i];
        return NULL;
}

int snp_cert_table_x509(const uint8_t *data, const SnpCertEntry *e, X509 **ret) {
        const unsigned char *p = data + e->offset;
        X509 *c;

        c = d2i_X509(NULL, &p, (long) e->size);
        if (!c || p != data + e->offset + e->size) {
                X509_free(c);
                ERR_clear_error();
                return log_debug_errno(-EBADMSG, "Certificate table: the %s entry is not exactly one DER certificate",
                                       snp_cert_kind_to_string(e->kind));
        }
        *ret = c;
        return 0;
}

/* ---- the report and its nonce ---- */

/* A parsed SNP report whose REPORT_DATA is the nonce. */
static int check_report(const uint8_t *report, size_t size, const uint8_t nonce[ATTEST_NONCE_SIZE]) {
        SnpReport r;
        int k;

        k = snp_report_parse(report, size, &r);
        if (k < 0)
                return k;
        if (CRYPTO_memcmp(r.report_data, nonce, ATTEST_NONCE_SIZE) != 0)
                return log_debug_errno(-EBADE, "REPORT_DATA is not the nonce we sent: a stale or replayed report");
        return 0;
}

/* ---- configfs-tsm ---- */

int attest_tsm_generation_parse(const char *text, size_t size, uint64_t *ret) {
        uint64_t v = 0;
        size_t n = size;

        if (!text || !ret)
                return -EINVAL;
        if (n > 0 && text[n - 1] == '\n')
                n--;
        if (n == 0 || n > 20 || (n > 1 && text[0] == '0'))
                return -EBADMSG;
        for (size_t i = 0; i < n; i++) {
                if (text[i] < '0' || text[i] > '9' || v > (UINT64_MAX - (uint64_t) (text[i] - '0')) / 10)
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (text[i] - '0');
        }
        *ret = v;
        return 0;
}

/* Reads a whole attribute of at most max bytes. wait_until (ms, 0: don't wait): keep trying while it
 * does not exist yet. */
static int read_attr(int dfd, const char *name, size_t max, uint64_t wait_until, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        for (;;) {
                fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                if (fd >= 0)
                        break;
                if (errno != ENOENT || now_ms() >= wait_until)
                        return log_debug_errno(negative_errno(), "configfs-tsm: %s: cannot open: %m", name);
                sleep_ms(POLL_MS);
        }
        r = read_bounded(fd, max, ret, ret_size);
        if (r == -EFBIG)
                return log_debug_errno(r, "configfs-tsm: %s: larger than %zu bytes", name, max);
        if (r < 0)
                return log_debug_errno(r, "configfs-tsm: %s: read failed: %m", name);
        return 0;
}

static int write_attr(int dfd, const char *name, const uint8_t *data, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        size_t done = 0;

        /* O_CREAT does nothing on configfs, where the attribute exists with the entry; it lets a plain
         * directory stand in for configfs in tests. */
        fd = openat(dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return log_debug_errno(negative_errno(), "configfs-tsm: %s: cannot open: %m", name);
        while (done < size) {
                ssize_t k = write(fd, data + done, size - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_debug_errno(negative_errno(), "configfs-tsm: %s: write failed: %m", name);
                }
                done += (size_t) k;
        }
        /* configfs hands a binary attribute to the provider when the file is closed. */
        if (close(TAKE_FD(fd)) < 0)
                return log_debug_errno(negative_errno(), "configfs-tsm: %s: write failed: %m", name);
        return 0;
}

/* The text of a small attribute without its trailing newline, NUL-terminated. */
static int read_text(int dfd, const char *name, char out[TSM_TEXT_MAX + 1]) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t n;
        int r;

        r = read_attr(dfd, name, TSM_TEXT_MAX, 0, &buf, &n);
        if (r < 0)
                return r;
        if (n > 0 && buf[n - 1] == '\n')
                n--;
        if (memchr(buf, 0, n))
                return -EBADMSG;
        memcpy(out, buf, n);
        out[n] = 0;
        return 0;
}

/* One report entry, used once. 1: another writer changed the entry (generation), try again. */
static int tsm_once(int dirfd, const uint8_t nonce[ATTEST_NONCE_SIZE], uint64_t deadline, AttestEvidence *ret) {
        _cleanup_close_ int efd = -EBADF;
        _cleanup_(attest_evidence_done) AttestEvidence e = {};
        char name[64], provider[TSM_TEXT_MAX + 1], esc[3 * TSM_TEXT_MAX + 1];
        _cleanup_free_ uint8_t *gen = NULL;
        uint64_t generation;
        size_t gen_size;
        uint32_t tag;
        int r;

        r = attest_random(&tag, sizeof(tag));
        if (r < 0)
                return r;
        (void) snprintf(name, sizeof(name), "cvmcrypt-%d-%08" PRIx32, (int) getpid(), tag);
        if (mkdirat(dirfd, name, 0700) < 0) {
                /* configfs refuses the entry when no provider (sev_guest) is registered. */
                if (errno == ENODEV || errno == ENXIO || errno == EOPNOTSUPP)
                        return log_debug_errno(-ENODEV, "configfs-tsm: no report provider: %m");
                return log_debug_errno(negative_errno(), "configfs-tsm: cannot create entry %s: %m", name);
        }
        efd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (efd < 0)
                r = log_debug_errno(negative_errno(), "configfs-tsm: cannot open entry %s: %m", name);
        else
                r = write_attr(efd, "inblob", nonce, ATTEST_NONCE_SIZE);
        if (r >= 0)
                r = read_attr(efd, "outblob", SNP_REPORT_SIZE, deadline, &e.report, &e.report_size);
        if (r == -ENOENT)
                r = log_debug_errno(-ETIME, "configfs-tsm: no outblob in time");
        if (r >= 0) {
                r = read_attr(efd, "auxblob", SNP_CERT_TABLE_MAX, 0, &e.certs, &e.certs_size);
                if (r == -ENOENT) /* the provider has no certificates to give */
                        r = 0;
        }
        if (r >= 0)
                r = read_text(efd, "provider", provider);
        if (r >= 0)
                r = read_attr(efd, "generation", TSM_TEXT_MAX, 0, &gen, &gen_size);
        if (r >= 0)
                r = attest_tsm_generation_parse((const char *) gen, gen_size, &generation);
        /* The entry has served its purpose whatever happened; a failed removal only leaves an empty
         * entry behind (and always fails on a plain directory standing in for configfs). */
        if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
                log_debug("configfs-tsm: cannot remove entry %s: %m", name);
        if (r < 0)
                return r;
        if (strcmp(provider, "sev_guest") != 0)
                return log_debug_errno(-EOPNOTSUPP, "configfs-tsm: provider '%s' is not SEV-SNP (sev_guest)",
                                       log_escape(esc, sizeof(esc), provider));
        /* Exactly our one write to inblob: anything else is a concurrent writer, and the outblob may
         * answer their inblob. */
        if (generation != 1) {
                log_debug("configfs-tsm: entry %s: generation %" PRIu64 ", expected 1: another writer", name, generation);
                return 1;
        }
        r = check_report(e.report, e.report_size, nonce);
        if (r < 0)
                return r;
        if (e.certs_size == 0) {
                free(e.certs);
                e.certs = NULL;
        }
        *ret = e;
        e = (AttestEvidence){};
        return 0;
}

int attest_fetch_tsm(const char *dir, const uint8_t nonce[ATTEST_NONCE_SIZE], unsigned timeout_ms, AttestEvidence *ret) {
        _cleanup_close_ int dirfd = -EBADF;
        uint64_t deadline = now_ms() + timeout_ms;

        if (!dir || !nonce || !ret)
                return -EINVAL;
        dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return log_debug_errno(-ENODEV, "configfs-tsm: %s: %m", dir);
                return log_debug_errno(negative_errno(), "configfs-tsm: %s: %m", dir);
        }
        for (int i = 0; i < TSM_ATTEMPTS; i++) {
                int r = tsm_once(dirfd, nonce, deadline, ret);
                if (r <= 0)
                        return r;
        }
        return log_debug_errno(-EBUSY, "configfs-tsm: another writer changed the report entry %d times", TSM_ATTEMPTS);
}

/* ---- /dev/sev-guest ---- */

int snp_report_response_parse(const uint8_t *data, size_t size, const uint8_t **ret_report) {
        uint32_t status, report_size;

        if (!data || !ret_report)
                return -EINVAL;
        if (size < MSG_REPORT_RSP_HEADER + SNP_REPORT_SIZE)
                return log_debug_errno(-EBADMSG, "SNP report response: %zu bytes", size);
        status = le32(data);
        report_size = le32(data + 4);
        if (status != 0)
                return log_debug_errno(-EIO, "SNP report response: firmware status 0x%" PRIx32, status);
        if (report_size != SNP_REPORT_SIZE || !all_zero(data + 8, MSG_REPORT_RSP_HEADER - 8))
                return log_debug_errno(-EBADMSG, "SNP report response: report size %" PRIu32 " or reserved bytes wrong",
                                       report_size);
        *ret_report = data + MSG_REPORT_RSP_HEADER;
        return 0;
}

static int guest_request(int fd, unsigned long request, void *req, struct snp_report_resp *resp, const char *what) {
        struct snp_guest_request_ioctl io = {
                .msg_version = 1,
                .req_data = (uintptr_t) req,
                .resp_data = (uintptr_t) resp,
        };

        if (ioctl(fd, request, &io) < 0) {
                int r = negative_errno();
                return log_debug_errno(r, "%s failed: %m (firmware error 0x%" PRIx32 ", VMM error 0x%" PRIx32 ")", what,
                                       io.fw_error, io.vmm_error);
        }
        return 0;
}

int attest_fetch_sev_guest(const char *device, const uint8_t nonce[ATTEST_NONCE_SIZE], AttestEvidence *ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ struct snp_report_resp *resp = NULL;
        _cleanup_free_ uint8_t *certs = NULL, *report = NULL;
        struct snp_ext_report_req ext = {};
        const uint8_t *body;
        int r;

        if (!device || !nonce || !ret)
                return -EINVAL;
        fd = open(device, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT || errno == ENXIO || errno == ENODEV)
                        return log_debug_errno(-ENODEV, "%s: %m", device);
                return log_debug_errno(negative_errno(), "%s: %m", device);
        }
        resp = calloc(1, sizeof(*resp));
        certs = calloc(1, SNP_CERT_TABLE_MAX);
        if (!resp || !certs)
                return -ENOMEM;
        memcpy(ext.data.user_data, nonce, ATTEST_NONCE_SIZE);
        ext.certs_address = (uintptr_t) certs;
        ext.certs_len = SNP_CERT_TABLE_MAX; /* the most the kernel takes, a whole number of pages */
        r = guest_request(fd, SNP_GET_EXT_REPORT, &ext, resp, "SNP_GET_EXT_REPORT");
        if (r < 0) {
                struct snp_report_req req = {};

                /* Without host support for certificates (or on an old kernel) the plain request still
                 * gives the report; its error is the one that counts. */
                free(TAKE_PTR(certs));
                memcpy(req.user_data, nonce, ATTEST_NONCE_SIZE);
                memset(resp, 0, sizeof(*resp));
                r = guest_request(fd, SNP_GET_REPORT, &req, resp, "SNP_GET_REPORT");
                if (r < 0)
                        return r == -ENOTTY ? -ENODEV : r;
        }
        r = snp_report_response_parse(resp->data, sizeof(resp->data), &body);
        if (r < 0)
                return r;
        r = check_report(body, SNP_REPORT_SIZE, nonce);
        if (r < 0)
                return r;
        report = malloc(SNP_REPORT_SIZE);
        if (!report)
                return -ENOMEM;
        memcpy(report, body, SNP_REPORT_SIZE);
        /* A host without certificates leaves the table empty: only the terminator. */
        if (certs && all_zero(certs, SNP_CERT_ENTRY_SIZE))
                free(TAKE_PTR(certs));
        *ret = (AttestEvidence){ .report = TAKE_PTR(report), .report_size = SNP_REPORT_SIZE };
        if (certs) {
                ret->certs = TAKE_PTR(certs);
                ret->certs_size = SNP_CERT_TABLE_MAX;
        }
        return 0;
}

/* ---- Azure HCL report in vTPM NV ---- */

/* 0 if blob is an HCL report whose user-data is the nonce; -EAGAIN if it is one with other user-data
 * (or none); the parser's error otherwise. */
static int hcl_fresh(const uint8_t *blob, size_t size, const uint8_t nonce[ATTEST_NONCE_SIZE]) {
        HclReport h = {};
        int r;

        r = hcl_report_parse(blob, size, &h);
        if (r < 0)
                return r;
        r = h.has_user_data && CRYPTO_memcmp(h.user_data, nonce, ATTEST_NONCE_SIZE) == 0 ? 0 : -EAGAIN;
        hcl_report_done(&h);
        return r;
}

int attest_fetch_hcl_nv(TpmContext *t, const uint8_t nonce[ATTEST_NONCE_SIZE], unsigned timeout_ms, AttestEvidence *ret) {
        uint64_t deadline;
        size_t size;
        int r;

        if (!t || !nonce || !ret)
                return -EINVAL;
        r = tpm_nv_write(t, HCL_USER_DATA_NV_INDEX, nonce, ATTEST_NONCE_SIZE, false);
        if (r == -ENOENT) {
                /* Define the request index only on a vTPM that has an HCL report to refresh. */
                r = tpm_nv_size(t, HCL_NV_INDEX, &size);
                if (r == -ENOENT)
                        return log_debug_errno(-ENODEV, "NV index 0x%08x (HCL report) is not defined", HCL_NV_INDEX);
                if (r < 0)
                        return r;
                r = tpm_nv_write(t, HCL_USER_DATA_NV_INDEX, nonce, ATTEST_NONCE_SIZE, true);
        }
        if (r < 0)
                return log_debug_errno(r, "Writing the nonce to NV index 0x%08x failed: %m", HCL_USER_DATA_NV_INDEX);
        deadline = now_ms() + timeout_ms;
        for (;;) {
                _cleanup_free_ uint8_t *blob = NULL;

                r = tpm_nv_read(t, HCL_NV_INDEX, HCL_BLOB_MAX, &blob, &size);
                if (r == -ENOENT)
                        return log_debug_errno(-ENODEV, "NV index 0x%08x (HCL report) is not defined", HCL_NV_INDEX);
                if (r < 0)
                        return r;
                r = hcl_fresh(blob, size, nonce);
                if (r == 0) {
                        *ret = (AttestEvidence){ .report = TAKE_PTR(blob), .report_size = size };
                        return 0;
                }
                /* Until the deadline a report that does not parse may be one the paravisor is still
                 * rewriting; a TDX report will not become an SNP one. */
                if (r == -EOPNOTSUPP || now_ms() >= deadline)
                        return r == -EAGAIN ? log_debug_errno(-EBADE, "The HCL report's user-data is not our nonce: the paravisor did not refresh it") : r;
                sleep_ms(POLL_MS);
        }
}
