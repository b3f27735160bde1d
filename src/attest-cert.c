/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* AMD certificate chain (ARK -> ASK/ASVK -> VCEK/VLEK) and the report signature. Every signature is
 * checked explicitly on the DER to-be-signed bytes with fixed parameters, instead of through
 * X509_verify_cert(): OpenSSL's chain building has opinions (key usage, time, policy) that AMD's
 * certificates were not made for, and the trust decision here is a pinned ARK, not a CA store. */
#include <dirent.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "log.h"

#define AMD_OID_PREFIX "1.3.6.1.4.1.3704.1."
#define RSA_BITS_MIN 2048
#define PSS_SALT_LEN 48

DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(ECDSA_SIG *, ECDSA_SIG_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);
static inline void openssl_freep(void *p) {
        OPENSSL_free(*(void **) p);
}

/* ---- a minimal DER reader: exactly what is needed to find the signed bytes ---- */

typedef struct Der {
        const uint8_t *p;
        size_t left;
} Der;

typedef struct DerItem {
        uint8_t tag;
        const uint8_t *start; /* header included */
        size_t size;          /* header included */
        const uint8_t *content;
        size_t len;
} DerItem;

static int der_next(Der *d, DerItem *ret) {
        size_t len, hdr = 2;

        if (d->left < 2)
                return -EBADMSG;
        ret->tag = d->p[0];
        if ((ret->tag & 0x1F) == 0x1F) /* multi-byte tags never occur in what we read */
                return -EBADMSG;
        len = d->p[1];
        if (len & 0x80) {
                size_t n = len & 0x7F;

                /* Long form, minimal, at most 4 length bytes: DER, not BER. */
                if (n == 0 || n > 4 || d->left < 2 + n || d->p[2] == 0)
                        return -EBADMSG;
                len = 0;
                for (size_t i = 0; i < n; i++)
                        len = len << 8 | d->p[2 + i];
                if (len < 0x80)
                        return -EBADMSG;
                hdr += n;
        }
        if (len > d->left - hdr)
                return -EBADMSG;
        ret->start = d->p;
        ret->size = hdr + len;
        ret->content = d->p + hdr;
        ret->len = len;
        d->p += ret->size;
        d->left -= ret->size;
        return 0;
}

static Der der_of(const DerItem *i) {
        return (Der){ .p = i->content, .left = i->len };
}

static bool der_is(const DerItem *i, uint8_t tag, const uint8_t *content, size_t len) {
        return i->tag == tag && i->len == len && memcmp(i->content, content, len) == 0;
}

static const uint8_t OID_RSASSA_PSS[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a };
static const uint8_t OID_MGF1[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08 };
static const uint8_t OID_SHA384[] = { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02 };

/* AlgorithmIdentifier { sha384, NULL or absent } */
static bool der_is_sha384_algid(const DerItem *i) {
        Der d = der_of(i);
        DerItem oid, param;

        if (i->tag != 0x30 || der_next(&d, &oid) < 0 || !der_is(&oid, 0x06, OID_SHA384, sizeof(OID_SHA384)))
                return false;
        if (d.left == 0)
                return true;
        return der_next(&d, &param) == 0 && param.tag == 0x05 && param.len == 0 && d.left == 0;
}

static bool der_is_small_int(const DerItem *i, uint8_t value) {
        return i->tag == 0x02 && i->len == 1 && i->content[0] == value && value < 0x80;
}

/* The only signature algorithm AMD uses: RSASSA-PSS { [0] sha384, [1] mgf1(sha384), [2] salt 48,
 * [3] trailer 1 (optional, it is the default) }. Anything else is refused, even if OpenSSL could
 * verify it, so a certificate can't pick weaker parameters than the ones we check with. */
static bool der_is_amd_pss_algid(const DerItem *algid) {
        Der d = der_of(algid), params;
        DerItem oid, seq, f, inner, mgf_oid, mgf_hash;

        if (algid->tag != 0x30 || der_next(&d, &oid) < 0 ||
            !der_is(&oid, 0x06, OID_RSASSA_PSS, sizeof(OID_RSASSA_PSS)) || der_next(&d, &seq) < 0 || seq.tag != 0x30 ||
            d.left != 0)
                return false;
        params = der_of(&seq);
        if (der_next(&params, &f) < 0 || f.tag != 0xA0)
                return false;
        d = der_of(&f);
        if (der_next(&d, &inner) < 0 || d.left != 0 || !der_is_sha384_algid(&inner))
                return false;
        if (der_next(&params, &f) < 0 || f.tag != 0xA1)
                return false;
        d = der_of(&f);
        if (der_next(&d, &inner) < 0 || d.left != 0 || inner.tag != 0x30)
                return false;
        d = der_of(&inner);
        if (der_next(&d, &mgf_oid) < 0 || !der_is(&mgf_oid, 0x06, OID_MGF1, sizeof(OID_MGF1)) ||
            der_next(&d, &mgf_hash) < 0 || d.left != 0 || !der_is_sha384_algid(&mgf_hash))
                return false;
        if (der_next(&params, &f) < 0 || f.tag != 0xA2)
                return false;
        d = der_of(&f);
        if (der_next(&d, &inner) < 0 || d.left != 0 || !der_is_small_int(&inner, PSS_SALT_LEN))
                return false;
        if (params.left == 0)
                return true;
        if (der_next(&params, &f) < 0 || f.tag != 0xA3 || params.left != 0)
                return false;
        d = der_of(&f);
        return der_next(&d, &inner) == 0 && d.left == 0 && der_is_small_int(&inner, 1);
}

