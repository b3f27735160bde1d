/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest.h"
#include "json-strict.h"
#include "fileio.h"
#include "log.h"

/* Offsets (docs/attestation-formats.md, section 1). */
enum {
        OFF_VERSION = 0x000,
        OFF_GUEST_SVN = 0x004,
        OFF_POLICY = 0x008,
        OFF_FAMILY_ID = 0x010,
        OFF_IMAGE_ID = 0x020,
        OFF_VMPL = 0x030,
        OFF_SIGNATURE_ALGO = 0x034,
        OFF_CURRENT_TCB = 0x038,
        OFF_PLATFORM_INFO = 0x040,
        OFF_SIGNER_INFO = 0x048,
        OFF_RESERVED_04C = 0x04C,
        OFF_REPORT_DATA = 0x050,
        OFF_MEASUREMENT = 0x090,
        OFF_HOST_DATA = 0x0C0,
        OFF_ID_KEY_DIGEST = 0x0E0,
        OFF_AUTHOR_KEY_DIGEST = 0x110,
        OFF_REPORT_ID = 0x140,
        OFF_REPORT_ID_MA = 0x160,
        OFF_REPORTED_TCB = 0x180,
        OFF_CPUID_FAM_ID = 0x188,
        OFF_CPUID_MOD_ID = 0x189,
        OFF_CPUID_STEP = 0x18A,
        OFF_RESERVED_18B = 0x18B,
        OFF_CHIP_ID = 0x1A0,
        OFF_COMMITTED_TCB = 0x1E0,
        OFF_CURRENT_BUILD = 0x1E8,
        OFF_CURRENT_MINOR = 0x1E9,
        OFF_CURRENT_MAJOR = 0x1EA,
        OFF_RESERVED_1EB = 0x1EB,
        OFF_COMMITTED_BUILD = 0x1EC,
        OFF_COMMITTED_MINOR = 0x1ED,
        OFF_COMMITTED_MAJOR = 0x1EE,
        OFF_RESERVED_1EF = 0x1EF,
        OFF_LAUNCH_TCB = 0x1F0,
        OFF_LAUNCH_MIT_VECTOR = 0x1F8,
        OFF_CURRENT_MIT_VECTOR = 0x200,
        OFF_RESERVED_208 = 0x208,
        OFF_SIGNATURE_R = 0x2A0,
        OFF_SIGNATURE_S = 0x2E8,
        OFF_RESERVED_330 = 0x330,
};

#define SIG_COMPONENT_SIZE 72
#define SIG_COMPONENT_USED 48 /* P-384 */

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint64_t le64(const uint8_t *p) {
        return (uint64_t) le32(p) | (uint64_t) le32(p + 4) << 32;
}

static bool all_zero(const uint8_t *p, size_t n) {
        uint8_t acc = 0;

        for (size_t i = 0; i < n; i++)
                acc |= p[i];
        return acc == 0;
}

/* The product a v3+ report's CPUID fields name. Family 1Ah and later use the Turin TCB layout even
 * when the model is one we do not know; family 19h always uses the Milan/Genoa one. */
static SnpProduct product_from_cpuid(uint8_t family, uint8_t model) {
        if (family == 0x19) {
                if (model <= 0x0F)
                        return SNP_PRODUCT_MILAN;
                if ((model >= 0x10 && model <= 0x1F) || (model >= 0xA0 && model <= 0xAF))
                        return SNP_PRODUCT_GENOA;
        } else if (family == 0x1A && model <= 0x11)
                return SNP_PRODUCT_TURIN;
        return SNP_PRODUCT_UNKNOWN;
}

static SnpTcbLayout layout_of(SnpProduct p) {
        return p == SNP_PRODUCT_TURIN ? SNP_TCB_LAYOUT_TURIN : SNP_TCB_LAYOUT_MILAN_GENOA;
}

void snp_tcb_decode(uint64_t raw, SnpTcbLayout layout, SnpTcb *ret) {
        uint8_t b[8];

        for (size_t i = 0; i < 8; i++)
                b[i] = (uint8_t) (raw >> (8 * i));
        if (layout == SNP_TCB_LAYOUT_TURIN)
                *ret = (SnpTcb){ .fmc = b[0], .bootloader = b[1], .tee = b[2], .snp = b[3], .microcode = b[7] };
        else
                *ret = (SnpTcb){ .bootloader = b[0], .tee = b[1], .snp = b[6], .microcode = b[7] };
}

