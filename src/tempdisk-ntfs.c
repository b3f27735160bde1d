/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One question to an NTFS volume, whose bytes the host controls: does its root directory hold
 * anything but the system files, DATALOSS_WARNING_README.txt and System Volume Information? This is
 * what tells Azure's fresh "Temporary Storage" volume from one a user put data on. We read the boot
 * sector, the $MFT record, the root directory's record and its in-use index blocks, every access
 * bounds-checked; anything unusual (attribute lists, compression, sparse or overlong run lists,
 * odd sizes) is refused rather than interpreted. Mounting it instead would hand the kernel's NTFS
 * driver a host-made file system. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "tempdisk.h"

#define FIXUP_STRIDE 512
#define RECORD_MIN 1024
#define RECORD_MAX 4096
#define INDEX_BLOCK_MIN 512
#define INDEX_BLOCK_MAX 65536
#define CLUSTER_MAX (2u * 1024 * 1024)
#define INDEX_BLOCKS_MAX 64
#define RUNS_MAX 64
#define ENTRIES_MAX 2048
#define FIRST_USER_RECORD 16 /* records 0-15 belong to NTFS itself */
#define ROOT_RECORD 5

#define AT_ATTRIBUTE_LIST 0x20u
#define AT_FILE_NAME 0x30u
#define AT_DATA 0x80u
#define AT_INDEX_ROOT 0x90u
#define AT_INDEX_ALLOCATION 0xa0u
#define AT_BITMAP 0xb0u
#define AT_END 0xffffffffu

#define ATTR_COMPRESSED 0x0001u
#define ATTR_ENCRYPTED 0x4000u
#define ATTR_SPARSE 0x8000u
#define FILE_ATTR_DIRECTORY 0x10000000u /* $FILE_NAME: has a $I30 index */
#define NS_DOS 2

typedef struct Run {
        uint64_t vcn, lcn, length; /* clusters */
} Run;

typedef struct RunList {
        Run run[RUNS_MAX];
        size_t n;
} RunList;

typedef struct Volume {
        TempdiskReadFn read;
        void *userdata;
        uint64_t size;
        uint32_t cluster_size, record_size;
        uint64_t clusters;
        RunList mft;
} Volume;

/* What the root directory's index entries say. */
typedef struct Listing {
        uint64_t named[ENTRIES_MAX];   /* records with a POSIX or Win32 name */
        uint64_t dos_only[ENTRIES_MAX]; /* records seen under a DOS 8.3 name */
        size_t n_named, n_dos, n_entries;
        char *why;
        size_t why_size;
} Listing;

static uint16_t le16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint64_t le64(const uint8_t *p) {
        return (uint64_t) le32(p) | (uint64_t) le32(p + 4) << 32;
}

static bool power_of_two(uint64_t v) {
        return v && !(v & (v - 1));
}

static int bad(Listing *l, const char *what) {
        return format_reason(l->why, l->why_size, -EBADMSG, "%s", what);
}

/* Multi-sector transfer protection: the last two bytes of every 512-byte stride hold the update
 * sequence number; the real bytes are in the update sequence array. A mismatch is a torn write. */
static int apply_fixups(uint8_t *buf, size_t size, const char *magic) {
        uint16_t usa_ofs = le16(buf + 4), usa_count = le16(buf + 6), usn;

        if (memcmp(buf, magic, 4) != 0)
                return -EBADMSG;
        if (usa_count != size / FIXUP_STRIDE + 1 || usa_ofs % 2 != 0 || usa_ofs < 8 ||
            (size_t) usa_ofs + 2u * usa_count > FIXUP_STRIDE - 2)
                return -EBADMSG;
        usn = le16(buf + usa_ofs);
        for (size_t i = 1; i < usa_count; i++) {
                uint8_t *end = buf + i * FIXUP_STRIDE - 2;

                if (le16(end) != usn)
                        return -EBADMSG;
                memcpy(end, buf + usa_ofs + 2 * i, 2);
        }
        return 0;
}

/* Mapping pairs: a header byte with the sizes of a length and a signed LCN delta, then the two. A
 * zero header ends the list. Sparse runs (no delta) are refused: the index and the MFT have none. */
