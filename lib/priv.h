/*
 * priv - privileges: look up users, drop to a uid/gid, chroot, and run a
 * child program with fewer privileges than the caller.
 *
 * When the caller is not root, dropping to its own uid succeeds as a
 * no-op and dropping to another fails: that is how the test suite runs
 * every daemon unprivileged. Failures return -1 with errno (or a message
 * in *err where one is taken); the caller decides whether it is fatal.
 */
#ifndef TERN_PRIV_H
#define TERN_PRIV_H

#include <sys/types.h>

#include "buf.h"

struct priv_user {
	char	*name;
	uid_t	 uid;
	gid_t	 gid;
	char	*home;
	char	*shell;
};

/* 0 found, -1 no such user (errno 0) or lookup error (errno set). */
int	priv_user_lookup(const char *name, struct priv_user *);
int	priv_user_lookup_uid(uid_t, struct priv_user *);
void	priv_user_free(struct priv_user *);

/* setgroups/initgroups, setgid, setuid, and check root cannot be regained. */
int	priv_drop(uid_t, gid_t, const char *name_for_groups);
int	priv_chroot(const char *dir);

/*
 * The supplementary groups of user name (NULL: the account uid has, or
 * none) with primary group gid, gid first, as getgrouplist(3) gives
 * them, in *groups (allocated) and *ngroups. Each (uid, gid, name) is
 * looked up once per process and kept in a small cache, so that a
 * daemon that switches to users again and again does not read
 * nsswitch.conf and /etc/group (and load NSS modules) every time;
 * group changes reach it when the process is replaced (max_use,
 * max_idle, reload). Cannot fail: a user unknown to NSS has gid alone.
 */
void	priv_groups_lookup(uid_t, gid_t, const char *name, gid_t **groups,
	    size_t *ngroups);

/*
 * Act as uid/gid/groups for a while without giving up root: only the
 * effective ids and the supplementary groups change (setgroups,
 * setegid, seteuid), so files created are the user's and permissions
 * are checked as the user's, and priv_restore_root() goes back. For
 * reading and writing files on a user's behalf; never for running the
 * user's programs, which could go back too (priv_spawn for those).
 * Not nested: one switch, then one restore.
 *
 * When not root: switching to our own uid and gid is a no-op that
 * succeeds, to anything else fails with EPERM. -1 with errno; on
 * failure nothing stays switched.
 */
int	priv_set_euid(uid_t, gid_t, const gid_t *groups, size_t ngroups);
/* Back to the ids and groups from before priv_set_euid (a no-op when it
 * switched nothing). -1 with errno: the caller must not go on. */
int	priv_restore_root(void);

/*
 * Start argv[0] (an absolute path) as uid/gid in folder cwd (NULL: "/"),
 * with every other descriptor closed. *to_child is the write end of its
 * stdin, *from_child the read end of its stdout and stderr together
 * (either may be NULL: then /dev/null). envp NULL means an empty
 * environment. The child starts a new session (its pid is its process
 * group), with all signals unblocked and at their defaults. Started by
 * root for another uid, the child has the supplementary groups of the
 * account that uid belongs to (priv_groups_lookup), else gid alone.
 * 0, or -1 with *err allocated (an exec failure says why: "cannot
 * execute /path: No such file or directory").
 */
int	priv_spawn(char *const argv[], char *const envp[], uid_t, gid_t,
	    const char *cwd, int *to_child, int *from_child, pid_t *pid,
	    char **err);

/*
 * Run argv[0] (an absolute path) with argv and envp as uid/gid, with
 * input on its stdin, its stdout and stderr collected into output (up to
 * output->max; more is read and thrown away), killed after timeout
 * seconds (<= 0: no limit). Returns 0 and the wait(2) status in *status,
 * or -1 with a reason in *err (allocated). When it had to be killed
 * (with its whole process group) the result is -1 with errno ETIMEDOUT,
 * *err "... killed after N seconds", and *status still set.
 */
int	priv_run(char *const argv[], char *const envp[], uid_t, gid_t,
	    const void *input, size_t inlen, struct buf *output,
	    int timeout, int *status, char **err);

#endif
