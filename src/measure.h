/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpm.h"

/* Measurements into the gate PCR and the event log they are recorded in.
 *
 * Every event is a string; each active bank is extended with the string's hash in that bank's
 * algorithm (the volume event: an HMAC keyed by the volume key instead), so `predict` reproduces
 * the PCR offline from the same strings:
 *   cvmcrypt:binary:sha256:HEX     SHA-256 of the running binary
 *   cvmcrypt:config:sha256:HEX     SHA-256 of the configuration file, or cvmcrypt:config:absent
 *   cvmcrypt:anchors:sha256:HEX    directory digest (measure_anchors_digest), or cvmcrypt:anchors:absent
 *   cvmcrypt:policy:sha256:HEX     attest_policy_digest() of the policy, or cvmcrypt:policy:none
 *   cvmcrypt:attested:sha256:HEX   the policy digest again, after attestation passed
 *   cvmcrypt:NAME:UUID             volume identity, measured as HMAC(volume key, this string)
 *   cvmcrypt:boot-done             the cap
 *   cvmcrypt:provisioned:UUID      this boot re-keyed and sealed volume UUID (first boot)
 *
 * The log is systemd's userspace TPM log (CEL-JSON records in RFC 7464 JSON-SEQ: RS, JSON, LF),
 * shared with systemd: writers hold flock(LOCK_EX) while they extend and append and set the
 * sticky bit until the record is written, readers hold LOCK_SH. Our records carry "recnum" (their
 * position in the file, from 0), "content_type": "cvmcrypt" and the event in "content".
 *
 * Functions return 0 or a negative errno and never log above debug level; on failure `why` (size
 * n) says what and where, for the caller to log once. */

#define MEASURE_LOG_DEFAULT "/run/log/systemd/tpm2-measure.log"
#define MEASURE_LOG_MAX (1024u * 1024u)    /* bytes in the whole log */
#define MEASURE_RECORD_MAX (16u * 1024u)   /* bytes in one record */
#define MEASURE_RECORDS_MAX 1024u
#define MEASURE_BANKS_MAX 5u               /* digests in one record: sha1, sha256, sha384, sha512, sm3_256 */
#define MEASURE_STRING_MAX 256u            /* an event string, NUL included */
#define MEASURE_PATH_MAX 256u              /* a path shown in a record (longer paths are left out) */
#define MEASURE_NAME_MAX 128u              /* volume name */
#define MEASURE_UUID_MAX 64u
#define MEASURE_BINARY_MAX (256u * 1024u * 1024u)
#define MEASURE_WHY_MAX 320u

typedef enum MeasureEvent {
        MEASURE_FOREIGN = -1, /* someone else's record (systemd's) */
        MEASURE_BINARY,
        MEASURE_CONFIG,
        MEASURE_ANCHORS,
        MEASURE_POLICY,
        MEASURE_ATTESTED,
        MEASURE_VOLUME,
        MEASURE_BOOT_DONE,
        MEASURE_PROVISIONED,
        _MEASURE_EVENT_MAX,
} MeasureEvent;

const char *measure_event_name(MeasureEvent e); /* "binary", ...; NULL for MEASURE_FOREIGN */

typedef struct MeasureDigest {
        uint16_t bank;
        uint8_t value[TPM_DIGEST_MAX];
} MeasureDigest;

typedef struct MeasureRecord {
        size_t index;       /* position in the log, from 0 */
        bool has_recnum;    /* systemd's records have none */
        bool nv;            /* an NvPCR record ("nv_index"): not a PCR, never replayed */
        unsigned pcr;
        MeasureDigest digests[MEASURE_BANKS_MAX];
        size_t n_digests;
        MeasureEvent event;
        /* ours only: */
        char string[MEASURE_STRING_MAX];  /* the measured string (volume: the HMAC message) */
        char path[MEASURE_PATH_MAX];      /* file events: what was measured; "" if not shown */
        char name[MEASURE_NAME_MAX];      /* volume */
        char uuid[MEASURE_UUID_MAX];      /* volume */
        char boot_id[33];                 /* 32 hex digits, "" if unknown */
        bool has_timestamp;
        uint64_t timestamp;               /* CLOCK_BOOTTIME, microseconds */
} MeasureRecord;

typedef struct MeasureLog {
        MeasureRecord *records;
        size_t n;
        bool incomplete; /* sticky bit: a writer extended a PCR and died before its record was written */
} MeasureLog;

void measure_log_done(MeasureLog *log);

/* Parses a whole log (size bytes, at most MEASURE_LOG_MAX). Strict: RS before and LF after every
 * record, each record at most MEASURE_RECORD_MAX bytes of strict JSON with only the CEL-JSON
 * fields (recnum, pcr or nv_index, digests, content_type, content), recnum (if present) equal to
 * the record's position, known hash algorithms with digests of their size, each at most once;
 * records with content_type "cvmcrypt" must hold a well-formed event. why names the record
 * ("record 3: ..."). */
int measure_log_parse(const char *text, size_t size, MeasureLog *ret, char *why, size_t n);
/* One record as written: RS, JSON, LF (recnum = r->index). Only our records (event >= 0). */
int measure_record_format(const MeasureRecord *r, char **ret);

