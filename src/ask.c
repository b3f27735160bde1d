/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "ask.h"
#include "macro.h"
#include "secmem.h"

#define ASK_PASSWORD_BINARY "/bin/systemd-ask-password"

/* Reads until EOF or max + 1 bytes into a secmem buffer. */
static int read_secret_fd(int fd, char **ret, size_t *ret_size) {
        char *buf = secmem_alloc(ASK_SECRET_MAX + 2);
        size_t n = 0;

        if (!buf)
                return negative_errno();
        for (;;) {
                ssize_t k = read(fd, buf + n, ASK_SECRET_MAX + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int r = negative_errno();
                        secmem_free(buf);
                        return r;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > ASK_SECRET_MAX) {
                        secmem_free(buf);
                        return -E2BIG;
                }
        }
        buf[n] = '\0';
        *ret = buf;
        *ret_size = n;
        return 0;
}

int ask_read_key_file(const char *path, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -1;
        int r;

        if (strcmp(path, "-") == 0)
                return read_secret_fd(STDIN_FILENO, ret, ret_size);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        r = read_secret_fd(fd, ret, ret_size);
        if (r >= 0 && *ret_size == 0) {
                *ret = secmem_free(*ret);
                return -ENODATA;
        }
        return r;
}

static void strip_newline(char *s, size_t *size) {
        if (*size > 0 && s[*size - 1] == '\n')
                s[--*size] = '\0';
}

static int ask_via_agent(const char *prompt, char **ret, size_t *ret_size) {
        int pipefd[2], status, r;
        pid_t pid;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                (void) close(pipefd[0]);
                (void) close(pipefd[1]);
                return r;
        }
        if (pid == 0) {
                (void) dup2(pipefd[1], STDOUT_FILENO);
                execl(ASK_PASSWORD_BINARY, ASK_PASSWORD_BINARY, "--timeout=0", prompt, (char *) NULL);
                _exit(127);
        }
        (void) close(pipefd[1]);
        r = read_secret_fd(pipefd[0], ret, ret_size);
        (void) close(pipefd[0]);
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                if (r >= 0)
                        *ret = secmem_free(*ret);
                return -ECANCELED;
        }
        if (r >= 0)
                strip_newline(*ret, ret_size);
        return r;
}

static int ask_via_tty(const char *prompt, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        struct termios old, quiet;
        char *buf;
        size_t n = 0;
        int r = 0;

        if (fd < 0)
                return -ENOTTY;
        if (tcgetattr(fd, &old) < 0)
                return negative_errno();
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t) (ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        (void) !write(fd, prompt, strlen(prompt));
        (void) !write(fd, " ", 1);
        if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0)
                return negative_errno();
        buf = secmem_alloc(ASK_SECRET_MAX + 2);
        if (!buf)
                r = negative_errno();
        while (r == 0) {
                char c;
                ssize_t k = read(fd, &c, 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        r = negative_errno();
                else if (k == 0 || c == '\n')
                        break;
                else if (n >= ASK_SECRET_MAX)
                        r = -E2BIG;
                else
                        buf[n++] = c;
        }
        (void) tcsetattr(fd, TCSAFLUSH, &old);
        (void) !write(fd, "\n", 1);
        if (r < 0) {
                secmem_free(buf);
                return r;
        }
        buf[n] = '\0';
        *ret = buf;
        *ret_size = n;
        return 0;
}

int ask_secret(const char *prompt, char **ret, size_t *ret_size) {
        if (!isatty(STDIN_FILENO) && access(ASK_PASSWORD_BINARY, X_OK) == 0)
                return ask_via_agent(prompt, ret, ret_size);
        return ask_via_tty(prompt, ret, ret_size);
}