/* Splits a signed object (Certificate or CertificateList) into its to-be-signed bytes and signature,
 * and checks that both AlgorithmIdentifiers (inside and outside the signed part) are AMD's PSS. */
static int der_split_signed(const uint8_t *der, size_t size, bool is_crl, DerItem *ret_tbs, DerItem *ret_sig) {
        Der top = { .p = der, .left = size }, outer, tbs_d;
        DerItem seq, tbs, algid, sig, first, inner_algid;

        if (der_next(&top, &seq) < 0 || seq.tag != 0x30 || top.left != 0)
                return -EBADMSG;
        outer = der_of(&seq);
        if (der_next(&outer, &tbs) < 0 || tbs.tag != 0x30 || der_next(&outer, &algid) < 0 ||
            der_next(&outer, &sig) < 0 || outer.left != 0)
                return -EBADMSG;
        /* BIT STRING with no unused bits */
        if (sig.tag != 0x03 || sig.len < 2 || sig.content[0] != 0)
                return -EBADMSG;
        tbs_d = der_of(&tbs);
        if (der_next(&tbs_d, &first) < 0)
                return -EBADMSG;
        if (is_crl) {
                /* TBSCertList: version INTEGER OPTIONAL, signature AlgorithmIdentifier */
                if (first.tag == 0x02) {
                        if (der_next(&tbs_d, &inner_algid) < 0)
                                return -EBADMSG;
                } else
                        inner_algid = first;
        } else {
                /* TBSCertificate: [0] version OPTIONAL, serial INTEGER, signature AlgorithmIdentifier */
                if (first.tag == 0xA0 && der_next(&tbs_d, &first) < 0)
                        return -EBADMSG;
                if (first.tag != 0x02 || der_next(&tbs_d, &inner_algid) < 0)
                        return -EBADMSG;
        }
        if (!der_is_amd_pss_algid(&algid) || inner_algid.size != algid.size ||
            memcmp(inner_algid.start, algid.start, algid.size) != 0)
                return -EOPNOTSUPP;
        *ret_tbs = tbs;
        *ret_sig = sig;
        return 0;
}

static int pss_verify(EVP_PKEY *key, const DerItem *tbs, const DerItem *sig) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        int id = EVP_PKEY_get_base_id(key);

        if (!ctx)
                return -ENOMEM;
        if ((id != EVP_PKEY_RSA && id != EVP_PKEY_RSA_PSS) || EVP_PKEY_get_bits(key) < RSA_BITS_MIN)
                return -EKEYREJECTED;
        if (EVP_DigestVerifyInit(ctx, &pctx, EVP_sha384(), NULL, key) != 1 ||
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, PSS_SALT_LEN) != 1 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        /* Skip the BIT STRING's unused-bits byte. */
        if (EVP_DigestVerify(ctx, sig->content + 1, sig->len - 1, tbs->start, tbs->size) != 1) {
                ERR_clear_error();
                return -EBADE;
        }
        return 0;
}

/* 0 if obj (certificate or CRL, as DER) carries a valid AMD PSS signature by issuer_key; -EBADE if
 * the signature does not verify; -EOPNOTSUPP for other algorithms or parameters; -EBADMSG. */
static int verify_signed_der(const uint8_t *der, size_t size, bool is_crl, EVP_PKEY *issuer_key) {
        DerItem tbs, sig;
        int k;

        k = der_split_signed(der, size, is_crl, &tbs, &sig);
        if (k < 0)
                return k;
        return pss_verify(issuer_key, &tbs, &sig);
}

static int verify_cert_signature(X509 *cert, X509 *issuer) {
        _cleanup_(openssl_freep) uint8_t *der = NULL;
        EVP_PKEY *key = X509_get0_pubkey(issuer);
        int n;

        if (!key)
                return -EBADMSG;
        /* i2d of a parsed certificate reproduces the bytes it was parsed from (OpenSSL keeps the
         * TBS encoding), so these are the signed bytes. */
        n = i2d_X509(cert, &der);
        if (n <= 0)
                return -EBADMSG;
        return verify_signed_der(der, (size_t) n, false, key);
}

static int verify_crl_signature(X509_CRL *crl, X509 *issuer) {
        _cleanup_(openssl_freep) uint8_t *der = NULL;
        EVP_PKEY *key = X509_get0_pubkey(issuer);
        int n;

        if (!key)
                return -EBADMSG;
        n = i2d_X509_CRL(crl, &der);
        if (n <= 0)
                return -EBADMSG;
        return verify_signed_der(der, (size_t) n, true, key);
}