/* Volume names: printable ASCII without ':', shorter than MEASURE_NAME_MAX; UUIDs: hex digits and
 * dashes, shorter than MEASURE_UUID_MAX. */
bool measure_volume_name_valid(const char *name);
bool measure_volume_uuid_valid(const char *uuid);

/* ---- events ---- */

typedef struct MeasureInputs {
        const char *binary;  /* normally /proc/self/exe */
        const char *config;  /* configuration file; missing: the "absent" event */
        const char *anchors; /* trust-anchor directory; missing: the "absent" event */
        const char *policy;  /* attestation policy; NULL: the "none" event */
} MeasureInputs;

typedef struct MeasureItem {
        MeasureEvent event;
        char string[MEASURE_STRING_MAX];
        const char *path; /* points into MeasureInputs; NULL for none */
} MeasureItem;

/* The start events in order (binary, config, anchors, policy), then attested when added. */
typedef struct MeasurePlan {
        MeasureItem items[5];
        size_t n;
        bool has_policy;
        uint8_t policy_digest[32];
} MeasurePlan;

/* Reads and digests the inputs; nothing is extended. */
int measure_plan(const MeasureInputs *in, MeasurePlan *ret, char *why, size_t n);
/* Appends the attested event of the plan's policy; -ENOENT when the plan has no policy. */
int measure_plan_add_attested(MeasurePlan *p);

/* SHA-256 over the directory's entries sorted by name (bytewise): for each, the name, a NUL byte
 * and the SHA-256 of its content. Every entry but . and .. counts, dot files too; each must be a
 * regular file (a symlink is refused, not followed) of at most ATTEST_CERT_FILE_MAX bytes, at most
 * ATTEST_ANCHOR_FILES_MAX of them. -ENOENT if the directory does not exist. */
int measure_anchors_digest(const char *dir, uint8_t ret[32], char *why, size_t n);

/* The value of a PCR that starts at zero after the plan's events, in bank. */
int measure_predict(const MeasurePlan *p, uint16_t bank, uint8_t ret[TPM_DIGEST_MAX]);

/* ---- extending (TPM + log) ---- */

/* The start events. Refuses (-EALREADY) unless the PCR is at its expected start: equal, in every
 * active bank, to the replay of the other writers' records the log holds for it (zero if none),
 * and the log holds no cvmcrypt binary event. Opens and locks the log before it reads the PCR, and
 * extends nothing unless all of that holds. */
int measure_start(TpmContext *t, const char *log, unsigned pcr, const MeasurePlan *p, char *why, size_t n);

/* Attestation passed against the policy with this digest (attest_policy_digest()). Refuses unless
 * the log holds the start events for pcr (-ENOMSG) and neither an attested event nor the cap
 * (-EALREADY). */
int measure_attested(TpmContext *t, const char *log, unsigned pcr, const uint8_t policy_digest[32], char *why,
                     size_t n);
/* The same checks on the log alone, before the work of attesting: 0, -ENOMSG or -EALREADY. */
int measure_attest_ready(const char *log, unsigned pcr, char *why, size_t n);

/* The cap events. They extend the PCR even when the log cannot be written: they return -errno
 * only when the PCR was not extended, and 1 (why set) when it was but its record could not be
 * logged. measure_volume extends HMAC(vk, "cvmcrypt:NAME:UUID") in each bank's hash; the record
 * shows the name and UUID, never the key. */
int measure_volume(TpmContext *t, const char *log, unsigned pcr, const char *name, const char *uuid, const void *vk,
                   size_t vk_size, char *why, size_t n);
int measure_boot_done(TpmContext *t, const char *log, unsigned pcr, char *why, size_t n);
/* After a first boot's provisioning, once the volume is open (the new slot is sealed to the PCR's
 * value before it); same return values as the cap events. */
int measure_provisioned(TpmContext *t, const char *log, unsigned pcr, const char *uuid, char *why, size_t n);

/* ---- replay ---- */

typedef struct MeasureBankResult {
        uint16_t bank;
        bool ok;
        uint8_t replayed[TPM_DIGEST_MAX];
        uint8_t actual[TPM_DIGEST_MAX];
} MeasureBankResult;

typedef struct MeasurePcrResult {
        unsigned pcr;
        size_t n_records;
        bool ok;
        MeasureBankResult banks[MEASURE_BANKS_MAX];
        size_t n_banks;
        long bad_record; /* the first record that breaks it, or -1 */
        char reason[160];
} MeasurePcrResult;

typedef struct MeasureVerdict {
        size_t n_records;
        bool incomplete;
        bool ok;
        MeasurePcrResult pcrs[TPM_PCR_MAX];
        size_t n_pcrs;
} MeasureVerdict;

/* Replays every PCR the log holds records for, and pcr (zero without records), in the banks of
 * actual (one TpmPcrValues per bank, n_actual of them, each with the PCRs in its mask), and checks
 * each of our unkeyed records' digests against its string. */
void measure_compare(const MeasureLog *log, unsigned pcr, const TpmPcrValues *actual, size_t n_actual,
                     MeasureVerdict *ret);
/* Reads the log and the TPM's active banks and compares. 0 when a verdict was reached (ok or not). */
int measure_verify(TpmContext *t, const char *log, unsigned pcr, MeasureVerdict *ret, char *why, size_t n);
