#define _GNU_SOURCE
#include "omnibase_shims.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

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

/* What the child needs, on the parent's stack; `error` is written by the child (the memory is
 * shared until it executes) and read by the parent after clone returns. */
struct omni_child {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int stdin_fd, stdout_fd, stderr_fd;
    volatile int error;
};

/* The kernel's struct sigaction for rt_sigaction(2): handler, flags, restorer, mask. */
struct omni_kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

/* A /dev/null opened once (close-on-exec) for every child's stdin; -1 if it could not be opened. */
static int omni_null_fd = -1;
static pthread_once_t omni_null_once = PTHREAD_ONCE_INIT;
static void omni_open_null(void) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && fd <= 2) {
        /* Above stdio, so that the child's dup2 onto 0 always makes a copy without close-on-exec. */
        int lifted = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        fd = lifted;
    }
    omni_null_fd = fd;
}

/* Runs in the child, on the parent's memory, while the parent thread is suspended (CLONE_VFORK):
 * only raw system calls, nothing that allocates, locks or touches the parent's state except
 * `error`. Every signal is blocked on entry (inherited from the parent's mask around clone), so no
 * handler of the engine can run here. */
static int omni_child_main(void *arg) {
    struct omni_child *child = arg;
    /* A new group led by the child, first: from here on, signals sent to the engine's group (a
     * terminal's ^C) no longer reach it. */
    if (setpgid(0, 0) != 0) goto fail;
    /* Every disposition back to default, glibc's internal signals (32, 33) included: SIG_IGN
     * survives exec (the engine ignores SIGPIPE), and a handler must not run in this child. */
    struct omni_kernel_sigaction dfl = {0};
    for (int sig = 1; sig <= 64; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask);
    }
    int in = child->stdin_fd;
    if (in < 0 && (in = open("/dev/null", O_RDONLY)) < 0) goto fail;
    if (dup2(in, 0) < 0 || dup2(child->stdout_fd, 1) < 0 || dup2(child->stderr_fd, 2) < 0) goto fail;
    /* The directory is entered before the exec, so a relative `path` would resolve from it: the
     * caller passes an absolute one. */
    if (child->cwd != NULL && chdir(child->cwd) != 0) goto fail;
    /* Every descriptor above stdio closes at the exec, whoever opened it: the engine's own are
     * close-on-exec already, but a host application's or Foundation's may not be (a script being
     * written by another thread would stay open for writing in a long-lived step, and exec'ing
     * it would fail with ETXTBSY for that step's whole life). This child has its own descriptor
     * table (no CLONE_FILES), so the parent's flags are untouched. Before Linux 5.11 the call
     * fails with EINVAL or ENOSYS, and the old behaviour stays. */
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    uint64_t none = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
    execve(child->path, child->argv, child->envp);
fail:
    child->error = errno;
    _exit(127);
}

int omni_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
               int stdout_fd, int stderr_fd, pid_t *pid_out, int *pidfd_out) {
    *pidfd_out = -1;
    pthread_once(&omni_null_once, omni_open_null);
    int owned_out = -1, owned_err = -1;
    int out = omni_lift_above_stdio(stdout_fd, &owned_out);
    if (out < 0) return errno;
    int err = omni_lift_above_stdio(stderr_fd, &owned_err);
    if (err < 0) {
        int saved = errno;
        if (owned_out >= 0) close(owned_out);
        return saved;
    }
    struct omni_child child = {path, argv, envp, cwd, omni_null_fd, out, err, 0};

    /* The child's stack lives in this frame (the technique of musl's posix_spawn): the parent is
     * suspended until the child executes or exits, so the frame outlives every use of it, and no
     * stack is mapped and unmapped per spawn. The child only makes system calls; 32 KiB leaves
     * room for the dynamic linker resolving a first call. */
    _Alignas(16) char stack[32 * 1024];

    /* Every signal blocked around clone (the raw call blocks glibc's internal ones too): the
     * child inherits the mask, so nothing interrupts it before it has reset its dispositions.
     * Except SIGCHLD (see below): only a process's own children send it, and the new child has
     * none; the parent is suspended in a killable-only wait until the child executes. */
    uint64_t all = ~(uint64_t)0 & ~((uint64_t)1 << (SIGCHLD - 1)), saved_mask;
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, &saved_mask, sizeof all);

    int pidfd = -1;
    int flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD;
    pid_t pid = clone(omni_child_main, stack + sizeof stack, flags, &child, &pidfd);
    if (pid < 0 && errno == EINVAL) {
        /* A kernel before 5.2 has no CLONE_PIDFD; the monitor opens one or falls back. */
        pidfd = -1;
        pid = clone(omni_child_main, stack + sizeof stack, flags & ~CLONE_PIDFD, &child, NULL);
    }
    int rc = pid < 0 ? errno : 0;
    /* The caller's mask comes back without SIGCHLD, which stays unblocked in this thread for good.
     * A child's SIGCHLD (exec resets its exit signal to SIGCHLD whatever clone was told) is
     * addressed to the thread that spawned it: while that thread blocks it, the kernel queues it
     * for the process and wakes another thread to discard it (the main thread, which
     * dispatch_main parks in sigsuspend with nothing blocked): one context switch per step, for
     * nothing. Unblocked in the parent thread and at its default disposition, it is discarded
     * where it is generated. The engine observes exits through pidfds and never handles SIGCHLD;
     * if a host application installs a handler, it may now also run on this thread, as on any
     * thread that does not block the signal. Nor is it blocked around the clone above: a child
     * of this thread exiting during another spawn would be woken the main thread again. */
    saved_mask &= ~((uint64_t)1 << (SIGCHLD - 1));
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &saved_mask, NULL, sizeof saved_mask);

    if (rc == 0 && child.error != 0) {
        /* The child reported why it could not execute, and has exited: reap it. */
        rc = child.error;
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        if (pidfd >= 0) close(pidfd);
    } else if (rc == 0) {
        *pid_out = pid;
        *pidfd_out = pidfd;
    }
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
     * read end leaves the child's write end blocking. A new read end has no other status flag to
     * keep (O_CLOEXEC is a descriptor flag), so no F_GETFL first. */
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
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

void omni_name_thread(const char *name) { pthread_setname_np(pthread_self(), name); }

int omni_open_directory(const char *path) { return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC); }