static const char *sig_error(int k) {
        switch (k) {
        case -EBADE:
                return "signature does not verify";
        case -EOPNOTSUPP:
                return "not signed with RSASSA-PSS SHA-384/MGF1-SHA-384/salt 48";
        case -EKEYREJECTED:
                return "issuer key is not RSA of at least 2048 bits";
        case -ENOMEM:
                return "out of memory";
        default:
                return "malformed certificate";
        }
}

/* ---- certificate files ---- */

static bool looks_like_pem(const uint8_t *data, size_t size) {
        static const char marker[] = "-----BEGIN ";

        return size >= sizeof(marker) - 1 && memmem(data, size, marker, sizeof(marker) - 1) != NULL;
}

int attest_parse_certs(const uint8_t *data, size_t size, STACK_OF(X509) **ret) {
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *certs = sk_X509_new_null();

        if (!certs)
                return -ENOMEM;
        if (size == 0 || size > ATTEST_CERT_FILE_MAX || size > INT_MAX)
                return -EBADMSG;
        if (looks_like_pem(data, size)) {
                _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(data, (int) size);

                if (!bio)
                        return -ENOMEM;
                for (;;) {
                        X509 *c;
                        unsigned long e;

                        ERR_clear_error();
                        c = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                        if (!c) {
                                e = ERR_peek_last_error();
                                ERR_clear_error();
                                /* "no start line" after at least one certificate: clean end of file. */
                                if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE &&
                                    sk_X509_num(certs) > 0)
                                        break;
                                return log_debug_errno(-EBADMSG, "malformed PEM certificate");
                        }
                        if (sk_X509_num(certs) >= (int) ATTEST_CERTS_PER_FILE_MAX || !sk_X509_push(certs, c)) {
                                X509_free(c);
                                return log_debug_errno(-EBADMSG, "more than %u certificates", ATTEST_CERTS_PER_FILE_MAX);
                        }
                }
        } else {
                const uint8_t *p = data;
                X509 *c = d2i_X509(NULL, &p, (long) size);

                if (!c || p != data + size) {
                        X509_free(c);
                        ERR_clear_error();
                        return log_debug_errno(-EBADMSG, "not a DER certificate (or trailing data)");
                }
                if (!sk_X509_push(certs, c)) {
                        X509_free(c);
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(certs);
        return 0;
}

int attest_load_certs(const char *path, STACK_OF(X509) **ret) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        int k;

        k = attest_read_file(path, ATTEST_CERT_FILE_MAX, &data, &size);
        if (k < 0)
                return k;
        k = attest_parse_certs(data, size, ret);
        if (k < 0)
                return log_debug_errno(k, "%s: no valid certificate", path);
        return 0;
}

static int parse_crl(const uint8_t *data, size_t size, X509_CRL **ret) {
        X509_CRL *crl;

        if (size == 0 || size > ATTEST_CERT_FILE_MAX)
                return -EBADMSG;
        if (looks_like_pem(data, size)) {
                _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(data, (int) size);

                if (!bio)
                        return -ENOMEM;
                crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
        } else {
                const uint8_t *p = data;

                crl = d2i_X509_CRL(NULL, &p, (long) size);
                if (crl && p != data + size) {
                        X509_CRL_free(crl);
                        crl = NULL;
                }
        }
        ERR_clear_error();
        if (!crl)
                return -EBADMSG;
        *ret = crl;
        return 0;
}

int attest_load_crl(const char *path, X509_CRL **ret) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        int k;

        k = attest_read_file(path, ATTEST_CERT_FILE_MAX, &data, &size);
        if (k < 0)
                return k;
        k = parse_crl(data, size, ret);
        if (k < 0)
                return log_debug_errno(k, "%s: not a CRL", path);
        return 0;
}

AttestAnchors *attest_anchors_free(AttestAnchors *a) {
        if (!a)
                return NULL;
        sk_X509_pop_free(a->certs, X509_free);
        sk_X509_CRL_pop_free(a->crls, X509_CRL_free);
        free(a);
        return NULL;
}

static bool has_suffix(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);

        return a > b && strcmp(s + a - b, suffix) == 0;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