uint64_t snp_tcb_reserved_bits(uint64_t raw, SnpTcbLayout layout) {
        /* Milan/Genoa: bytes 2..5 reserved; Turin: bytes 4..6. */
        return raw & (layout == SNP_TCB_LAYOUT_TURIN ? UINT64_C(0x00FFFFFF00000000) : UINT64_C(0x0000FFFFFFFF0000));
}

static int check_tcb_reserved(const SnpReport *r, SnpTcbLayout layout) {
        const uint64_t tcbs[] = { r->current_tcb, r->reported_tcb, r->committed_tcb, r->launch_tcb };

        for (size_t i = 0; i < ELEMENTSOF(tcbs); i++)
                if (snp_tcb_reserved_bits(tcbs[i], layout) != 0)
                        return log_debug_errno(-EBADMSG, "SNP report: TCB 0x%016llx has non-zero reserved bytes for the %s layout",
                                               (unsigned long long) tcbs[i], snp_tcb_layout_to_string(layout));
        return 0;
}

int snp_report_set_product(SnpReport *r, SnpProduct product) {
        SnpTcbLayout layout = layout_of(product);
        int k;

        k = check_tcb_reserved(r, layout);
        if (k < 0)
                return k;
        r->product = product;
        r->tcb_layout = layout;
        r->tcb_layout_known = true;
        return 0;
}

