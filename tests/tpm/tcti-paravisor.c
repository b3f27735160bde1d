/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test-only TCTI that plays Azure's paravisor in front of a child TCTI (swtpm):
 *   refresh=PROG      after a successful TPM2_NV_Write to NV 0x01400002, runs PROG with the
 *                     written bytes as hex and writes what it prints (a new HCL report) into NV
 *                     0x01400001 with owner authorization, in chunks, before the caller sees the
 *                     NV_Write response: the report refresh the real paravisor does;
 *   quote-handle=H    sends every TPM2_Quote to the key at handle H instead (a TPM or bus that lies
 *                     about which key signed).
 * Config: "OPTION[,OPTION]:CHILD-TCTI" ("-" for no option), e.g.
 * "refresh=/t/refresh:swtpm:path=/t/S". Load it by path like tcti-pcr-bump.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tss2/tss2_tcti.h>
#include <tss2/tss2_tctildr.h>
#include <tss2/tss2_tpm2_types.h>

#define SHIM_MAGIC 0x6376756d70617201ULL
#define HCL_INDEX 0x01400001u
#define REQUEST_INDEX 0x01400002u
#define BLOB_MAX 8192
#define CHUNK 1024

typedef struct Shim {
        TSS2_TCTI_CONTEXT_COMMON_V1 common; /* first: the TSS reads it through the context pointer */
        TSS2_TCTI_CONTEXT *child;
        char refresh[256];
        uint32_t quote_handle;
        char pending[2 * 64 + 1]; /* hex of the request just written, until its response */
} Shim;

const TSS2_TCTI_INFO *Tss2_Tcti_Info(void);

static uint32_t get_be(const uint8_t *p, unsigned n) {
        uint32_t v = 0;

        for (unsigned i = 0; i < n; i++)
                v = v << 8 | p[i];
        return v;
}

static void put_be(uint8_t *p, uint32_t v, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                p[i] = (uint8_t) (v >> (8 * (n - 1 - i)));
}

/* One command on the child; success only if the TPM answered TPM_RC_SUCCESS. */
static TSS2_RC child_command(TSS2_TCTI_CONTEXT *child, const uint8_t *cmd, size_t size) {
        uint8_t rsp[4096];
        size_t rsp_size = sizeof(rsp);
        TSS2_RC rc;

        rc = Tss2_Tcti_Transmit(child, size, cmd);
        if (rc == TSS2_RC_SUCCESS)
                rc = Tss2_Tcti_Receive(child, &rsp_size, rsp, TSS2_TCTI_TIMEOUT_BLOCK);
        if (rc == TSS2_RC_SUCCESS && (rsp_size < 10 || get_be(rsp + 6, 4) != 0))
                rc = TSS2_TCTI_RC_GENERAL_FAILURE;
        return rc;
}

/* TPM2_NV_Write(owner, HCL_INDEX, data, offset) with an empty password session. */
static TSS2_RC nv_write(TSS2_TCTI_CONTEXT *child, const uint8_t *data, size_t n, size_t offset) {
        uint8_t cmd[35 + CHUNK];
        size_t size = 33 + n + 2;

        put_be(cmd, TPM2_ST_SESSIONS, 2);
        put_be(cmd + 2, (uint32_t) size, 4);
        put_be(cmd + 6, TPM2_CC_NV_Write, 4);
        put_be(cmd + 10, TPM2_RH_OWNER, 4);
        put_be(cmd + 14, HCL_INDEX, 4);
        put_be(cmd + 18, 9, 4);         /* authorization area size */
        put_be(cmd + 22, TPM2_RS_PW, 4); /* empty nonce, attributes and password: */
        memset(cmd + 26, 0, 5);
        put_be(cmd + 31, (uint32_t) n, 2);
        memcpy(cmd + 33, data, n);
        put_be(cmd + 33 + n, (uint32_t) offset, 2);
        return child_command(child, cmd, size);
}

/* Runs the refresh program and writes its output into HCL_INDEX. */
static TSS2_RC refresh(Shim *s) {
        static uint8_t blob[BLOB_MAX];
        size_t n = 0;
        int fds[2], status;
        pid_t pid;

        if (pipe(fds) < 0)
                return TSS2_TCTI_RC_IO_ERROR;
        pid = fork();
        if (pid < 0)
                return TSS2_TCTI_RC_IO_ERROR;
        if (pid == 0) {
                (void) dup2(fds[1], STDOUT_FILENO);
                (void) close(fds[0]);
                (void) close(fds[1]);
                execl(s->refresh, s->refresh, s->pending, (char *) NULL);
                _exit(127);
        }
        (void) close(fds[1]);
        for (;;) {
                ssize_t k = read(fds[0], blob + n, sizeof(blob) - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                n += (size_t) k;
        }
        (void) close(fds[0]);
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || n == 0 || n == sizeof(blob))
                return TSS2_TCTI_RC_GENERAL_FAILURE;
        for (size_t off = 0; off < n; off += CHUNK) {
                TSS2_RC rc = nv_write(s->child, blob + off, n - off < CHUNK ? n - off : CHUNK, off);
                if (rc != TSS2_RC_SUCCESS)
                        return rc;
        }
        return TSS2_RC_SUCCESS;
}