static int decode_runs(const uint8_t *p, size_t len, uint64_t clusters, RunList *rl, uint64_t *ret_vcns) {
        uint64_t vcn = 0;
        int64_t lcn = 0;
        size_t i = 0;

        rl->n = 0;
        while (i < len && p[i] != 0) {
                unsigned lb = p[i] & 0xf, ob = p[i] >> 4;
                uint64_t length = 0;
                int64_t delta;

                i++;
                if (lb == 0 || lb > 8 || ob == 0 || ob > 8 || lb + ob > len - i)
                        return -EBADMSG;
                for (unsigned k = 0; k < lb; k++)
                        length |= (uint64_t) p[i + k] << (8 * k);
                /* Sign-extend the delta from its top byte. */
                delta = (int8_t) p[i + lb + ob - 1];
                for (unsigned k = ob - 1; k-- > 0;)
                        delta = (int64_t) ((uint64_t) delta << 8 | p[i + lb + k]);
                i += lb + ob;
                if (length == 0 || length > clusters || __builtin_add_overflow(lcn, delta, &lcn) || lcn < 0 ||
                    (uint64_t) lcn > clusters - length || rl->n >= RUNS_MAX)
                        return -EBADMSG;
                rl->run[rl->n++] = (Run){ .vcn = vcn, .lcn = (uint64_t) lcn, .length = length };
                vcn += length;
                if (vcn > clusters)
                        return -EBADMSG;
        }
        if (i >= len)
                return -EBADMSG; /* no terminator */
        *ret_vcns = vcn;
        return 0;
}

/* Reads size bytes at byte offset `pos` of a non-resident stream, across runs. */
static int read_stream(const Volume *v, const RunList *rl, uint64_t pos, uint8_t *buf, size_t size) {
        while (size > 0) {
                uint64_t vcn = pos / v->cluster_size, within = pos % v->cluster_size, chunk;
                const Run *r = NULL;
                int k;

                for (size_t i = 0; i < rl->n; i++)
                        if (vcn >= rl->run[i].vcn && vcn - rl->run[i].vcn < rl->run[i].length) {
                                r = &rl->run[i];
                                break;
                        }
                if (!r)
                        return -EBADMSG;
                chunk = (r->vcn + r->length - vcn) * v->cluster_size - within;
                if (chunk > size)
                        chunk = size;
                k = v->read(v->userdata, (r->lcn + (vcn - r->vcn)) * v->cluster_size + within, buf, (size_t) chunk);
                if (k < 0)
                        return k;
                buf += chunk;
                pos += chunk;
                size -= (size_t) chunk;
        }
        return 0;
}

typedef struct Attr {
        uint32_t type;
        const uint8_t *p; /* the attribute record */
        uint32_t len;
        bool resident;
        const uint8_t *value; /* resident value */
        uint32_t value_len;
} Attr;

static bool attr_named(const Attr *a, const char *ascii) {
        uint8_t name_len = a->p[9];
        uint16_t name_off = le16(a->p + 10);

        if (name_len != strlen(ascii))
                return false;
        for (size_t i = 0; i < name_len; i++)
                if (le16(a->p + name_off + 2 * i) != (uint8_t) ascii[i])
                        return false;
        return true;
}

/* The next attribute of a fixed-up MFT record at *pos, bounds-checked: 1, or 0 at the end marker. */
static int next_attr(const uint8_t *rec, size_t used, size_t *pos, Attr *a) {
        const uint8_t *p = rec + *pos;
        uint16_t name_off;
        uint8_t name_len;

        if (*pos + 8 > used)
                return -EBADMSG;
        a->type = le32(p);
        if (a->type == AT_END)
                return 0;
        a->len = le32(p + 4);
        if (a->len < 0x18 || a->len % 8 != 0 || a->len > used - *pos)
                return -EBADMSG;
        a->p = p;
        a->resident = p[8] == 0;
        name_len = p[9];
        name_off = le16(p + 10);
        if (name_len && (size_t) name_off + 2u * name_len > a->len)
                return -EBADMSG;
        if (le16(p + 12) & (ATTR_COMPRESSED | ATTR_ENCRYPTED | ATTR_SPARSE))
                return -EBADMSG;
        if (a->resident) {
                a->value_len = le32(p + 0x10);
                if ((size_t) le16(p + 0x14) + a->value_len > a->len)
                        return -EBADMSG;
                a->value = p + le16(p + 0x14);
        } else if (a->len < 0x40 || le64(p + 0x10) != 0 /* one extent: lowest VCN 0 */ ||
                   le16(p + 0x20) >= a->len || le16(p + 0x22) != 0 /* not compressed */)
                return -EBADMSG;
        *pos += a->len;
        return 1;
}