int snp_report_parse(const void *data, size_t size, SnpReport *ret) {
        const uint8_t *p = data;
        SnpReport r = {};
        unsigned key;

        if (size != SNP_REPORT_SIZE)
                return log_debug_errno(-EBADMSG, "SNP report: %zu bytes, expected %u", size, SNP_REPORT_SIZE);

        r.version = le32(p + OFF_VERSION);
        if (r.version < SNP_REPORT_VERSION_MIN || r.version > SNP_REPORT_VERSION_MAX)
                return log_debug_errno(-EBADMSG, "SNP report: unsupported version %u", r.version);
        r.guest_svn = le32(p + OFF_GUEST_SVN);
        r.policy = le64(p + OFF_POLICY);
        /* Bit 17 is reserved-must-be-one: a report without it was not produced by SNP firmware. */
        if (!(r.policy & SNP_POLICY_RESERVED_1))
                return log_debug_errno(-EBADMSG, "SNP report: guest policy 0x%llx lacks the must-be-one bit 17",
                                       (unsigned long long) r.policy);
        memcpy(r.family_id, p + OFF_FAMILY_ID, sizeof(r.family_id));
        memcpy(r.image_id, p + OFF_IMAGE_ID, sizeof(r.image_id));
        r.vmpl = le32(p + OFF_VMPL);
        if (r.vmpl > 3)
                return log_debug_errno(-EBADMSG, "SNP report: VMPL %u out of range 0..3", r.vmpl);
        r.signature_algo = le32(p + OFF_SIGNATURE_ALGO);
        if (r.signature_algo != 1)
                return log_debug_errno(-EBADMSG, "SNP report: signature algorithm %u, expected 1 (ECDSA P-384 SHA-384)",
                                       r.signature_algo);
        r.current_tcb = le64(p + OFF_CURRENT_TCB);
        r.platform_info = le64(p + OFF_PLATFORM_INFO);
        r.signer_info = le32(p + OFF_SIGNER_INFO);
        if (r.signer_info >> 5)
                return log_debug_errno(-EBADMSG, "SNP report: reserved signer_info bits set (0x%x)", r.signer_info);
        key = (r.signer_info >> 2) & 7;
        if (key != SNP_SIGNING_KEY_VCEK && key != SNP_SIGNING_KEY_VLEK && key != SNP_SIGNING_KEY_NONE)
                return log_debug_errno(-EBADMSG, "SNP report: reserved SIGNING_KEY value %u", key);
        if (!all_zero(p + OFF_RESERVED_04C, 4))
                return log_debug_errno(-EBADMSG, "SNP report: reserved bytes at 0x04C are not zero");
        memcpy(r.report_data, p + OFF_REPORT_DATA, sizeof(r.report_data));
        memcpy(r.measurement, p + OFF_MEASUREMENT, sizeof(r.measurement));
        memcpy(r.host_data, p + OFF_HOST_DATA, sizeof(r.host_data));
        memcpy(r.id_key_digest, p + OFF_ID_KEY_DIGEST, sizeof(r.id_key_digest));
        memcpy(r.author_key_digest, p + OFF_AUTHOR_KEY_DIGEST, sizeof(r.author_key_digest));
        memcpy(r.report_id, p + OFF_REPORT_ID, sizeof(r.report_id));
        memcpy(r.report_id_ma, p + OFF_REPORT_ID_MA, sizeof(r.report_id_ma));
        r.reported_tcb = le64(p + OFF_REPORTED_TCB);

        /* v2 has no CPUID fields: 0x188..0x19F is reserved as a whole. */
        if (r.version >= 3) {
                r.cpuid_fam_id = p[OFF_CPUID_FAM_ID];
                r.cpuid_mod_id = p[OFF_CPUID_MOD_ID];
                r.cpuid_step = p[OFF_CPUID_STEP];
                if (!all_zero(p + OFF_RESERVED_18B, OFF_CHIP_ID - OFF_RESERVED_18B))
                        return log_debug_errno(-EBADMSG, "SNP report: reserved bytes at 0x18B are not zero");
        } else if (!all_zero(p + OFF_CPUID_FAM_ID, OFF_CHIP_ID - OFF_CPUID_FAM_ID))
                return log_debug_errno(-EBADMSG, "SNP report: reserved bytes at 0x188 are not zero (version 2)");

        memcpy(r.chip_id, p + OFF_CHIP_ID, sizeof(r.chip_id));
        r.committed_tcb = le64(p + OFF_COMMITTED_TCB);
        r.current_build = p[OFF_CURRENT_BUILD];
        r.current_minor = p[OFF_CURRENT_MINOR];
        r.current_major = p[OFF_CURRENT_MAJOR];
        r.committed_build = p[OFF_COMMITTED_BUILD];
        r.committed_minor = p[OFF_COMMITTED_MINOR];
        r.committed_major = p[OFF_COMMITTED_MAJOR];
        if (p[OFF_RESERVED_1EB] != 0 || p[OFF_RESERVED_1EF] != 0)
                return log_debug_errno(-EBADMSG, "SNP report: reserved bytes at 0x1EB/0x1EF are not zero");
        r.launch_tcb = le64(p + OFF_LAUNCH_TCB);

        /* The mitigation vectors exist from version 5 on; before that the whole area is reserved. */
        if (r.version >= 5) {
                r.launch_mit_vector = le64(p + OFF_LAUNCH_MIT_VECTOR);
                r.current_mit_vector = le64(p + OFF_CURRENT_MIT_VECTOR);
                if (!all_zero(p + OFF_RESERVED_208, OFF_SIGNATURE_R - OFF_RESERVED_208))
                        return log_debug_errno(-EBADMSG, "SNP report: reserved bytes at 0x208 are not zero");
        } else if (!all_zero(p + OFF_LAUNCH_MIT_VECTOR, OFF_SIGNATURE_R - OFF_LAUNCH_MIT_VECTOR))
                return log_debug_errno(-EBADMSG, "SNP report: reserved bytes at 0x1F8 are not zero (version %u)", r.version);

        memcpy(r.signature_r, p + OFF_SIGNATURE_R, SIG_COMPONENT_SIZE);
        memcpy(r.signature_s, p + OFF_SIGNATURE_S, SIG_COMPONENT_SIZE);
        /* P-384 components fill 48 of the 72 bytes; padding that is not zero would be ignored by a
         * BIGNUM conversion elsewhere, so it is refused here. */
        if (!all_zero(r.signature_r + SIG_COMPONENT_USED, SIG_COMPONENT_SIZE - SIG_COMPONENT_USED) ||
            !all_zero(r.signature_s + SIG_COMPONENT_USED, SIG_COMPONENT_SIZE - SIG_COMPONENT_USED))
                return log_debug_errno(-EBADMSG, "SNP report: signature components are not zero-padded");
        if (!all_zero(p + OFF_RESERVED_330, SNP_REPORT_SIZE - OFF_RESERVED_330))
                return log_debug_errno(-EBADMSG, "SNP report: reserved bytes at 0x330 are not zero");

        memcpy(r.raw, p, SNP_REPORT_SIZE);

        if (r.version >= 3 && (r.cpuid_fam_id == 0x19 || r.cpuid_fam_id >= 0x1A)) {
                SnpTcbLayout layout = r.cpuid_fam_id >= 0x1A ? SNP_TCB_LAYOUT_TURIN : SNP_TCB_LAYOUT_MILAN_GENOA;
                int k;

                k = check_tcb_reserved(&r, layout);
                if (k < 0)
                        return k;
                r.product = product_from_cpuid(r.cpuid_fam_id, r.cpuid_mod_id);
                r.tcb_layout = layout;
                r.tcb_layout_known = true;
        } else {
                /* Guess for display only (verification takes the layout from the VCEK): Turin chip
                 * ids are 8 bytes, the older ones 64. */
                bool short_id = !all_zero(r.chip_id, 8) && all_zero(r.chip_id + 8, sizeof(r.chip_id) - 8);
                r.tcb_layout = short_id ? SNP_TCB_LAYOUT_TURIN : SNP_TCB_LAYOUT_MILAN_GENOA;
        }

        *ret = r;
        return 0;
}