static TSS2_RC shim_transmit(TSS2_TCTI_CONTEXT *ctx, size_t size, const uint8_t *cmd) {
        Shim *s = (Shim *) ctx;
        uint8_t patched[4096];
        uint32_t cc;

        if (size < 14 || size > sizeof(patched))
                return Tss2_Tcti_Transmit(s->child, size, cmd);
        cc = get_be(cmd + 6, 4);
        /* NV_Write: handles at 10 (auth) and 14 (index), authorization area size at 18, then the
         * area, then TPM2B data. */
        if (cc == TPM2_CC_NV_Write && s->refresh[0] && size >= 22 && get_be(cmd + 14, 4) == REQUEST_INDEX) {
                size_t at = 22 + get_be(cmd + 18, 4), n = at + 2 <= size ? get_be(cmd + at, 2) : 0;

                s->pending[0] = 0;
                for (size_t i = 0; i < n && i < 64 && at + 2 + i < size; i++)
                        (void) snprintf(s->pending + 2 * i, 3, "%02x", cmd[at + 2 + i]);
        }
        if (cc == TPM2_CC_Quote && s->quote_handle) {
                memcpy(patched, cmd, size);
                put_be(patched + 10, s->quote_handle, 4);
                return Tss2_Tcti_Transmit(s->child, size, patched);
        }
        return Tss2_Tcti_Transmit(s->child, size, cmd);
}

static TSS2_RC shim_receive(TSS2_TCTI_CONTEXT *ctx, size_t *size, uint8_t *rsp, int32_t timeout) {
        Shim *s = (Shim *) ctx;
        TSS2_RC rc;

        rc = Tss2_Tcti_Receive(s->child, size, rsp, timeout);
        /* ESYS asks for the size first (rsp NULL): refresh once the whole response is here. */
        if (rc != TSS2_RC_SUCCESS || !rsp || !s->pending[0])
                return rc;
        if (*size >= 10 && get_be(rsp + 6, 4) == 0) {
                rc = refresh(s);
                if (rc != TSS2_RC_SUCCESS)
                        fprintf(stderr, "tcti-paravisor: refresh of NV 0x%08x failed\n", HCL_INDEX);
        }
        s->pending[0] = 0;
        return rc;
}

static void shim_finalize(TSS2_TCTI_CONTEXT *ctx) {
        Tss2_TctiLdr_Finalize(&((Shim *) ctx)->child);
}

static TSS2_RC shim_cancel(TSS2_TCTI_CONTEXT *ctx) {
        return Tss2_Tcti_Cancel(((Shim *) ctx)->child);
}

static TSS2_RC shim_poll(TSS2_TCTI_CONTEXT *ctx, TSS2_TCTI_POLL_HANDLE *h, size_t *n) {
        return Tss2_Tcti_GetPollHandles(((Shim *) ctx)->child, h, n);
}

static TSS2_RC shim_locality(TSS2_TCTI_CONTEXT *ctx, uint8_t locality) {
        return Tss2_Tcti_SetLocality(((Shim *) ctx)->child, locality);
}

static int parse_options(Shim *s, const char *conf, const char *end) {
        char opts[512], *save = NULL;

        if ((size_t) (end - conf) >= sizeof(opts))
                return -1;
        memcpy(opts, conf, (size_t) (end - conf));
        opts[end - conf] = 0;
        if (strcmp(opts, "-") == 0)
                return 0;
        for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
                if (strncmp(o, "refresh=", 8) == 0 && strlen(o + 8) < sizeof(s->refresh))
                        strcpy(s->refresh, o + 8);
                else if (strncmp(o, "quote-handle=", 13) == 0)
                        s->quote_handle = (uint32_t) strtoul(o + 13, NULL, 0);
                else
                        return -1;
        }
        return 0;
}

static TSS2_RC shim_init(TSS2_TCTI_CONTEXT *ctx, size_t *size, const char *conf) {
        Shim *s = (Shim *) ctx;
        const char *colon;

        if (!ctx) {
                *size = sizeof(Shim);
                return TSS2_RC_SUCCESS;
        }
        if (!conf || *size < sizeof(Shim) || !(colon = strchr(conf, ':')))
                return TSS2_TCTI_RC_BAD_VALUE;
        *s = (Shim){
                .common = {
                        .magic = SHIM_MAGIC,
                        .version = 1,
                        .transmit = shim_transmit,
                        .receive = shim_receive,
                        .finalize = shim_finalize,
                        .cancel = shim_cancel,
                        .getPollHandles = shim_poll,
                        .setLocality = shim_locality,
                },
        };
        if (parse_options(s, conf, colon) < 0)
                return TSS2_TCTI_RC_BAD_VALUE;
        return Tss2_TctiLdr_Initialize(colon + 1, &s->child);
}

const TSS2_TCTI_INFO *Tss2_Tcti_Info(void) {
        static const TSS2_TCTI_INFO info = {
                .version = 1,
                .name = "cvmparavisor",
                .description = "cvmcrypt test shim: refreshes the HCL report like Azure's paravisor",
                .config_help = "refresh=PROG,quote-handle=H:CHILD-TCTI",
                .init = shim_init,
        };
        return &info;
}
