// Small C shims for Linux interfaces Swift cannot call directly: variadic functions
// (prctl), GNU extensions hidden behind _GNU_SOURCE (posix_spawn closefrom/chdir), and
// raw syscalls without a libc wrapper. No policy lives here: only calls.
#ifndef OPENCLAW_CSYSTEMSHIMS_H
#define OPENCLAW_CSYSTEMSHIMS_H

#include <spawn.h>
#include <sys/types.h>

/// prctl(2) with five explicit arguments.
int csys_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);

/// posix_spawn_file_actions_addclosefrom_np(3): close every fd >= low in the child.
int csys_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int low);

/// posix_spawn_file_actions_addchdir_np(3): chdir in the child before exec.
int csys_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);

/// pipe2(2) with O_CLOEXEC on both ends.
int csys_pipe_cloexec(int fds[2]);

/// Removes a directory tree without following symlinks (nftw, depth first); 0 or -1.
int csys_remove_tree(const char *path);

/// pidfd_open(2): a file descriptor for the child `pid` that becomes readable when it exits.
int csys_pidfd_open(pid_t pid);

/// waitid(P_PIDFD, fd, WEXITED): reaps that child; *exited=1 and *code=exit status, or
/// *exited=0 and *code=the signal that ended it. 0 or -1 (errno).
int csys_pidfd_wait(int pidfd, int *exited, int *code);

/// epoll without the packed `struct epoll_event` in Swift: add/remove an fd with a 64-bit token
/// (level-triggered EPOLLIN), wait for up to `max` tokens.
int csys_epoll_create(void);
int csys_epoll_add(int epfd, int fd, unsigned long long token);
int csys_epoll_remove(int epfd, int fd);
/// Re-arms a registered fd for input, plus output when `output` is non-zero.
int csys_epoll_set_output(int epfd, int fd, unsigned long long token, int output);
int csys_epoll_wait(int epfd, unsigned long long *tokens, int max, int timeout_ms);

/// Process groups to kill when `signal` arrives, then `_exit(0)`: a worker's commands or
/// Chromium, killed even when the Supervisor dies by SIGKILL (the parent-death signal). The
/// handler only reads atomics and calls kill(2) and _exit(2). Up to 1024 groups.
int csys_group_guard_install(int signal);
/// 0 when recorded, -1 when every slot is taken.
int csys_group_guard_add(int group);
void csys_group_guard_remove(int group);

/// setfsuid(2)/setfsgid(2) as raw syscalls: the *calling thread's* file-system ids (glibc does
/// not broadcast them to other threads). Return the previous id.
int csys_setfsuid(uid_t uid);
int csys_setfsgid(gid_t gid);

/// Constants whose headers Swift's Glibc module does not export.
extern const int csys_PR_SET_PDEATHSIG;
extern const int csys_PR_SET_NAME;
extern const int csys_PR_SET_CHILD_SUBREAPER;
extern const int csys_PR_SET_NO_NEW_PRIVS;
extern const int csys_PR_GET_NO_NEW_PRIVS;

#endif