static int read_record(const Volume *v, uint64_t number, uint8_t *buf, size_t *ret_used, size_t *ret_first) {
        size_t used, first;
        int r;

        r = read_stream(v, &v->mft, number * v->record_size, buf, v->record_size);
        if (r < 0)
                return r;
        r = apply_fixups(buf, v->record_size, "FILE");
        if (r < 0)
                return r;
        used = le32(buf + 0x18);
        first = le16(buf + 0x14);
        if (!(le16(buf + 0x16) & 0x01) || used > v->record_size || first < 0x30 || first >= used || first % 8 != 0)
                return -EBADMSG;
        *ret_used = used;
        *ret_first = first;
        return 0;
}

static int parse_boot_sector(Volume *v) {
        uint8_t bs[512];
        uint32_t sector;
        uint8_t spc;
        int8_t per_record;
        uint64_t total;
        int r;

        if (v->size < sizeof(bs))
                return -EBADMSG;
        r = v->read(v->userdata, 0, bs, sizeof(bs));
        if (r < 0)
                return r;
        if (memcmp(bs + 3, "NTFS    ", 8) != 0 || bs[510] != 0x55 || bs[511] != 0xaa)
                return -EBADMSG;
        sector = le16(bs + 0x0b);
        spc = bs[0x0d];
        if (sector < 256 || sector > 4096 || !power_of_two(sector))
                return -EBADMSG;
        /* Up to 128 sectors per cluster directly; more as a negative power of two (2^(256 - spc)). */
        if (spc <= 0x80 && power_of_two(spc))
                v->cluster_size = sector * spc;
        else if (spc > 0x80 && 256 - spc <= 13)
                v->cluster_size = sector << (256 - spc);
        else
                return -EBADMSG;
        if (v->cluster_size > CLUSTER_MAX)
                return -EBADMSG;
        total = le64(bs + 0x28);
        if (total == 0 || total > v->size / sector)
                return -EBADMSG;
        v->clusters = total * sector / v->cluster_size;
        per_record = (int8_t) bs[0x40];
        if (per_record > 0 && (uint32_t) per_record <= RECORD_MAX / v->cluster_size)
                v->record_size = (uint32_t) per_record * v->cluster_size;
        else if (per_record <= -10 && per_record >= -12)
                v->record_size = 1u << -per_record;
        else
                return -EBADMSG;
        if (v->record_size < RECORD_MIN || v->record_size > RECORD_MAX || !power_of_two(v->record_size))
                return -EBADMSG;
        /* Until the $MFT's own run list is known, its first records are where the boot sector says. */
        if (le64(bs + 0x30) >= v->clusters ||
            v->clusters - le64(bs + 0x30) < (FIRST_USER_RECORD * (uint64_t) v->record_size + v->cluster_size - 1) / v->cluster_size)
                return -EBADMSG;
        v->mft = (RunList){ .n = 1 };
        v->mft.run[0] = (Run){ .vcn = 0, .lcn = le64(bs + 0x30),
                               .length = (FIRST_USER_RECORD * (uint64_t) v->record_size + v->cluster_size - 1) / v->cluster_size };
        return 0;
}

/* Record 0 is $MFT itself: its unnamed $DATA's run list places every other record. */
static int load_mft_runs(Volume *v, uint8_t *rec) {
        size_t used, pos;
        uint64_t vcns;
        Attr a;
        int r;

        r = read_record(v, 0, rec, &used, &pos);
        if (r < 0)
                return r;
        while ((r = next_attr(rec, used, &pos, &a)) > 0) {
                RunList rl;

                if (a.type == AT_ATTRIBUTE_LIST)
                        return -EBADMSG;
                if (a.type != AT_DATA || a.p[9] != 0)
                        continue;
                if (a.resident)
                        return -EBADMSG;
                r = decode_runs(a.p + le16(a.p + 0x20), a.len - le16(a.p + 0x20), v->clusters, &rl, &vcns);
                if (r < 0)
                        return r;
                if (vcns * v->cluster_size < FIRST_USER_RECORD * (uint64_t) v->record_size)
                        return -EBADMSG;
                v->mft = rl;
                return 0;
        }
        return -EBADMSG;
}

static bool name_is(const uint8_t *name, size_t len, const char *ascii) {
        if (len != strlen(ascii))
                return false;
        for (size_t i = 0; i < len; i++) {
                uint16_t c = le16(name + 2 * i);
                char a = ascii[i];

                if (c >= 'a' && c <= 'z')
                        c = (uint16_t) (c - 'a' + 'A');
                if (a >= 'a' && a <= 'z')
                        a = (char) (a - 'a' + 'A');
                if (c != (uint8_t) a)
                        return false;
        }
        return true;
}

