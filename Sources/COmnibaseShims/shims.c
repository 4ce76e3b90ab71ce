#define _GNU_SOURCE
#include "omnibase_shims.h"
#include <errno.h>
#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
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

/* One spawn's memory, mapped once and reused: a guard page, the child's stack (growing down towards
 * the guard), then this header and copies of everything the child reads (path, argv, envp, cwd).
 * The child shares the engine's memory until it executes (CLONE_VM) but the spawning thread does
 * not wait for that: the block belongs to the child until the kernel clears `tid`
 * (CLONE_CHILD_CLEARTID: at the exec, or at the child's exit if it never gets there), and only
 * then goes back to the pool, in omni_spawn_finish. */
struct omni_spawn_block {
    /* Nonzero while the child may still use the block; cleared (and futex-woken) by the kernel. */
    _Alignas(8) volatile int32_t tid;
    /* Written by the child before it exits, if a step before the exec failed: the error number. */
    volatile int32_t error;
    /* Bytes mapped, the guard page included. */
    size_t capacity;
    struct omni_spawn_block *next_free;
    /* Filled in by the parent: what the child executes. */
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int stdin_fd, stdout_fd, stderr_fd;
};

/* The child's stack: it only makes raw system calls, so a few KiB would do; 32 KiB as before. */
#define OMNI_SPAWN_STACK (32 * 1024)
#define OMNI_SPAWN_GUARD 4096

/* Raw system calls for the child: it shares the spawning thread's TLS (no CLONE_SETTLS), so it
 * must not write errno, which glibc's wrappers do on failure; the result is -errno instead. On
 * other architectures the spawn keeps CLONE_VFORK (the parent waits, errno is safe to use). */
#if defined(__x86_64__)
#define OMNI_ASYNC_SPAWN 1
static inline long omni_sys(long n, long a, long b, long c, long d) {
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
#define OMNI_ASYNC_SPAWN 1
static inline long omni_sys(long n, long a, long b, long c, long d) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory", "cc");
    return x0;
}
#else
#define OMNI_ASYNC_SPAWN 0
static inline long omni_sys(long n, long a, long b, long c, long d) {
    long ret = syscall(n, a, b, c, d);
    return ret < 0 ? -errno : ret;
}
#endif

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
        /* Above stdio, so that the child's dup3 onto 0 always makes a copy without close-on-exec. */
        int lifted = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        fd = lifted;
    }
    omni_null_fd = fd;
}

/* The soft limit of open files this process had before the first spawn raised it to the hard
 * limit, given back to every child (prlimit64's layout on every architecture); `raised` says
 * whether there is anything to give back. Written once, before any child exists (pthread_once),
 * and only read afterwards, by children too. */
static struct { uint64_t cur, max; } omni_children_nofile;
static int omni_nofile_raised = 0;
static pthread_once_t omni_nofile_once = PTHREAD_ONCE_INIT;

/* Each running step holds two pipes and a pidfd (and its log files once it writes), so the common
 * default soft limit of 1,024 allowed about 300 steps at once: the rest failed with EMFILE. The
 * hard limit is what the system grants this process; Go's runtime raises its soft limit to it the
 * same way, and gives children the original back. */
static void omni_raise_open_files(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
    struct rlimit raised = { limit.rlim_max, limit.rlim_max };
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) return;
    omni_children_nofile.cur = limit.rlim_cur;
    omni_children_nofile.max = limit.rlim_max;
    omni_nofile_raised = 1;
}

void omni_raise_open_files_limit(void) {
    pthread_once(&omni_nofile_once, omni_raise_open_files);
}

long omni_open_descriptors(void) {
    struct stat info;
    if (stat("/proc/self/fd", &info) == 0 && info.st_size > 0) return (long)info.st_size;
    DIR *directory = opendir("/proc/self/fd");
    if (directory == NULL) return -1;
    long count = -1; /* the listing's own descriptor */
    struct dirent *entry;
    while ((entry = readdir(directory)) != NULL) {
        if (entry->d_name[0] != '.') count++;
    }
    closedir(directory);
    return count;
}

/* Runs in the child, on the engine's memory, while the engine's threads go on (CLONE_VM without
 * CLONE_VFORK): it touches nothing but its block (its stack, the copies, `error`) and makes only
 * raw system calls. Every signal is blocked on entry (inherited from the parent's mask around
 * clone), so no handler of the engine can run here. */
