// C shims for the Linux confinement interfaces Swift cannot call directly: libseccomp's
// action macros and variadic rule functions, libcap, and the Landlock syscalls (no libc
// wrapper). No policy lives here: only calls. Policies are tables in Sources/Confinement.
#ifndef OPENCLAW_CCONFINEMENT_H
#define OPENCLAW_CCONFINEMENT_H

#include <stdint.h>
#include <sys/types.h>

// MARK: seccomp (libseccomp)

/// An opaque libseccomp filter context.
typedef void *csys_seccomp_t;

/// seccomp_init(3) with SCMP_ACT_ALLOW as the default action; NULL on failure.
csys_seccomp_t csys_seccomp_new_allowing(void);
/// Adds the 32-bit x86 ABI on x86_64 hosts so its syscalls meet the same rules; 0 or -errno.
int csys_seccomp_add_compat_arches(csys_seccomp_t ctx);
/// Sets the action for syscalls of an architecture the filter does not know: fail with `errnum`.
int csys_seccomp_badarch_errno(csys_seccomp_t ctx, int errnum);
/// The syscall number of `name` for the native arch, or a negative value when unknown.
int csys_seccomp_resolve(const char *name);
/// Unconditionally fails `syscall_nr` with `errnum` (SCMP_ACT_ERRNO); 0 or -errno.
int csys_seccomp_deny_errno(csys_seccomp_t ctx, int syscall_nr, int errnum);
/// Kills the process on `syscall_nr` (SCMP_ACT_KILL_PROCESS); 0 or -errno.
int csys_seccomp_deny_kill(csys_seccomp_t ctx, int syscall_nr);
/// Fails `syscall_nr` with `errnum` when (arg[arg_index] & mask) == value; 0 or -errno.
int csys_seccomp_deny_errno_masked(csys_seccomp_t ctx, int syscall_nr, int errnum,
                                   unsigned arg_index, uint64_t mask, uint64_t value);
/// seccomp_load(3); 0 or -errno.
int csys_seccomp_load(csys_seccomp_t ctx);
void csys_seccomp_release(csys_seccomp_t ctx);

// MARK: capabilities (libcap)

/// Clears the effective, permitted and inheritable sets of the calling thread (cap_set_proc
/// with an empty set); 0 or -1 with errno.
int csys_caps_clear(void);
/// Clears the ambient set; 0 or -1 with errno.
int csys_caps_clear_ambient(void);
/// Drops `cap` from the bounding set; 0 or -1 with errno.
int csys_caps_drop_bound(int cap);
/// CAP_LAST_CAP of the running kernel (from /proc), or of the headers.
int csys_caps_last(void);
/// Whether the bounding set is empty.
int csys_caps_bound_empty(void);
/// Whether the effective set holds CAP_SETPCAP (needed to shrink the bounding set).
int csys_caps_have_setpcap(void);

// MARK: identity (GNU extensions Swift's Glibc module hides)

/// setresuid(uid, uid, uid); 0 or -1 with errno.
int csys_setresuid(uid_t uid);
/// setresgid(gid, gid, gid); 0 or -1 with errno.
int csys_setresgid(gid_t gid);
/// open(path, O_PATH | O_CLOEXEC): a handle for Landlock rules.
int csys_open_path(const char *path);

// MARK: Landlock (raw syscalls)

/// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): the ABI version, or -1 with errno.
int csys_landlock_abi(void);
/// A ruleset handling these accesses; `attr_size` selects the ABI's struct size (8, 16 or 24).
int csys_landlock_create(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped, size_t attr_size);
/// Allows `access` beneath the directory (or on the file) open as `parent_fd`.
int csys_landlock_allow_path(int ruleset_fd, int parent_fd, uint64_t access);
/// Allows `access` (bind/connect) for TCP `port`.
int csys_landlock_allow_port(int ruleset_fd, uint64_t port, uint64_t access);
/// landlock_restrict_self(ruleset_fd, 0).
int csys_landlock_restrict_self(int ruleset_fd);

#endif
