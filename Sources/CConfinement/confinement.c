#define _GNU_SOURCE
#include "CConfinement.h"

#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif

csys_seccomp_t csys_seccomp_new_allowing(void) { return seccomp_init(SCMP_ACT_ALLOW); }

int csys_seccomp_add_compat_arches(csys_seccomp_t ctx) {
#if defined(__x86_64__)
    int rc = seccomp_arch_add(ctx, SCMP_ARCH_X86);
    return rc == -EEXIST ? 0 : rc;
#else
    (void)ctx;
    return 0;
#endif
}

int csys_seccomp_badarch_errno(csys_seccomp_t ctx, int errnum) {
    return seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(errnum));
}

int csys_seccomp_resolve(const char *name) { return seccomp_syscall_resolve_name(name); }

int csys_seccomp_deny_errno(csys_seccomp_t ctx, int nr, int errnum) {
    return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(errnum), nr, 0);
}

int csys_seccomp_deny_kill(csys_seccomp_t ctx, int nr) {
    return seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, nr, 0);
}

int csys_seccomp_deny_errno_masked(csys_seccomp_t ctx, int nr, int errnum, unsigned arg, uint64_t mask, uint64_t value) {
    return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(errnum), nr, 1, SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, mask, value));
}

int csys_seccomp_load(csys_seccomp_t ctx) { return seccomp_load(ctx); }

void csys_seccomp_release(csys_seccomp_t ctx) { seccomp_release(ctx); }

int csys_caps_clear(void) {
    cap_t empty = cap_init();
    if (empty == NULL) return -1;
    int rc = cap_set_proc(empty);
    int saved = errno;
    cap_free(empty);
    errno = saved;
    return rc;
}

int csys_caps_clear_ambient(void) {
    return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

int csys_caps_drop_bound(int cap) { return prctl(PR_CAPBSET_DROP, cap, 0, 0, 0); }

int csys_caps_last(void) {
    int last = CAP_LAST_CAP;
    FILE *file = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (file != NULL) {
        int value;
        if (fscanf(file, "%d", &value) == 1) last = value;
        fclose(file);
    }
    return last;
}

int csys_caps_have_setpcap(void) {
    cap_t current = cap_get_proc();
    if (current == NULL) return 0;
    cap_flag_value_t value = CAP_CLEAR;
    cap_get_flag(current, CAP_SETPCAP, CAP_EFFECTIVE, &value);
    cap_free(current);
    return value == CAP_SET;
}

struct csys_landlock_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct csys_landlock_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

struct csys_landlock_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
};

int csys_landlock_abi(void) {
    return (int)syscall(__NR_landlock_create_ruleset, NULL, 0, 1U /* LANDLOCK_CREATE_RULESET_VERSION */);
}

int csys_landlock_create(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped, size_t attr_size) {
    struct csys_landlock_ruleset_attr attr = {handled_fs, handled_net, scoped};
    if (attr_size > sizeof(attr)) attr_size = sizeof(attr);
    return (int)syscall(__NR_landlock_create_ruleset, &attr, attr_size, 0);
}

int csys_landlock_allow_path(int ruleset_fd, int parent_fd, uint64_t access) {
    struct csys_landlock_path_beneath_attr attr = {access, parent_fd};
    return (int)syscall(__NR_landlock_add_rule, ruleset_fd, 1 /* LANDLOCK_RULE_PATH_BENEATH */, &attr, 0);
}

int csys_landlock_allow_port(int ruleset_fd, uint64_t port, uint64_t access) {
    struct csys_landlock_net_port_attr attr = {access, port};
    return (int)syscall(__NR_landlock_add_rule, ruleset_fd, 2 /* LANDLOCK_RULE_NET_PORT */, &attr, 0);
}

int csys_landlock_restrict_self(int ruleset_fd) {
    return (int)syscall(__NR_landlock_restrict_self, ruleset_fd, 0);
}

int csys_caps_bound_empty(void) {
    int last = csys_caps_last();
    for (int cap = 0; cap <= last; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1) return 0;
    }
    return 1;
}

int csys_setresuid(uid_t uid) { return setresuid(uid, uid, uid); }
int csys_setresgid(gid_t gid) { return setresgid(gid, gid, gid); }
int csys_open_path(const char *path) { return open(path, O_PATH | O_CLOEXEC); }