int attest_anchors_load(const char *dir, AttestAnchors **ret) {
        _cleanup_(attest_anchors_freep) AttestAnchors *a = calloc(1, sizeof(AttestAnchors));
        _cleanup_(closedirp) DIR *d = NULL;
        char *names[ATTEST_ANCHOR_FILES_MAX];
        size_t n = 0;
        struct dirent *de;
        int k = 0;

        if (!a)
                return -ENOMEM;
        a->certs = sk_X509_new_null();
        a->crls = sk_X509_CRL_new_null();
        if (!a->certs || !a->crls)
                return -ENOMEM;
        d = opendir(dir);
        if (!d)
                return log_debug_errno(negative_errno(), "%s: cannot open trust anchors: %m", dir);
        while ((errno = 0, de = readdir(d))) {
                if (de->d_name[0] == '.' ||
                    !(has_suffix(de->d_name, ".pem") || has_suffix(de->d_name, ".der") || has_suffix(de->d_name, ".crl")))
                        continue;
                if (n >= ATTEST_ANCHOR_FILES_MAX) {
                        k = log_debug_errno(-E2BIG, "%s: more than %u anchor files", dir, ATTEST_ANCHOR_FILES_MAX);
                        break;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        k = -ENOMEM;
                        break;
                }
                n++;
        }
        if (k == 0 && errno != 0)
                k = negative_errno();
        /* Sorted, so the order (and any error message) does not depend on the filesystem. */
        qsort(names, n, sizeof(char *), name_cmp);
        for (size_t i = 0; i < n && k == 0; i++) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
                        k = -ENOMEM;
                        break;
                }
                if (has_suffix(names[i], ".crl")) {
                        X509_CRL *crl = NULL;

                        k = attest_load_crl(path, &crl);
                        if (k >= 0 && !sk_X509_CRL_push(a->crls, crl)) {
                                X509_CRL_free(crl);
                                k = -ENOMEM;
                        }
                } else {
                        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *certs = NULL;

                        k = attest_load_certs(path, &certs);
                        while (k >= 0 && sk_X509_num(certs) > 0) {
                                X509 *c = sk_X509_shift(certs);
                                if (!sk_X509_push(a->certs, c)) {
                                        X509_free(c);
                                        k = -ENOMEM;
                                }
                        }
                }
                if (k < 0)
                        (void) log_debug_errno(k, "%s: cannot load trust anchor: %m", path);
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        if (k < 0)
                return k;
        if (sk_X509_num(a->certs) == 0)
                return log_debug_errno(-ENOENT, "%s: no certificates (*.pem, *.der)", dir);
        *ret = TAKE_PTR(a);
        return 0;
}

/* ---- names and AMD extensions ---- */

static void common_name(X509_NAME *name, char *buf, size_t n) {
        int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
        const ASN1_STRING *s;
        size_t j = 0;

        buf[0] = 0;
        if (i < 0)
                return;
        s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        /* Printable ASCII only: the name ends up in messages. */
        for (int m = 0; s && m < ASN1_STRING_length(s) && j + 1 < n; m++) {
                uint8_t c = ASN1_STRING_get0_data(s)[m];
                buf[j++] = c >= 0x20 && c < 0x7F ? (char) c : '?';
        }
        buf[j] = 0;
}

static bool self_issued(X509 *c) {
        return X509_NAME_cmp(X509_get_subject_name(c), X509_get_issuer_name(c)) == 0;
}

static bool fingerprint(X509 *c, uint8_t md[32]) {
        unsigned len = 0;

        return X509_digest(c, EVP_sha256(), md, &len) == 1 && len == 32;
}

static bool same_cert(X509 *a, X509 *b) {
        uint8_t x[32], y[32];

        return fingerprint(a, x) && fingerprint(b, y) && memcmp(x, y, 32) == 0;
}

typedef struct AmdExtensions {
        bool has_product, has_hwid, has_csp;
        char product[32];
        uint8_t hwid[64];
        size_t hwid_size;
        char csp[128];
        bool has_tcb[10]; /* index = last OID arc of 1.3.6.1.4.1.3704.1.3.x */
        uint8_t tcb[10];
} AmdExtensions;

/* DER INTEGER 0..255 in minimal encoding: 02 01 xx (xx < 0x80) or 02 02 00 xx (xx >= 0x80). */
static int parse_spl(const ASN1_OCTET_STRING *v, uint8_t *ret) {
        const uint8_t *p = ASN1_STRING_get0_data(v);
        int len = ASN1_STRING_length(v);

        if (len == 3 && p[0] == 0x02 && p[1] == 1 && p[2] < 0x80)
                *ret = p[2];
        else if (len == 4 && p[0] == 0x02 && p[1] == 2 && p[2] == 0 && p[3] >= 0x80)
                *ret = p[3];
        else
                return -EBADMSG;
        return 0;
}

/* DER IA5String of printable ASCII, 1..n-1 characters. */
static int parse_ia5(const ASN1_OCTET_STRING *v, char *buf, size_t n) {
        const uint8_t *p = ASN1_STRING_get0_data(v);
        int len = ASN1_STRING_length(v);

        if (len < 3 || p[0] != 0x16 || p[1] != len - 2 || (size_t) (len - 2) >= n)
                return -EBADMSG;
        for (int i = 2; i < len; i++) {
                if (p[i] < 0x20 || p[i] >= 0x7F)
                        return -EBADMSG;
                buf[i - 2] = (char) p[i];
        }
        buf[len - 2] = 0;
        return 0;
}

/* hwID: raw 64 (Milan, Genoa) or 8 (Turin) bytes, or those wrapped in a DER OCTET STRING. The
 * lengths differ (64/8 raw, 66/10 wrapped), so the two forms can't be confused. */
static int parse_hwid(const ASN1_OCTET_STRING *v, uint8_t out[64], size_t *ret_size) {
        const uint8_t *p = ASN1_STRING_get0_data(v);
        size_t len = (size_t) ASN1_STRING_length(v);

        if ((len == 66 || len == 10) && p[0] == 0x04 && p[1] == len - 2) {
                p += 2;
                len -= 2;
        } else if (len != 64 && len != 8)
                return -EBADMSG;
        memcpy(out, p, len);
        *ret_size = len;
        return 0;
}