const char *snp_product_to_string(SnpProduct p) {
        switch (p) {
        case SNP_PRODUCT_MILAN:
                return "Milan";
        case SNP_PRODUCT_GENOA:
                return "Genoa";
        case SNP_PRODUCT_TURIN:
                return "Turin";
        default:
                return "unknown";
        }
}

SnpProduct snp_product_from_name(const char *name) {
        static const struct {
                const char *name;
                SnpProduct product;
        } table[] = {
                { "Milan", SNP_PRODUCT_MILAN },
                { "Genoa", SNP_PRODUCT_GENOA },
                { "Turin", SNP_PRODUCT_TURIN },
        };
        size_t len = strcspn(name, "-");

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strlen(table[i].name) == len && strncmp(name, table[i].name, len) == 0)
                        return table[i].product;
        return SNP_PRODUCT_UNKNOWN;
}

const char *snp_signing_key_to_string(SnpSigningKey k) {
        switch (k) {
        case SNP_SIGNING_KEY_VCEK:
                return "vcek";
        case SNP_SIGNING_KEY_VLEK:
                return "vlek";
        case SNP_SIGNING_KEY_NONE:
                return "none";
        default:
                return "reserved";
        }
}

const char *snp_tcb_layout_to_string(SnpTcbLayout l) {
        return l == SNP_TCB_LAYOUT_TURIN ? "turin" : "milan-genoa";
}

static const char *const policy_bit_names[] = {
        [16] = "smt",
        [17] = "reserved-must-be-one",
        [18] = "migrate-ma",
        [19] = "debug",
        [20] = "single-socket",
        [21] = "cxl-allow",
        [22] = "mem-aes-256-xts",
        [23] = "rapl-dis",
        [24] = "ciphertext-hiding-dram",
        [25] = "page-swap-disable",
};

const char *snp_policy_bit_name(unsigned bit) {
        return bit < ELEMENTSOF(policy_bit_names) ? policy_bit_names[bit] : NULL;
}

int snp_policy_bit_from_name(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(policy_bit_names); i++)
                if (policy_bit_names[i] && strcmp(policy_bit_names[i], name) == 0)
                        return (int) i;
        return -EINVAL;
}

static const char *const platform_bit_names[] = {
        "smt-en", "tsme-en", "ecc-en", "rapl-dis", "ciphertext-hiding-dram-en", "alias-check-complete", NULL, "tio-en",
};

/* ---- JSON ---- */

static int add_u64_hex(json_object *o, const char *key, uint64_t v) {
        char buf[32];

        (void) snprintf(buf, sizeof(buf), "0x%016llx", (unsigned long long) v);
        return json_add(o, key, json_object_new_string(buf));
}

