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
 * Start argv[0] (an absolute path) as uid/gid in folder cwd (NULL: "/"),
 * with every other descriptor closed. *to_child is the write end of its
 * stdin, *from_child the read end of its stdout and stderr together
 * (either may be NULL: then /dev/null). envp NULL means an empty
 * environment. The child starts a new session (its pid is its process
 * group), with all signals unblocked and at their defaults. 0, or -1
 * with *err allocated (an exec failure says why: "cannot execute
 * /path: No such file or directory").
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
