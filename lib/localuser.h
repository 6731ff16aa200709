/*
 * localuser - who the local users are.
 *
 * Local recipients are system accounts, looked up with getpwnam(3),
 * unless the Tern-only parameter local_passwd_file names a passwd(5)
 * format file: then that file alone defines them. Test and demo
 * instances use it to have users whose homes live inside the instance
 * folder, without touching /etc/passwd.
 *
 * Names are matched exactly (callers lowercase addresses first, as
 * Postfix does). Returns 0 found, -1 not found (errno 0) or a lookup
 * error (errno set, e.g. the file cannot be read): callers answer
 * "try again later" on an error, never "user unknown".
 */
#ifndef TERN_LOCALUSER_H
#define TERN_LOCALUSER_H

#include "priv.h"

int	local_user_lookup(const char *name, struct priv_user *);

#endif