static int add_bits(json_object *o, const char *key, uint64_t v, const char *const *names, size_t n_names,
                    unsigned first) {
        json_object *a = json_object_new_array();
        int k;

        k = json_add(o, key, a);
        if (k < 0)
                return k;
        for (unsigned bit = first; bit < 64; bit++) {
                char buf[16];
                const char *name;

                if (!(v & (UINT64_C(1) << bit)))
                        continue;
                name = bit < n_names ? names[bit] : NULL;
                if (!name) {
                        (void) snprintf(buf, sizeof(buf), "bit%u", bit);
                        name = buf;
                }
                if (json_object_array_add(a, json_object_new_string(name)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int add_tcb(json_object *o, const char *key, uint64_t raw, SnpTcbLayout layout) {
        json_object *t = json_object_new_object();
        SnpTcb tcb;
        int k;

        k = json_add(o, key, t);
        if (k < 0)
                return k;
        snp_tcb_decode(raw, layout, &tcb);
        k = add_u64_hex(t, "raw", raw);
        if (k >= 0 && layout == SNP_TCB_LAYOUT_TURIN)
                k = json_add(t, "fmc", json_object_new_int(tcb.fmc));
        if (k >= 0)
                k = json_add(t, "bootloader", json_object_new_int(tcb.bootloader));
        if (k >= 0)
                k = json_add(t, "tee", json_object_new_int(tcb.tee));
        if (k >= 0)
                k = json_add(t, "snp", json_object_new_int(tcb.snp));
        if (k >= 0)
                k = json_add(t, "microcode", json_object_new_int(tcb.microcode));
        return k;
}

static int add_version(json_object *o, const char *key, unsigned major, unsigned minor, unsigned build) {
        char buf[32];

        (void) snprintf(buf, sizeof(buf), "%u.%u.%u", major, minor, build);
        return json_add(o, key, json_object_new_string(buf));
}

int snp_report_to_json(const SnpReport *r, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *pol, *signer;
        SnpTcbLayout l = r->tcb_layout;
        char abi[16];
        int k = 0;

        if (!o)
                return -ENOMEM;
#define TRY(expr)                  \
        do {                       \
                k = (expr);        \
                if (k < 0)         \
                        return k;  \
        } while (0)
        TRY(json_add(o, "version", json_object_new_int64(r->version)));
        TRY(json_add(o, "guest_svn", json_object_new_int64(r->guest_svn)));
        pol = json_object_new_object();
        TRY(json_add(o, "policy", pol));
        TRY(add_u64_hex(pol, "raw", r->policy));
        (void) snprintf(abi, sizeof(abi), "%u.%u", snp_policy_abi_major(r->policy), snp_policy_abi_minor(r->policy));
        TRY(json_add(pol, "abi", json_object_new_string(abi)));
        TRY(add_bits(pol, "flags", r->policy, policy_bit_names, ELEMENTSOF(policy_bit_names), 16));
        TRY(json_add_hex(o, "family_id", r->family_id, sizeof(r->family_id)));
        TRY(json_add_hex(o, "image_id", r->image_id, sizeof(r->image_id)));
        TRY(json_add(o, "vmpl", json_object_new_int64(r->vmpl)));
        TRY(json_add(o, "signature_algo", json_object_new_int64(r->signature_algo)));
        TRY(add_tcb(o, "current_tcb", r->current_tcb, l));
        pol = json_object_new_object();
        TRY(json_add(o, "platform_info", pol));
        TRY(add_u64_hex(pol, "raw", r->platform_info));
        TRY(add_bits(pol, "flags", r->platform_info, platform_bit_names, ELEMENTSOF(platform_bit_names), 0));
        signer = json_object_new_object();
        TRY(json_add(o, "signer_info", signer));
        TRY(json_add(signer, "raw", json_object_new_int64(r->signer_info)));
        TRY(json_add(signer, "author_key_en", json_object_new_boolean(r->signer_info & SNP_SIGNER_AUTHOR_KEY_EN)));
        TRY(json_add(signer, "mask_chip_key", json_object_new_boolean(r->signer_info & SNP_SIGNER_MASK_CHIP_KEY)));
        TRY(json_add(signer, "signing_key", json_object_new_string(snp_signing_key_to_string(snp_report_signing_key(r)))));
        TRY(json_add_hex(o, "report_data", r->report_data, sizeof(r->report_data)));
        TRY(json_add_hex(o, "measurement", r->measurement, sizeof(r->measurement)));
        TRY(json_add_hex(o, "host_data", r->host_data, sizeof(r->host_data)));
        TRY(json_add_hex(o, "id_key_digest", r->id_key_digest, sizeof(r->id_key_digest)));
        TRY(json_add_hex(o, "author_key_digest", r->author_key_digest, sizeof(r->author_key_digest)));
        TRY(json_add_hex(o, "report_id", r->report_id, sizeof(r->report_id)));
        TRY(json_add_hex(o, "report_id_ma", r->report_id_ma, sizeof(r->report_id_ma)));
        TRY(add_tcb(o, "reported_tcb", r->reported_tcb, l));
        if (r->version >= 3) {
                TRY(json_add(o, "cpuid_fam_id", json_object_new_int(r->cpuid_fam_id)));
                TRY(json_add(o, "cpuid_mod_id", json_object_new_int(r->cpuid_mod_id)));
                TRY(json_add(o, "cpuid_step", json_object_new_int(r->cpuid_step)));
        }
        TRY(json_add_hex(o, "chip_id", r->chip_id, sizeof(r->chip_id)));
        TRY(add_tcb(o, "committed_tcb", r->committed_tcb, l));
        TRY(add_version(o, "current_version", r->current_major, r->current_minor, r->current_build));
        TRY(add_version(o, "committed_version", r->committed_major, r->committed_minor, r->committed_build));
        TRY(add_tcb(o, "launch_tcb", r->launch_tcb, l));
        if (r->version >= 5) {
                TRY(add_u64_hex(o, "launch_mit_vector", r->launch_mit_vector));
                TRY(add_u64_hex(o, "current_mit_vector", r->current_mit_vector));
        }
        TRY(json_add_hex(o, "signature_r", r->signature_r, SIG_COMPONENT_USED));
        TRY(json_add_hex(o, "signature_s", r->signature_s, SIG_COMPONENT_USED));
        TRY(json_add(o, "product", json_object_new_string(snp_product_to_string(r->product))));
        TRY(json_add(o, "tcb_layout", json_object_new_string(snp_tcb_layout_to_string(l))));
        /* A v2 report does not say which layout it uses; say so rather than print a guess as fact. */
        TRY(json_add(o, "tcb_layout_known", json_object_new_boolean(r->tcb_layout_known)));
#undef TRY
        *ret = TAKE_PTR(o);
        return 0;
}

/* ---- files ---- */

int attest_read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return log_debug_errno(negative_errno(), "%s: cannot open: %m", path);
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return log_debug_errno(-EBADMSG, "%s: not a regular file", path);
        if ((uint64_t) st.st_size > max)
                return log_debug_errno(-EFBIG, "%s: larger than %zu bytes", path, max);
        /* The size check above is advisory: read_bounded() catches a file that grew since. */
        r = read_bounded(fd, max, ret, ret_size);
        if (r == -EFBIG)
                return log_debug_errno(r, "%s: larger than %zu bytes", path, max);
        if (r < 0)
                return log_debug_errno(r, "%s: read failed: %m", path);
        return 0;
}

/* ---- problems ---- */

void attest_problems_init(AttestProblems *p) {
        p->n = 0;
        p->truncated = false;
}

void attest_problem_add(AttestProblems *p, const char *check, const char *format, ...) {
        va_list ap;

        if (p->n >= ATTEST_PROBLEMS_MAX) {
                p->truncated = true;
                return;
        }
        (void) snprintf(p->item[p->n].check, sizeof(p->item[p->n].check), "%s", check);
        va_start(ap, format);
        (void) vsnprintf(p->item[p->n].reason, sizeof(p->item[p->n].reason), format, ap);
        va_end(ap);
        log_debug("attestation check %s failed: %s", p->item[p->n].check, p->item[p->n].reason);
        p->n++;
}

bool attest_problems_has(const AttestProblems *p, const char *check) {
        for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->item[i].check, check) == 0)
                        return true;
        return false;
}