static int parse_amd_extensions(X509 *c, AmdExtensions *ret) {
        AmdExtensions e = {};
        int n = X509_get_ext_count(c);

        for (int i = 0; i < n; i++) {
                X509_EXTENSION *x = X509_get_ext(c, i);
                const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(x);
                char oid[80];
                const char *rest;
                int k = 0;

                if (OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(x), 1) <= 0 ||
                    strncmp(oid, AMD_OID_PREFIX, strlen(AMD_OID_PREFIX)) != 0)
                        continue;
                rest = oid + strlen(AMD_OID_PREFIX);
                /* A second copy of an extension could say something else than the first. */
                if (strcmp(rest, "2") == 0) {
                        if (e.has_product)
                                return -EBADMSG;
                        e.has_product = true;
                        k = parse_ia5(v, e.product, sizeof(e.product));
                } else if (strcmp(rest, "4") == 0) {
                        if (e.has_hwid)
                                return -EBADMSG;
                        e.has_hwid = true;
                        k = parse_hwid(v, e.hwid, &e.hwid_size);
                } else if (strcmp(rest, "5") == 0) {
                        if (e.has_csp)
                                return -EBADMSG;
                        e.has_csp = true;
                        k = parse_ia5(v, e.csp, sizeof(e.csp));
                } else if (strncmp(rest, "3.", 2) == 0 && rest[2] >= '1' && rest[2] <= '9' && rest[3] == 0) {
                        unsigned arc = (unsigned) (rest[2] - '0');
                        if (e.has_tcb[arc])
                                return -EBADMSG;
                        e.has_tcb[arc] = true;
                        k = parse_spl(v, &e.tcb[arc]);
                }
                if (k < 0)
                        return log_debug_errno(k, "AMD extension %s is malformed", oid);
        }
        *ret = e;
        return 0;
}

/* OID arcs of 1.3.6.1.4.1.3704.1.3.x per TCB component. */
enum { SPL_BOOTLOADER = 1, SPL_TEE = 2, SPL_SNP = 3, SPL_MICROCODE = 8, SPL_FMC = 9 };

/* ---- the verification ---- */

typedef struct Ctx {
        SnpReport *report;
        X509 *leaf, *inter, *ark;
        const char *leaf_label; /* "VCEK" or "VLEK" (or "leaf certificate") */
        char leaf_cn[64], inter_cn[64], ark_cn[64];
        SnpSigningKey leaf_kind;
        AmdExtensions ext;
        SnpProduct product;
        AttestProblems *problems;
} Ctx;

static X509 *pick_intermediate(X509 *leaf, STACK_OF(X509) *chain, const AttestAnchors *anchors) {
        X509 *any = NULL;

        for (int i = 0; chain && i < sk_X509_num(chain); i++) {
                X509 *c = sk_X509_value(chain, i);
                if (self_issued(c) || same_cert(c, leaf))
                        continue;
                if (X509_NAME_cmp(X509_get_subject_name(c), X509_get_issuer_name(leaf)) == 0)
                        return c;
                if (!any)
                        any = c;
        }
        /* A chain that was given but holds only the wrong intermediate is used as given, so the
         * failure names it; the anchors stand in only when the chain has none at all. */
        if (any)
                return any;
        for (int i = 0; anchors && i < sk_X509_num(anchors->certs); i++) {
                X509 *c = sk_X509_value(anchors->certs, i);
                if (!self_issued(c) && X509_NAME_cmp(X509_get_subject_name(c), X509_get_issuer_name(leaf)) == 0)
                        return c;
        }
        return NULL;
}

static bool is_pinned(X509 *ark, const AttestAnchors *anchors) {
        for (int i = 0; i < sk_X509_num(anchors->certs); i++) {
                X509 *c = sk_X509_value(anchors->certs, i);
                if (self_issued(c) && same_cert(c, ark))
                        return true;
        }
        return false;
}

static X509 *anchor_by_name(const AttestAnchors *anchors, X509_NAME *name) {
        for (int i = 0; i < sk_X509_num(anchors->certs); i++) {
                X509 *c = sk_X509_value(anchors->certs, i);
                if (self_issued(c) && X509_NAME_cmp(X509_get_subject_name(c), name) == 0)
                        return c;
        }
        return NULL;
}