static int omni_child_main(void *arg) {
    struct omni_spawn_block *child = arg;
    long rc;
    /* A new group led by the child, first: from here on, signals sent to the engine's group (a
     * terminal's ^C) no longer reach it. (The parent sets it too, so that a teardown that comes
     * before this line still finds the group.) */
    if ((rc = omni_sys(SYS_setpgid, 0, 0, 0, 0)) < 0) goto fail;
    /* Every disposition back to default, glibc's internal signals (32, 33) included: SIG_IGN
     * survives exec (the engine ignores SIGPIPE), and a handler must not run in this child. The
     * child has its own copy of the table (no CLONE_SIGHAND): the engine's stays as it is. */
    /* Static, so that zeroing it is no call to memset (a PLT call could be resolved lazily by
     * the dynamic linker here, on the engine's memory). */
    static const struct omni_kernel_sigaction dfl;
    for (int sig = 1; sig <= 64; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        omni_sys(SYS_rt_sigaction, sig, (long)&dfl, 0, sizeof dfl.mask);
    }
    int in = child->stdin_fd;
    if (in < 0 && (in = (int)omni_sys(SYS_openat, AT_FDCWD, (long)"/dev/null", O_RDONLY, 0)) < 0) {
        rc = in;
        goto fail;
    }
    /* dup3, not dup2 (which aarch64 lacks): every source is above 2, never equal to its target. */
    if ((rc = omni_sys(SYS_dup3, in, 0, 0, 0)) < 0 || (rc = omni_sys(SYS_dup3, child->stdout_fd, 1, 0, 0)) < 0 ||
        (rc = omni_sys(SYS_dup3, child->stderr_fd, 2, 0, 0)) < 0) goto fail;
    /* The directory is entered before the exec, so a relative `path` would resolve from it: the
     * caller passes an absolute one. */
    if (child->cwd != NULL && (rc = omni_sys(SYS_chdir, (long)child->cwd, 0, 0, 0)) < 0) goto fail;
    /* Every descriptor above stdio closes at the exec, whoever opened it: the engine's own are
     * close-on-exec already, but a host application's or Foundation's may not be (a script being
     * written by another thread would stay open for writing in a long-lived step, and exec'ing
     * it would fail with ETXTBSY for that step's whole life). This child has its own descriptor
     * table (no CLONE_FILES), so the parent's flags are untouched. Before Linux 5.11 the call
     * fails with EINVAL or ENOSYS, and the old behaviour stays. */
    omni_sys(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC, 0);
    /* The soft limit of open files the engine was started with (it raised its own): a program
     * that closes every descriptor up to the limit, or uses select(), expects that one. A
     * failure leaves the raised limit, which is only larger. */
    if (omni_nofile_raised) omni_sys(SYS_prlimit64, 0, RLIMIT_NOFILE, (long)&omni_children_nofile, 0);
    uint64_t none = 0;
    omni_sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, sizeof none);
    rc = omni_sys(SYS_execve, (long)child->path, (long)child->argv, (long)child->envp, 0);
fail:
    child->error = (int32_t)-rc;
    /* exit_group of this child's own group (it is not a thread of the engine): the kernel then
     * clears `tid`, after `error` is written. */
    for (;;) omni_sys(SYS_exit_group, 127, 0, 0, 0);
    return 127;
}

/* Blocks whose child is done with them, for the next spawns (kept unless large), and how many are
 * mapped. */
static struct omni_spawn_block *omni_free_blocks = NULL;
static size_t omni_free_count = 0;
static size_t omni_blocks_mapped = 0;
static pthread_mutex_t omni_blocks_lock = PTHREAD_MUTEX_INITIALIZER;

size_t omni_spawn_largest_free_block(void) {
    size_t largest = 0;
    pthread_mutex_lock(&omni_blocks_lock);
    for (struct omni_spawn_block *block = omni_free_blocks; block != NULL; block = block->next_free) {
        if (block->capacity > largest) largest = block->capacity;
    }
    pthread_mutex_unlock(&omni_blocks_lock);
    return largest;
}

size_t omni_spawn_free_blocks(void) {
    pthread_mutex_lock(&omni_blocks_lock);
    size_t count = omni_free_count;
    pthread_mutex_unlock(&omni_blocks_lock);
    return count;
}

size_t omni_spawn_blocks_mapped(void) {
    pthread_mutex_lock(&omni_blocks_lock);
    size_t count = omni_blocks_mapped;
    pthread_mutex_unlock(&omni_blocks_lock);
    return count;
}

