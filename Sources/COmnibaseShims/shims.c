#define _GNU_SOURCE
#include "omnibase_shims.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int omni_wifexited(int status) { return WIFEXITED(status); }
int omni_wexitstatus(int status) { return WEXITSTATUS(status); }
int omni_wifsignaled(int status) { return WIFSIGNALED(status); }
int omni_wtermsig(int status) { return WTERMSIG(status); }

/* Moves an output fd that sits on 0, 1 or 2 (possible only if the engine closed its own stdio) above
 * 2, so that the file actions below cannot overwrite it before it is duplicated. */
static int omni_lift_above_stdio(int fd, int *owned) {
    *owned = -1;
    if (fd > 2) return fd;
    int lifted = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (lifted < 0) return -1;
    *owned = lifted;
    return lifted;
}

int omni_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
               int stdout_fd, int stderr_fd, pid_t *pid_out) {
    int owned_out = -1, owned_err = -1;
    int out = omni_lift_above_stdio(stdout_fd, &owned_out);
    if (out < 0) return errno;
    int err = omni_lift_above_stdio(stderr_fd, &owned_err);
    if (err < 0) {
        int saved = errno;
        if (owned_out >= 0) close(owned_out);
        return saved;
    }

    posix_spawnattr_t attr;
    posix_spawn_file_actions_t actions;
    int rc = posix_spawnattr_init(&attr);
    if (rc != 0) goto close_lifted;
    rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) goto destroy_attr;

    sigset_t empty, all;
    sigemptyset(&empty);
    /* Every signal, glibc's two internal ones (32, 33) included: sigfillset leaves those out, and
     * posix_spawn then sets them to SIG_IGN in the child, which survives exec (SigIgn 180000000).
     * Nothing signals the child by those numbers before its exec, so the default is safe. */
    memset(&all, 0xff, sizeof all);
    /* New group led by the child; empty mask (pool threads block signals, and a spawned child
     * inherits the spawning thread's mask); every disposition back to default (SIG_IGN survives
     * exec, so the engine's ignored SIGPIPE would otherwise leak into steps). */
    if ((rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                  POSIX_SPAWN_SETSIGDEF)) != 0 ||
        (rc = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
        (rc = posix_spawnattr_setsigmask(&attr, &empty)) != 0 ||
        (rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0)
        goto destroy_actions;

    /* File actions run in order, in the child: stdin, stdout, stderr, then the directory. The
     * chdir happens before the exec, so a relative `path` is resolved from `cwd`: the caller
     * passes an absolute one. */
    if ((rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&actions, out, 1)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&actions, err, 2)) != 0)
        goto destroy_actions;
    if (cwd != NULL && (rc = posix_spawn_file_actions_addchdir_np(&actions, cwd)) != 0)
        goto destroy_actions;

    rc = posix_spawn(pid_out, path, &actions, &attr, argv, envp);

destroy_actions:
    posix_spawn_file_actions_destroy(&actions);
destroy_attr:
    posix_spawnattr_destroy(&attr);
close_lifted:
    if (owned_out >= 0) close(owned_out);
    if (owned_err >= 0) close(owned_err);
    return rc;
}

int omni_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int omni_output_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) != 0) return -1;
    /* O_NONBLOCK lives on the open file description, and each end has its own: setting it on the
     * read end leaves the child's write end blocking. */
    int flags = fcntl(fds[0], F_GETFL);
    if (flags < 0 || fcntl(fds[0], F_SETFL, flags | O_NONBLOCK) < 0) {
        int saved = errno;
        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return -1;
    }
    return 0;
}

int omni_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int omni_epoll_add(int epfd, int fd, uint64_t token) {
    struct epoll_event event = {0};
    event.events = EPOLLIN;
    event.data.u64 = token;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int omni_epoll_delete(int epfd, int fd) {
    struct epoll_event unused = {0}; /* kernels before 2.6.9 required a non-NULL event */
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &unused);
}

int omni_epoll_add_oneshot(int epfd, int fd, uint64_t token) {
    struct epoll_event event = {0};
    event.events = EPOLLIN | EPOLLONESHOT;
    event.data.u64 = token;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int omni_epoll_wait(int epfd, uint64_t *tokens, int max_tokens, int timeout_ms) {
    struct epoll_event events[64];
    if (max_tokens > 64) max_tokens = 64;
    int n = epoll_wait(epfd, events, max_tokens, timeout_ms);
    for (int i = 0; i < n; i++) tokens[i] = events[i].data.u64;
    return n;
}

int omni_waitid_exited_nowait(pid_t pid) {
    siginfo_t info;
    return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT);
}

int omni_wake_fd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

void omni_wake(int fd) {
    uint64_t one = 1;
    /* EAGAIN means the counter is full: a wake-up is pending anyway. */
    while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {}
}

void omni_wake_consume(int fd) {
    uint64_t count;
    while (read(fd, &count, sizeof count) < 0 && errno == EINTR) {}
}
