#define _GNU_SOURCE
#include "CSystemShims.h"

#include <spawn.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <unistd.h>

const int csys_PR_SET_PDEATHSIG = PR_SET_PDEATHSIG;
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
