#ifndef OMNIBASE_SHIMS_H
#define OMNIBASE_SHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Wait-status decoding: the function-like macros of <sys/wait.h> are not imported into Swift. */
int omni_wifexited(int status);
int omni_wexitstatus(int status);
int omni_wifsignaled(int status);
int omni_wtermsig(int status);

/*
 * Starts `path` as the leader of a new process group (pgid == pid), with an empty signal mask,
 * every signal at its default disposition, stdin from /dev/null, and `stdout_fd`/`stderr_fd`
 * (pipe write ends, or /dev/null) as fds 1 and 2. `cwd` may be NULL (inherit). `argv` and `envp`
 * are NULL-terminated; they are copied, so the caller may free them at once. Like posix_spawn it
 * uses clone(CLONE_VM), so nothing but system calls runs in the child; unlike it, the calling
 * thread does not wait until the child has executed (no CLONE_VFORK, on x86_64 and aarch64): the
 * child runs on a stack from a pool of reused mappings, which it holds until the kernel says it
 * executed or exited (CLONE_CHILD_CLEARTID). A pidfd comes with it where the kernel can.
 * Returns 0 and stores the pid, the pidfd (-1 when there is none) and a handle that must be
 * given to omni_spawn_finish exactly once; or returns the error number of the clone (errno is not
 * set). Whether the exec itself worked is known only from omni_spawn_finish. The output fds
 * should be close-on-exec: the dup onto 1 and 2 clears the flag on the copies only.
 * The first call raises this process's soft limit of open files to its hard limit (each running
 * step holds two pipes and a pidfd); every child gets the soft limit the process had before.
 */
int omni_spawn_start(const char *path, char *const argv[], char *const envp[], const char *cwd,
                     int stdout_fd, int stderr_fd, pid_t *pid_out, int *pidfd_out, void **handle_out);

/*
 * Waits until the child of `handle` has executed or exited (at once if it has exited: call it
 * after the exit), returns the handle's memory to the pool and returns 0 if the child executed,
 * else the error number of the step that failed before the exec (the child then exited with 127).
 */
int omni_spawn_finish(void *handle);

/* 1 if the child of `handle` has executed (without waiting; the handle stays valid), else 0. */
int omni_spawn_executed(void *handle);

/* How many spawn memory blocks are mapped (reused; blocks for a huge argv or environment, and
 * those beyond the 16 kept for reuse, are unmapped when their child is done). */
size_t omni_spawn_blocks_mapped(void);

/* How many spawn memory blocks are kept for reuse (at most 16). */
size_t omni_spawn_free_blocks(void);

/* Raises this process's soft limit of open files to its hard limit, once (omni_spawn_start does
 * it at its first call); children started by omni_spawn_start get the original soft limit. */
void omni_raise_open_files_limit(void);

/* How many file descriptors this process has open, or -1 if it cannot be told: the size `stat`
 * gives /proc/self/fd (Linux 6.2 and later; no descriptor needed), else its entries counted. */
long omni_open_descriptors(void);

/* Catches `signo` into a flag until something else installs its own handler: what the stop
 * source puts in place while libdispatch installs its handler (asynchronously), so that a signal
 * in between is not lost. */
void omni_signal_latch(int signo);
/* 1 while the latch is still `signo`'s handler. */
int omni_signal_latch_installed(int signo);
/* 1 if `signo` arrived while latched (and clears it). */
int omni_signal_latch_take(int signo);

/* The size of the largest block kept for reuse, in bytes (0 when none is free). */
size_t omni_spawn_largest_free_block(void);

/* pidfd_open(2) through syscall(2) (close-on-exec by definition). Returns the fd, or -1 and errno. */
int omni_pidfd_open(pid_t pid);

/*
 * pipe2(O_CLOEXEC) for a child's output: fds[0] is the read end, made O_NONBLOCK for the engine's
 * pump; fds[1] is the write end, left blocking for the child (a full pipe makes the child wait:
 * back-pressure). Close-on-exec from the start, so no concurrent spawn inherits either end.
 * Returns 0, or -1 and errno (nothing is left open then).
 */
int omni_output_pipe(int fds[2]);

/* epoll_create1(EPOLL_CLOEXEC). Returns the fd, or -1 and errno. */
int omni_epoll_create(void);

/*
 * Adds `fd` to `epfd` for EPOLLIN with EPOLLONESHOT, tagged with `token` (the packed
 * struct epoll_event stays on the C side). Returns 0, or -1 and errno.
 */
int omni_epoll_add_oneshot(int epfd, int fd, uint64_t token);

/*
 * Adds `fd` to `epfd` for EPOLLIN, level-triggered (EPOLLHUP and EPOLLERR are always reported),
 * tagged with `token`. Returns 0, or -1 and errno.
 */
int omni_epoll_add(int epfd, int fd, uint64_t token);

/* Removes `fd` from `epfd`. Returns 0, or -1 and errno. */
int omni_epoll_delete(int epfd, int fd);

/*
 * epoll_wait(2) that copies the tokens of the ready fds into `tokens`. Returns the number of
 * tokens, or -1 and errno (EINTR included: the caller loops).
 */
int omni_epoll_wait(int epfd, uint64_t *tokens, int max_tokens, int timeout_ms);

/*
 * waitid(P_PID, pid, WEXITED | WNOWAIT): blocks until the child has exited, WITHOUT reaping it.
 * Returns 0, or -1 and errno (EINTR included: the caller loops).
 */
int omni_waitid_exited_nowait(pid_t pid);

/* eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): a wake-up for an epoll thread. Returns the fd, or -1. */
int omni_wake_fd(void);
/* Makes `fd` (from omni_wake_fd) readable. */
void omni_wake(int fd);
/* Resets `fd` (from omni_wake_fd) after it was reported readable. */
void omni_wake_consume(int fd);

/* Names the calling thread (at most 15 bytes are kept), as top, ps -L and gdb show it. */
void omni_name_thread(const char *name);

/* open(path, O_PATH | O_DIRECTORY | O_CLOEXEC): a handle on a directory for fstat and *at calls
 * (O_PATH sits behind _GNU_SOURCE). Returns the fd, or -1 and errno. */
int omni_open_directory(const char *path);

/* Gives the folder the default POSIX ACL u::rwx,g::---,o::---, so that files created in it are
 * owner-only whatever the creator's umask. Returns 0, or -1 and errno (ENOTSUP where the file
 * system keeps no ACLs). */
int omni_default_acl_owner_only(const char *folder);

#endif