static bool listed(const uint64_t *refs, size_t n, uint64_t ref) {
        for (size_t i = 0; i < n; i++)
                if (refs[i] == ref)
                        return true;
        return false;
}

/* One index entry's $FILE_NAME key: allowed or not. */
static int classify(Listing *l, uint64_t ref, const uint8_t *fn, size_t key_len) {
        uint8_t name_len = fn[0x40], ns = fn[0x41];
        const uint8_t *name = fn + 0x42;
        bool dir = le32(fn + 0x38) & FILE_ATTR_DIRECTORY;
        char shown[96];
        size_t k = 0;

        if (0x42u + 2u * name_len > key_len)
                return bad(l, "index entry name outside its key");
        if (++l->n_entries > ENTRIES_MAX)
                return bad(l, "too many index entries");
        if (ns == NS_DOS) {
                /* The 8.3 alias of a long name: allowed when the long name is. */
                if (!listed(l->dos_only, l->n_dos, ref))
                        l->dos_only[l->n_dos++] = ref;
                return 0;
        }
        if ((ref < FIRST_USER_RECORD && name_len > 0 && le16(name) == '$') ||
            (ref == ROOT_RECORD && name_is(name, name_len, ".")) ||
            (!dir && name_is(name, name_len, "DATALOSS_WARNING_README.txt")) ||
            (dir && name_is(name, name_len, "System Volume Information"))) {
                if (!listed(l->named, l->n_named, ref))
                        l->named[l->n_named++] = ref;
                return 0;
        }
        for (size_t i = 0; i < name_len && k + 5 < sizeof(shown); i++) {
                uint16_t c = le16(name + 2 * i);

                shown[k++] = c >= 0x20 && c < 0x7f ? (char) c : '?';
        }
        shown[k] = '\0';
        return format_reason(l->why, l->why_size, -EEXIST, "the root directory holds %s '%s'", dir ? "the directory" : "the file",
                             shown);
}

/* The entries of one index node: [start, end) of buf. */
static int walk_entries(Listing *l, const uint8_t *buf, size_t start, size_t end) {
        size_t off = start;

        for (;;) {
                uint16_t elen, klen, flags;
                int r;

                if (off + 16 > end)
                        return bad(l, "index entries run past their node");
                elen = le16(buf + off + 8);
                klen = le16(buf + off + 10);
                flags = le16(buf + off + 12);
                if (elen < 16 || elen % 8 != 0 || elen > end - off)
                        return bad(l, "malformed index entry");
                if (flags & 0x02) /* the last entry carries no key */
                        return 0;
                if (klen < 0x42 || 16u + klen > elen)
                        return bad(l, "malformed index entry key");
                r = classify(l, le64(buf + off) & UINT64_C(0xffffffffffff), buf + off + 16, klen);
                if (r < 0)
                        return r;
                off += elen;
        }
}

/* An index header (entries offset, bytes in use, bytes allocated) at hdr within a node of size n. */
static int walk_node(Listing *l, const uint8_t *buf, size_t hdr, size_t n) {
        uint32_t first, used;

        if (hdr + 16 > n)
                return bad(l, "index header outside its node");
        first = le32(buf + hdr);
        used = le32(buf + hdr + 4);
        if (first < 16 || first > used || used > n - hdr)
                return bad(l, "malformed index header");
        return walk_entries(l, buf, hdr + first, hdr + used);
}

typedef struct RootAttrs {
        Attr root, alloc, bitmap;
        bool has_root, has_alloc, has_bitmap;
} RootAttrs;