/* The ARK: from the chain if it has one (then it must be pinned), else the anchor by name. */
static X509 *pick_ark(Ctx *c, STACK_OF(X509) *chain, const AttestAnchors *anchors) {
        X509 *in_chain = NULL, *ark;
        char cn[64];

        for (int i = 0; chain && i < sk_X509_num(chain); i++) {
                X509 *x = sk_X509_value(chain, i);
                if (!self_issued(x))
                        continue;
                if (!in_chain || X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(c->inter)) == 0)
                        in_chain = x;
        }
        if (in_chain) {
                if (is_pinned(in_chain, anchors))
                        return in_chain;
                common_name(X509_get_subject_name(in_chain), cn, sizeof(cn));
                attest_problem_add(c->problems, "ark-pinned", "%s in the chain is not one of the trusted ARKs", cn);
        }
        ark = anchor_by_name(anchors, X509_get_issuer_name(c->inter));
        if (!ark) {
                common_name(X509_get_issuer_name(c->inter), cn, sizeof(cn));
                if (!in_chain)
                        attest_problem_add(c->problems, "ark-pinned", "no trusted ARK named %s in the trust anchors", cn);
        }
        return in_chain && !ark ? NULL : ark;
}

static void check_chain(Ctx *c, STACK_OF(X509) *chain, const AttestAnchors *anchors) {
        char want[64];
        int k;

        c->inter = pick_intermediate(c->leaf, chain, anchors);
        if (!c->inter) {
                char issuer[64];
                common_name(X509_get_issuer_name(c->leaf), issuer, sizeof(issuer));
                attest_problem_add(c->problems, "chain", "no certificate for the %s issuer %s in the chain or the trust anchors",
                                   c->leaf_label, issuer);
                return;
        }
        common_name(X509_get_subject_name(c->inter), c->inter_cn, sizeof(c->inter_cn));
        c->ark = pick_ark(c, chain, anchors);
        if (!c->ark)
                return;
        common_name(X509_get_subject_name(c->ark), c->ark_cn, sizeof(c->ark_cn));

        k = verify_cert_signature(c->ark, c->ark);
        if (k < 0)
                attest_problem_add(c->problems, "ark-signature", "%s self-signature: %s", c->ark_cn, sig_error(k));
        k = verify_cert_signature(c->inter, c->ark);
        if (k < 0)
                attest_problem_add(c->problems, "chain", "%s does not chain to %s: %s", c->inter_cn, c->ark_cn, sig_error(k));
        else if (X509_NAME_cmp(X509_get_issuer_name(c->inter), X509_get_subject_name(c->ark)) != 0)
                attest_problem_add(c->problems, "chain", "%s does not chain to %s: its issuer name differs", c->inter_cn,
                                   c->ark_cn);
        k = verify_cert_signature(c->leaf, c->inter);
        if (k < 0)
                attest_problem_add(c->problems, "chain", "%s does not chain to %s: checked against %s, %s", c->leaf_label,
                                   c->ark_cn, c->inter_cn, sig_error(k));
        else if (X509_NAME_cmp(X509_get_issuer_name(c->leaf), X509_get_subject_name(c->inter)) != 0)
                attest_problem_add(c->problems, "chain", "%s does not chain to %s: its issuer name is not %s", c->leaf_label,
                                   c->ark_cn, c->inter_cn);

        /* Product names tie the three together: Milan VCEK <- SEV-Milan <- ARK-Milan. */
        if (c->product == SNP_PRODUCT_UNKNOWN)
                return;
        (void) snprintf(want, sizeof(want), "ARK-%s", snp_product_to_string(c->product));
        if (strcmp(c->ark_cn, want) != 0)
                attest_problem_add(c->problems, "product", "%s product %s does not match %s", c->leaf_label, c->ext.product,
                                   c->ark_cn);
        (void) snprintf(want, sizeof(want), "SEV-%s%s", c->leaf_kind == SNP_SIGNING_KEY_VLEK ? "VLEK-" : "",
                        snp_product_to_string(c->product));
        if (strcmp(c->inter_cn, want) != 0)
                attest_problem_add(c->problems, "product", "%s product %s needs issuer %s, not %s", c->leaf_label,
                                   c->ext.product, want, c->inter_cn);
}

static void check_crl(Ctx *c, X509_CRL *crl, bool explicit) {
        X509_NAME *issuer = X509_CRL_get_issuer(crl);
        X509 *signer, *subject;
        X509_REVOKED *rev = NULL;
        char subject_cn[64];
        int k;

        if (c->ark && X509_NAME_cmp(issuer, X509_get_subject_name(c->ark)) == 0) {
                signer = c->ark;
                subject = c->inter;
                (void) snprintf(subject_cn, sizeof(subject_cn), "%s", c->inter_cn);
        } else if (c->inter && X509_NAME_cmp(issuer, X509_get_subject_name(c->inter)) == 0) {
                signer = c->inter;
                subject = c->leaf;
                (void) snprintf(subject_cn, sizeof(subject_cn), "%s", c->leaf_label);
        } else {
                /* The anchors hold CRLs for every product; only an explicitly given one must fit. */
                if (explicit) {
                        char cn[64];
                        common_name(issuer, cn, sizeof(cn));
                        attest_problem_add(c->problems, "crl", "the CRL is issued by %s, not by %s or %s", cn,
                                           c->ark ? c->ark_cn : "the ARK", c->inter ? c->inter_cn : "the ASK");
                }
                return;
        }
        k = verify_crl_signature(crl, signer);
        if (k < 0) {
                char cn[64];
                common_name(X509_get_subject_name(signer), cn, sizeof(cn));
                attest_problem_add(c->problems, "crl", "CRL of %s: %s", cn, sig_error(k));
                return;
        }
        if (X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(subject)) == 1) {
                char cn[64];
                common_name(X509_get_subject_name(signer), cn, sizeof(cn));
                attest_problem_add(c->problems, "crl", "%s is revoked by the CRL of %s", subject_cn, cn);
        }
}