/* A block with room for `data` bytes of copies after the header, or NULL (errno set). */
static struct omni_spawn_block *omni_block_take(size_t data) {
    size_t header = (sizeof(struct omni_spawn_block) + 15) & ~(size_t)15;
    size_t need = OMNI_SPAWN_GUARD + OMNI_SPAWN_STACK + header + data;
    pthread_mutex_lock(&omni_blocks_lock);
    struct omni_spawn_block **link = &omni_free_blocks;
    while (*link != NULL && (*link)->capacity < need) link = &(*link)->next_free;
    struct omni_spawn_block *block = *link;
    if (block != NULL) {
        *link = block->next_free;
        omni_free_count--;
    }
    pthread_mutex_unlock(&omni_blocks_lock);
    if (block != NULL) return block;

    size_t capacity = (need + 65535) & ~(size_t)65535;
    char *base = mmap(NULL, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) return NULL;
    /* A stack overflow in the child faults instead of writing over the engine's memory. */
    mprotect(base, OMNI_SPAWN_GUARD, PROT_NONE);
    block = (struct omni_spawn_block *)(base + OMNI_SPAWN_GUARD + OMNI_SPAWN_STACK);
    block->capacity = capacity;
    pthread_mutex_lock(&omni_blocks_lock);
    omni_blocks_mapped++;
    pthread_mutex_unlock(&omni_blocks_lock);
    return block;
}

/* Blocks above this size (a huge argv or environment) are unmapped when given back, not kept. */
#define OMNI_SPAWN_KEEP (256 * 1024)
/* At most this many blocks are kept: a burst of N children starting at once maps N blocks (each
 * is held until its child is reaped), and keeping them all would hold ~10 KiB resident per child
 * of the largest burst for the engine's whole life. Spawns one after another reuse one or two. */
#define OMNI_SPAWN_KEEP_COUNT 16

static void omni_block_give_back(struct omni_spawn_block *block) {
    pthread_mutex_lock(&omni_blocks_lock);
    int keep = block->capacity <= OMNI_SPAWN_KEEP && omni_free_count < OMNI_SPAWN_KEEP_COUNT;
    if (keep) {
        block->next_free = omni_free_blocks;
        omni_free_blocks = block;
        omni_free_count++;
    } else {
        omni_blocks_mapped--;
    }
    pthread_mutex_unlock(&omni_blocks_lock);
    if (!keep) munmap((char *)block - OMNI_SPAWN_STACK - OMNI_SPAWN_GUARD, block->capacity);
}

/* Copies `path`, `argv`, `envp` and `cwd` into the block's data area. */
static void omni_block_fill(struct omni_spawn_block *block, size_t argc, size_t envc, const char *path,
                            char *const argv[], char *const envp[], const char *cwd) {
    size_t header = (sizeof(struct omni_spawn_block) + 15) & ~(size_t)15;
    char **pointers = (char **)((char *)block + header);
    char **argv_copy = pointers, **envp_copy = pointers + argc + 1;
    char *strings = (char *)(envp_copy + envc + 1);
    for (size_t i = 0; i < argc; i++) {
        size_t length = strlen(argv[i]) + 1;
        argv_copy[i] = memcpy(strings, argv[i], length);
        strings += length;
    }
    argv_copy[argc] = NULL;
    for (size_t i = 0; i < envc; i++) {
        size_t length = strlen(envp[i]) + 1;
        envp_copy[i] = memcpy(strings, envp[i], length);
        strings += length;
    }
    envp_copy[envc] = NULL;
    size_t length = strlen(path) + 1;
    block->path = memcpy(strings, path, length);
    strings += length;
    block->cwd = NULL;
    if (cwd != NULL) block->cwd = memcpy(strings, cwd, strlen(cwd) + 1);
    block->argv = argv_copy;
    block->envp = envp_copy;
}