static int walk_index_blocks(const Volume *v, Listing *l, const RootAttrs *ra, uint32_t block_size) {
        _cleanup_free_ uint8_t *block = NULL;
        uint64_t vcns, data_size, n_blocks;
        RunList rl;
        int r;

        data_size = le64(ra->alloc.p + 0x30);
        r = decode_runs(ra->alloc.p + le16(ra->alloc.p + 0x20), ra->alloc.len - le16(ra->alloc.p + 0x20), v->clusters,
                        &rl, &vcns);
        if (r < 0)
                return bad(l, "malformed run list of the root index");
        if (data_size % block_size != 0 || data_size > vcns * v->cluster_size)
                return bad(l, "root index size does not fit its run list");
        n_blocks = data_size / block_size;
        if (n_blocks > INDEX_BLOCKS_MAX)
                return bad(l, "root index larger than a fresh volume's");
        if (!ra->has_bitmap || !ra->bitmap.resident || (uint64_t) ra->bitmap.value_len * 8 < n_blocks)
                return bad(l, "root index without a usable bitmap");
        block = malloc(block_size);
        if (!block)
                return format_reason(l->why, l->why_size, -ENOMEM, "out of memory");
        for (uint64_t b = 0; b < n_blocks; b++) {
                /* Blocks not in use may hold stale entries of deleted files: skip them. */
                if (!(ra->bitmap.value[b / 8] & (1u << (b % 8))))
                        continue;
                r = read_stream(v, &rl, b * block_size, block, block_size);
                if (r < 0)
                        return format_reason(l->why, l->why_size, r == -EBADMSG ? r : -EIO, "cannot read index block %llu",
                                             (unsigned long long) b);
                if (apply_fixups(block, block_size, "INDX") < 0)
                        return bad(l, "malformed index block");
                r = walk_node(l, block, 0x18, block_size);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int list_root(const Volume *v, Listing *l, uint8_t *rec) {
        RootAttrs ra = {};
        uint32_t block_size;
        size_t used, pos;
        int r;

        r = read_record(v, ROOT_RECORD, rec, &used, &pos);
        if (r < 0)
                return bad(l, "the root directory's MFT record is malformed");
        if (!(le16(rec + 0x16) & 0x02))
                return bad(l, "the root directory's MFT record is not a directory");
        for (Attr a; (r = next_attr(rec, used, &pos, &a)) > 0;) {
                if (a.type == AT_ATTRIBUTE_LIST)
                        return bad(l, "the root directory has an attribute list");
                if (!attr_named(&a, "$I30"))
                        continue;
                if (a.type == AT_INDEX_ROOT && a.resident && !ra.has_root)
                        ra.root = a, ra.has_root = true;
                else if (a.type == AT_INDEX_ALLOCATION && !a.resident && !ra.has_alloc)
                        ra.alloc = a, ra.has_alloc = true;
                else if (a.type == AT_BITMAP && !ra.has_bitmap)
                        ra.bitmap = a, ra.has_bitmap = true;
                else
                        return bad(l, "unexpected $I30 attribute in the root directory");
        }
        if (r < 0)
                return bad(l, "malformed attribute in the root directory's record");
        if (!ra.has_root || ra.root.value_len < 0x20)
                return bad(l, "the root directory has no index root");
        if (le32(ra.root.value) != AT_FILE_NAME)
                return bad(l, "the root index does not index file names");
        block_size = le32(ra.root.value + 8);
        if (block_size < INDEX_BLOCK_MIN || block_size > INDEX_BLOCK_MAX || !power_of_two(block_size))
                return bad(l, "odd index block size");
        r = walk_node(l, ra.root.value, 0x10, ra.root.value_len);
        if (r < 0)
                return r;
        /* Flag 0x01: the tree has nodes in index blocks. */
        if (!ra.has_alloc)
                return ra.root.value[0x10 + 12] & 0x01 ? bad(l, "large root index without index blocks") : 0;
        return walk_index_blocks(v, l, &ra, block_size);
}

int tempdisk_ntfs_check_root(TempdiskReadFn read_fn, void *userdata, uint64_t volume_size, char *why, size_t n) {
        _cleanup_free_ Listing *l = calloc(1, sizeof(Listing));
        _cleanup_free_ uint8_t *rec = malloc(RECORD_MAX);
        Volume v = { .read = read_fn, .userdata = userdata, .size = volume_size };
        int r;

        if (!l || !rec)
                return format_reason(why, n, -ENOMEM, "out of memory");
        l->why = why;
        l->why_size = n;
        r = parse_boot_sector(&v);
        if (r < 0)
                return format_reason(why, n, r == -EBADMSG ? r : -EIO, "malformed or unusual NTFS boot sector");
        r = load_mft_runs(&v, rec);
        if (r < 0)
                return format_reason(why, n, r == -EBADMSG ? r : -EIO, "malformed or unusual $MFT record");
        r = list_root(&v, l, rec);
        if (r < 0)
                return r;
        for (size_t i = 0; i < l->n_dos; i++)
                if (!listed(l->named, l->n_named, l->dos_only[i]))
                        return format_reason(why, n, -EEXIST, "the root directory holds an entry with only a DOS name");
        return 0;
}