static void check_tcb_component(Ctx *c, const char *name, unsigned arc, uint8_t reported) {
        if (!c->ext.has_tcb[arc]) {
                attest_problem_add(c->problems, "leaf-extensions", "%s has no TCB %s extension (1.3.6.1.4.1.3704.1.3.%u)",
                                   c->leaf_label, name, arc);
                return;
        }
        if (c->ext.tcb[arc] != reported)
                attest_problem_add(c->problems, "tcb", "%s TCB %s 0x%02x != reported TCB 0x%02x", c->leaf_label, name,
                                   c->ext.tcb[arc], reported);
}

static void check_report_fields(Ctx *c) {
        SnpReport *r = c->report;
        SnpSigningKey want = snp_report_signing_key(r);
        SnpTcb tcb;
        int k;

        if (want == SNP_SIGNING_KEY_NONE)
                attest_problem_add(c->problems, "signer", "the report is not signed (SIGNING_KEY = none)");
        else if (c->leaf_kind != SNP_SIGNING_KEY_NONE && want != c->leaf_kind)
                attest_problem_add(c->problems, "signer", "the report says it is signed by a %s, but the certificate is a %s",
                                   want == SNP_SIGNING_KEY_VLEK ? "VLEK" : "VCEK", c->leaf_label);

        if (c->product == SNP_PRODUCT_UNKNOWN)
                return;
        /* v3+: the CPUID fields name the product; they must agree with the certificate's. v2: the
         * certificate decides the TCB layout. */
        if (r->tcb_layout_known) {
                if (r->product != SNP_PRODUCT_UNKNOWN ? r->product != c->product
                                                      : r->tcb_layout != (c->product == SNP_PRODUCT_TURIN ? SNP_TCB_LAYOUT_TURIN
                                                                                                         : SNP_TCB_LAYOUT_MILAN_GENOA)) {
                        attest_problem_add(c->problems, "product",
                                           "report CPUID family 0x%02x model 0x%02x is %s, but the %s is for %s", r->cpuid_fam_id,
                                           r->cpuid_mod_id, snp_product_to_string(r->product), c->leaf_label,
                                           snp_product_to_string(c->product));
                        return;
                }
        }
        k = snp_report_set_product(r, c->product);
        if (k < 0) {
                attest_problem_add(c->problems, "tcb", "a TCB of the report has non-zero reserved bytes for %s",
                                   snp_product_to_string(c->product));
                return;
        }
        snp_tcb_decode(r->reported_tcb, r->tcb_layout, &tcb);
        if (r->tcb_layout == SNP_TCB_LAYOUT_TURIN)
                check_tcb_component(c, "fmc", SPL_FMC, tcb.fmc);
        check_tcb_component(c, "bootloader", SPL_BOOTLOADER, tcb.bootloader);
        check_tcb_component(c, "tee", SPL_TEE, tcb.tee);
        check_tcb_component(c, "snp", SPL_SNP, tcb.snp);
        check_tcb_component(c, "microcode", SPL_MICROCODE, tcb.microcode);

        /* The chip id binds a VCEK to one chip; a VLEK belongs to the cloud provider, and a masked
         * chip id is zero by request. */
        if (c->leaf_kind != SNP_SIGNING_KEY_VCEK || (r->signer_info & SNP_SIGNER_MASK_CHIP_KEY))
                return;
        if (!c->ext.has_hwid)
                attest_problem_add(c->problems, "leaf-extensions", "VCEK has no hwID extension (1.3.6.1.4.1.3704.1.4)");
        else {
                uint8_t tail = 0;
                for (size_t i = c->ext.hwid_size; i < sizeof(r->chip_id); i++)
                        tail |= r->chip_id[i];
                if (CRYPTO_memcmp(c->ext.hwid, r->chip_id, c->ext.hwid_size) != 0 || tail != 0)
                        attest_problem_add(c->problems, "hwid",
                                           "VCEK hwID %02x%02x%02x%02x%02x%02x%02x%02x... != report CHIP_ID %02x%02x%02x%02x%02x%02x%02x%02x...",
                                           c->ext.hwid[0], c->ext.hwid[1], c->ext.hwid[2], c->ext.hwid[3], c->ext.hwid[4],
                                           c->ext.hwid[5], c->ext.hwid[6], c->ext.hwid[7], r->chip_id[0], r->chip_id[1],
                                           r->chip_id[2], r->chip_id[3], r->chip_id[4], r->chip_id[5], r->chip_id[6],
                                           r->chip_id[7]);
        }
}