int omni_spawn_start(const char *path, char *const argv[], char *const envp[], const char *cwd,
                     int stdout_fd, int stderr_fd, pid_t *pid_out, int *pidfd_out, void **handle_out) {
    *pidfd_out = -1;
    *handle_out = NULL;
    pthread_once(&omni_null_once, omni_open_null);
    omni_raise_open_files_limit();

    size_t argc = 0, envc = 0, data = 0;
    for (; argv[argc] != NULL; argc++) data += strlen(argv[argc]) + 1;
    for (; envp[envc] != NULL; envc++) data += strlen(envp[envc]) + 1;
    data += strlen(path) + 1 + (cwd != NULL ? strlen(cwd) + 1 : 0) + (argc + envc + 2) * sizeof(char *);
    struct omni_spawn_block *block = omni_block_take(data);
    if (block == NULL) return errno;
    omni_block_fill(block, argc, envc, path, argv, envp, cwd);

    int owned_out = -1, owned_err = -1;
    int out = omni_lift_above_stdio(stdout_fd, &owned_out);
    int err = out < 0 ? -1 : omni_lift_above_stdio(stderr_fd, &owned_err);
    if (out < 0 || err < 0) {
        int saved = errno;
        if (owned_out >= 0) close(owned_out);
        omni_block_give_back(block);
        return saved;
    }
    block->stdin_fd = omni_null_fd;
    block->stdout_fd = out;
    block->stderr_fd = err;
    block->error = 0;
    block->tid = -1;

    /* Every signal blocked around clone (the raw call blocks glibc's internal ones too): the
     * child inherits the mask, so nothing interrupts it before it has reset its dispositions.
     * Except SIGCHLD (see below): only a process's own children send it, and the new child has
     * none. */
    uint64_t all = ~(uint64_t)0 & ~((uint64_t)1 << (SIGCHLD - 1)), saved_mask;
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, &saved_mask, sizeof all);

    /* The parent does not wait for the exec (CLONE_VFORK would suspend this thread, the engine's
     * process loop, for the whole exec: ~100 us in which another child's exit waits); the
     * block's `tid` says when the child is done with the memory. */
    char *stack_top = (char *)block;
    int pidfd = -1;
    int flags = CLONE_VM | CLONE_PIDFD | CLONE_CHILD_CLEARTID | SIGCHLD | (OMNI_ASYNC_SPAWN ? 0 : CLONE_VFORK);
    pid_t pid = clone(omni_child_main, stack_top, flags, block, &pidfd, NULL, &block->tid);
    if (pid < 0 && errno == EINVAL) {
        /* A kernel before 5.2 has no CLONE_PIDFD; the monitor opens one or falls back. */
        pidfd = -1;
        pid = clone(omni_child_main, stack_top, flags & ~CLONE_PIDFD, block, NULL, NULL, &block->tid);
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

    if (rc == 0) {
        /* The group exists from here on, whether or not the child has got to its own setpgid: a
         * teardown that comes first still reaches it (EACCES once the child has executed, and
         * then it did it itself; ESRCH if it already exited). */
        setpgid(pid, pid);
        *pid_out = pid;
        *pidfd_out = pidfd;
        *handle_out = block;
    } else {
        omni_block_give_back(block);
    }
    /* The child has its own descriptor table, copied at the clone. */
    if (owned_out >= 0) close(owned_out);
    if (owned_err >= 0) close(owned_err);
    return rc;
}

int omni_spawn_finish(void *handle) {
    struct omni_spawn_block *block = handle;
    int32_t tid;
    while ((tid = __atomic_load_n(&block->tid, __ATOMIC_ACQUIRE)) != 0) {
        syscall(SYS_futex, &block->tid, FUTEX_WAIT, tid, NULL, NULL, 0);
    }
    int error = block->error;
    omni_block_give_back(block);
    return error;
}

int omni_spawn_executed(void *handle) {
    struct omni_spawn_block *block = handle;
    return __atomic_load_n(&block->tid, __ATOMIC_ACQUIRE) == 0 && block->error == 0;
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

static volatile sig_atomic_t omni_latched[NSIG];

static void omni_latch_handler(int signo) {
    if (signo > 0 && signo < NSIG) omni_latched[signo] = 1;
}

void omni_signal_latch(int signo) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = omni_latch_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(signo, &action, NULL);
}

int omni_signal_latch_installed(int signo) {
    struct sigaction action;
    if (sigaction(signo, NULL, &action) != 0) return 0;
    return action.sa_handler == omni_latch_handler;
}

int omni_signal_latch_take(int signo) {
    if (signo <= 0 || signo >= NSIG) return 0;
    int taken = omni_latched[signo];
    omni_latched[signo] = 0;
    return taken;
}

int omni_default_acl_owner_only(const char *folder) {
    /* The extended attribute's layout (linux/posix_acl_xattr.h), little-endian: a version 2
     * header, then the entries sorted by tag, each {u16 tag, u16 perm, u32 id}; the base
     * entries carry no id (-1). */
    static const uint16_t tags[3] = { 0x01, 0x04, 0x20 };  /* USER_OBJ, GROUP_OBJ, OTHER */
    static const uint16_t perms[3] = { 7, 0, 0 };
    struct { uint16_t tag, perm; uint32_t id; } __attribute__((packed)) entry;
    unsigned char value[4 + 3 * sizeof entry];
    uint32_t version = htole32(2);
    memcpy(value, &version, 4);
    for (int i = 0; i < 3; i++) {
        entry.tag = htole16(tags[i]);
        entry.perm = htole16(perms[i]);
        entry.id = htole32(0xFFFFFFFFu);
        memcpy(value + 4 + i * sizeof entry, &entry, sizeof entry);
    }
    return setxattr(folder, "system.posix_acl_default", value, sizeof value, 0);
}
