#define _GNU_SOURCE
#include "CSystemShims.h"

#include <spawn.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <unistd.h>

const int csys_PR_SET_PDEATHSIG = PR_SET_PDEATHSIG;
const int csys_PR_SET_NAME = PR_SET_NAME;
const int csys_PR_SET_CHILD_SUBREAPER = PR_SET_CHILD_SUBREAPER;
const int csys_PR_SET_NO_NEW_PRIVS = PR_SET_NO_NEW_PRIVS;
const int csys_PR_GET_NO_NEW_PRIVS = PR_GET_NO_NEW_PRIVS;

int csys_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5) {
    return prctl(option, arg2, arg3, arg4, arg5);
}

int csys_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int low) {
    return posix_spawn_file_actions_addclosefrom_np(actions, low);
}

int csys_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

int csys_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

static int csys_remove_entry(const char *path, const struct stat *info, int flag, struct FTW *ftw) {
    (void)info; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

int csys_remove_tree(const char *path) {
    return nftw(path, csys_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int csys_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int csys_pidfd_wait(int pidfd, int *exited, int *code) {
    siginfo_t info = {0};
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED) != 0) return -1;
    *exited = info.si_code == CLD_EXITED;
    *code = info.si_status;
    return 0;
}

int csys_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int csys_epoll_add(int epfd, int fd, unsigned long long token) {
    struct epoll_event event = {0};
    event.events = EPOLLIN;
    event.data.u64 = token;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int csys_epoll_set_output(int epfd, int fd, unsigned long long token, int output) {
    struct epoll_event event = {0};
    event.events = EPOLLIN | (output ? EPOLLOUT : 0);
    event.data.u64 = token;
    return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event);
}

int csys_epoll_remove(int epfd, int fd) {
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
}

int csys_epoll_wait(int epfd, unsigned long long *tokens, int max, int timeout_ms) {
    struct epoll_event events[64];
    if (max > 64) max = 64;
    int count = epoll_wait(epfd, events, max, timeout_ms);
    for (int index = 0; index < count; index++) tokens[index] = events[index].data.u64;
    return count;
}

#define CSYS_GUARD_SLOTS 1024
static _Atomic int guarded_groups[CSYS_GUARD_SLOTS];

static void group_guard_handler(int signal) {
    (void)signal;
    for (int index = 0; index < CSYS_GUARD_SLOTS; index++) {
        int group = atomic_load(&guarded_groups[index]);
        if (group > 1) kill(-group, SIGKILL);
    }
    _exit(0);
}

int csys_group_guard_install(int signal) {
    struct sigaction action = {0};
    action.sa_handler = group_guard_handler;
    sigfillset(&action.sa_mask);
    return sigaction(signal, &action, NULL);
}

int csys_group_guard_add(int group) {
    for (int index = 0; index < CSYS_GUARD_SLOTS; index++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&guarded_groups[index], &expected, group)) return 0;
    }
    return -1;
}

void csys_group_guard_remove(int group) {
    for (int index = 0; index < CSYS_GUARD_SLOTS; index++) {
        int expected = group;
        if (atomic_compare_exchange_strong(&guarded_groups[index], &expected, 0)) return;
    }
}

int csys_setfsuid(uid_t uid) { return (int)syscall(SYS_setfsuid, uid); }
int csys_setfsgid(gid_t gid) { return (int)syscall(SYS_setfsgid, gid); }