/* ECDSA P-384 / SHA-384 over bytes 0x000..0x29F; r and s are little-endian in the report. */
static int verify_report_signature(const SnpReport *r, EVP_PKEY *key) {
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = ECDSA_SIG_new();
        _cleanup_(BN_freep) BIGNUM *br = BN_lebin2bn(r->signature_r, 48, NULL), *bs = BN_lebin2bn(r->signature_s, 48, NULL);
        _cleanup_(openssl_freep) uint8_t *der = NULL;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int n, ok;

        if (!sig || !br || !bs || !ctx)
                return -ENOMEM;
        if (ECDSA_SIG_set0(sig, br, bs) != 1)
                return -ENOMEM;
        br = bs = NULL; /* owned by sig now */
        n = i2d_ECDSA_SIG(sig, &der);
        if (n <= 0)
                return -ENOMEM;
        ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha384(), NULL, key) == 1 &&
             EVP_DigestVerify(ctx, der, (size_t) n, r->raw, SNP_REPORT_SIGNED_SIZE) == 1;
        ERR_clear_error();
        return ok ? 0 : -EBADE;
}

static bool is_p384(EVP_PKEY *key) {
        char group[32];
        size_t len = 0;

        return key && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
               EVP_PKEY_get_group_name(key, group, sizeof(group), &len) == 1 && strcmp(group, "secp384r1") == 0;
}

int attest_verify_report(SnpReport *r, X509 *leaf, STACK_OF(X509) *chain, const AttestAnchors *anchors,
                         STACK_OF(X509_CRL) *crls, AttestChainInfo *ret_info, AttestProblems *problems) {
        Ctx c = { .report = r, .leaf = leaf, .problems = problems, .leaf_kind = SNP_SIGNING_KEY_NONE };
        size_t before = problems->n;
        EVP_PKEY *key;
        int k;

        if (!leaf || !anchors)
                return -EINVAL;

        common_name(X509_get_subject_name(leaf), c.leaf_cn, sizeof(c.leaf_cn));
        if (strcmp(c.leaf_cn, "SEV-VCEK") == 0) {
                c.leaf_kind = SNP_SIGNING_KEY_VCEK;
                c.leaf_label = "VCEK";
        } else if (strcmp(c.leaf_cn, "SEV-VLEK") == 0) {
                c.leaf_kind = SNP_SIGNING_KEY_VLEK;
                c.leaf_label = "VLEK";
        } else {
                c.leaf_label = "leaf certificate";
                attest_problem_add(problems, "signer", "certificate %s is neither SEV-VCEK nor SEV-VLEK", c.leaf_cn);
        }

        k = parse_amd_extensions(leaf, &c.ext);
        if (k < 0) {
                attest_problem_add(problems, "leaf-extensions", "%s has a malformed AMD extension", c.leaf_label);
                return -EBADMSG;
        }
        if (!c.ext.has_product)
                attest_problem_add(problems, "leaf-extensions", "%s has no product name extension (1.3.6.1.4.1.3704.1.2)",
                                   c.leaf_label);
        else {
                c.product = snp_product_from_name(c.ext.product);
                if (c.product == SNP_PRODUCT_UNKNOWN)
                        attest_problem_add(problems, "product", "%s product '%s' is not one we know", c.leaf_label, c.ext.product);
        }

        check_chain(&c, chain, anchors);
        for (int i = 0; i < sk_X509_CRL_num(anchors->crls); i++)
                check_crl(&c, sk_X509_CRL_value(anchors->crls, i), false);
        for (int i = 0; crls && i < sk_X509_CRL_num(crls); i++)
                check_crl(&c, sk_X509_CRL_value(crls, i), true);
        check_report_fields(&c);

        key = X509_get0_pubkey(leaf);
        if (!is_p384(key))
                attest_problem_add(problems, "leaf-key", "%s key is not ECDSA P-384", c.leaf_label);
        else if (snp_report_signing_key(r) != SNP_SIGNING_KEY_NONE) {
                k = verify_report_signature(r, key);
                if (k == -ENOMEM)
                        return k;
                if (k < 0)
                        attest_problem_add(problems, "report-signature", "report signature invalid (not signed by this %s)",
                                           c.leaf_label);
        }

        if (ret_info) {
                AttestChainInfo info = { .product = c.product, .key = c.leaf_kind };

                (void) snprintf(info.product_name, sizeof(info.product_name), "%s", c.ext.product);
                info.cert_tcb = (SnpTcb){ .fmc = c.ext.tcb[SPL_FMC], .bootloader = c.ext.tcb[SPL_BOOTLOADER],
                                          .tee = c.ext.tcb[SPL_TEE], .snp = c.ext.tcb[SPL_SNP],
                                          .microcode = c.ext.tcb[SPL_MICROCODE] };
                if (c.ark)
                        (void) fingerprint(c.ark, info.ark_sha256);
                (void) snprintf(info.ark_name, sizeof(info.ark_name), "%s", c.ark_cn);
                (void) snprintf(info.intermediate_name, sizeof(info.intermediate_name), "%s", c.inter_cn);
                (void) snprintf(info.csp_id, sizeof(info.csp_id), "%s", c.ext.csp);
                *ret_info = info;
        }
        return problems->n > before || problems->truncated ? -EBADE : 0;
}
