/*
 * table_lmdb - "lmdb:/path" tables: the file /path.lmdb, built from the
 * text file /path by ternmap (table_lmdb_build) and read here.
 *
 * The file is a single-file LMDB environment holding lowercased keys
 * and their values as plain bytes, plus one marker entry whose key
 * starts with a NUL byte (no lookup key can) and whose value says how
 * many entries the builder wrote. A build writes a temporary file
 * beside the table, syncs it and renames it over the old one, so a
 * reader sees the old table or the new one, never half of either; the
 * reader therefore needs no lock file (MDB_NOLOCK) and notices a
 * rebuild by the file's identity (device, inode, size, mtime) changing.
 * Changes without the text file (ternmap -i, -d) are made the same way:
 * the old entries are copied into a new file with the change, which is
 * renamed over the old one. Writers take turns with an flock on the
 * folder, so that none works from a table another is replacing.
 *
 * Failure: a file that is missing, shorter than its own meta page says
 * (truncated: reading it through the map would fault), not built by
 * ternmap, or whose entry count disagrees with the marker is an error at
 * every lookup, never an empty table. The check is cheap and runs at
 * every (re)open; each lookup first stat()s the file.
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "num.h"
#include "table.h"

/* The marker entry: its key cannot collide with text-table keys. */
static const char lmdb_marker_key[] = "\0ternmap";
#define LMDB_MARKER_KEYLEN	(sizeof(lmdb_marker_key) - 1)
#define LMDB_MARKER_VERSION	"1 "

/* Rebuilds restart with a map twice as large when this one fills. */
#define LMDB_MAP_MIN		(1024 * 1024)
#define LMDB_MAP_FULL		2

struct lmdb_table {
	char	*path;		/* NAME.lmdb */
	MDB_env	*env;		/* NULL while the file cannot be used */
	MDB_dbi	 dbi;
	struct stat sb;		/* identity of the open file */
};

static void
lmdb_unload(struct lmdb_table *lt)
{
	if (lt->env != NULL)
		mdb_env_close(lt->env);
	lt->env = NULL;
}

/* Read the marker and check the entry count against it. */
static int
lmdb_check_marker(const char *path, MDB_txn *txn, MDB_dbi dbi, char **err)
{
	MDB_val k, v;
	MDB_stat st;
	unsigned long count;
	char *text;
	int rc, bad;

	k.mv_data = (void *)lmdb_marker_key;
	k.mv_size = LMDB_MARKER_KEYLEN;
	if ((rc = mdb_get(txn, dbi, &k, &v)) == MDB_NOTFOUND) {
		*err = xasprintf("%s: not a table built by ternmap (no "
		    "marker entry)", path);
		return -1;
	} else if (rc != 0) {
		*err = xasprintf("%s: %s", path, mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_stat(txn, dbi, &st)) != 0) {
		*err = xasprintf("%s: %s", path, mdb_strerror(rc));
		return -1;
	}
	text = xstrndup(v.mv_data, v.mv_size);
	bad = strncmp(text, LMDB_MARKER_VERSION,
	    strlen(LMDB_MARKER_VERSION)) != 0 ||
	    parse_ulong(text + strlen(LMDB_MARKER_VERSION), 0, (unsigned long)-1,
	    &count) < 0;
	free(text);
	if (bad) {
		*err = xasprintf("%s: unknown table format version", path);
		return -1;
	}
	if (st.ms_entries != (size_t)count + 1) {
		*err = xasprintf("%s: corrupt: holds %zu entries, the builder "
		    "wrote %lu", path, st.ms_entries - 1, count);
		return -1;
	}
	return 0;
}

/* Open path read-only and check it is whole; 0, or -1 with *err. */
static int
lmdb_env_open_checked(const char *path, MDB_env **envp, MDB_dbi *dbip,
    struct stat *sb, char **err)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_envinfo info;
	MDB_stat st;
	MDB_dbi dbi;
	size_t need;
	int fd, rc;

	/* LMDB would take an empty file for a new one: say what it is. */
	if (stat(path, sb) == 0 && sb->st_size == 0) {
		*err = xasprintf("%s: empty file; rebuild it with ternmap",
		    path);
		return -1;
	}
	if ((rc = mdb_env_create(&env)) != 0) {
		*err = xasprintf("%s: %s", path, mdb_strerror(rc));
		return -1;
	}
	rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK,
	    0);
	if (rc != 0) {
		*err = xasprintf("cannot open %s: %s", path, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_env_get_fd(env, &fd)) != 0 || fstat(fd, sb) < 0) {
		*err = xasprintf("cannot stat %s: %s", path,
		    rc ? mdb_strerror(rc) : strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_info(env, &info)) != 0 ||
	    (rc = mdb_env_stat(env, &st)) != 0) {
		*err = xasprintf("%s: %s", path, mdb_strerror(rc));
		goto fail;
	}
	/* Pages past the end of the file would fault when touched. */
	need = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
	if (sb->st_size < 0 || (size_t)sb->st_size < need) {
		*err = xasprintf("%s: truncated (%lld bytes, needs %zu); "
		    "rebuild it with ternmap", path, (long long)sb->st_size,
		    need);
		goto fail;
	}
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0) {
		*err = xasprintf("%s: %s", path, mdb_strerror(rc));
		goto fail;
	}
	if (lmdb_check_marker(path, txn, dbi, err) < 0)
		goto fail;
	/* Committing keeps the database handle for later transactions. */
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0) {
		*err = xasprintf("%s: %s", path, mdb_strerror(rc));
		goto fail;
	}
	*envp = env;
	*dbip = dbi;
	return 0;
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return -1;
}

/* Nonzero when the file on disk is no longer the one we have open. */
static int
lmdb_changed(const struct lmdb_table *lt)
{
	struct stat sb;

	if (stat(lt->path, &sb) < 0)
		return 1;
	return sb.st_dev != lt->sb.st_dev || sb.st_ino != lt->sb.st_ino ||
	    sb.st_size != lt->sb.st_size ||
	    sb.st_mtim.tv_sec != lt->sb.st_mtim.tv_sec ||
	    sb.st_mtim.tv_nsec != lt->sb.st_mtim.tv_nsec;
}

static int
lmdb_open(struct table *t, const char *name, char **err)
{
	struct lmdb_table *lt;

	lt = xcalloc(1, sizeof(*lt));
	lt->path = xasprintf("%s.lmdb", name);
	if (lmdb_env_open_checked(lt->path, &lt->env, &lt->dbi, &lt->sb,
	    err) < 0) {
		free(lt->path);
		free(lt);
		return -1;
	}
	t->priv = lt;
	return 0;
}

static int
lmdb_lookup(struct table *t, const char *key, char **value, char **err)
{
	struct lmdb_table *lt = t->priv;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if (lt->env != NULL && lmdb_changed(lt))
		lmdb_unload(lt);
	if (lt->env == NULL && lmdb_env_open_checked(lt->path, &lt->env,
	    &lt->dbi, &lt->sb, err) < 0) {
		lt->env = NULL;
		return TABLE_ERROR;
	}

	k.mv_data = (void *)key;
	k.mv_size = strlen(key);
	/* Such keys cannot have been stored. */
	if (k.mv_size == 0 ||
	    k.mv_size > (size_t)mdb_env_get_maxkeysize(lt->env))
		return TABLE_NOTFOUND;
	if ((rc = mdb_txn_begin(lt->env, NULL, MDB_RDONLY, &txn)) != 0) {
		*err = xasprintf("%s: %s", lt->path, mdb_strerror(rc));
		return TABLE_ERROR;
	}
	rc = mdb_get(txn, lt->dbi, &k, &v);
	if (rc == 0)
		*value = xstrndup(v.mv_data, v.mv_size);
	mdb_txn_abort(txn);
	if (rc == MDB_NOTFOUND)
		return TABLE_NOTFOUND;
	if (rc != 0) {
		*err = xasprintf("%s: %s", lt->path, mdb_strerror(rc));
		return TABLE_ERROR;
	}
	return TABLE_FOUND;
}

static void
lmdb_close(struct table *t)
{
	struct lmdb_table *lt = t->priv;

	if (lt == NULL)
		return;
	lmdb_unload(lt);
	free(lt->path);
	free(lt);
	t->priv = NULL;
}

static int
lmdb_walk(struct table *t,
    int (*fn)(const char *key, const char *value, void *ctx),
    void *ctx, char **err)
{
	return table_lmdb_walk(t->name, fn, ctx, err);
}

const struct table_ops table_lmdb_ops = {
	.type = "lmdb",
	.open = lmdb_open,
	.lookup = lmdb_lookup,
	.close = lmdb_close,
	.walk = lmdb_walk,
};

int
table_lmdb_walk(const char *path,
    int (*fn)(const char *key, const char *value, void *ctx),
    void *ctx, char **err)
{
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct stat sb;
	char *file, *key, *value;
	int rc, r = 0;

	file = xasprintf("%s.lmdb", path);
	if (lmdb_env_open_checked(file, &env, &dbi, &sb, err) < 0) {
		free(file);
		return -1;
	}
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		goto out;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && r == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size > 0 && ((const char *)k.mv_data)[0] == '\0')
			continue;	/* the marker */
		key = xstrndup(k.mv_data, k.mv_size);
		value = xstrndup(v.mv_data, v.mv_size);
		r = fn(key, value, ctx);
		free(key);
		free(value);
	}
	if (r != 0 || rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (rc != 0) {
		*err = xasprintf("%s: %s", file, mdb_strerror(rc));
		r = -1;
	}
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	free(file);
	return r;
}

/* State of one write pass, handed to whatever fills the new file. */
struct lmdb_builder {
	const char *path;	/* the input, for messages */
	MDB_txn	*txn;
	MDB_dbi	 dbi;
	size_t	 maxkey;
	unsigned long count;
	int	 rc;		/* an LMDB error that stopped the fill */
	char	*err;		/* or a message */
};

/*
 * Puts the entries of one pass into b's transaction: 0, or nonzero
 * with b->rc, b->err or *err saying why. Called again from the start,
 * on a fresh file, when the map fills up.
 */
typedef int (*lmdb_fill_fn)(struct lmdb_builder *b, void *ctx, char **err);

/* Put one entry; a key already there keeps its value, with a warning. */
static int
lmdb_build_put(const char *key, const char *value, void *ctx)
{
	struct lmdb_builder *b = ctx;
	MDB_val k, v;
	char *folded;
	int rc;

	folded = xstrdup(key);
	table_fold(folded);
	k.mv_data = folded;
	k.mv_size = strlen(folded);
	if (k.mv_size > b->maxkey) {
		b->err = xasprintf("%s: key \"%.40s...\" is longer than %zu "
		    "bytes", b->path, folded, b->maxkey);
		free(folded);
		return -1;
	}
	v.mv_data = (void *)value;
	v.mv_size = strlen(value);
	rc = mdb_put(b->txn, b->dbi, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST) {
		msg_warn("%s: duplicate entry \"%s\": keeping the first",
		    b->path, folded);
		rc = 0;
	} else if (rc == 0)
		b->count++;
	free(folded);
	if (rc != 0) {
		b->rc = rc;
		return -1;
	}
	return 0;
}

/*
 * One write of tmp with the given map size: 0, LMDB_MAP_FULL (try
 * again larger), or -1 with *err. tmp is left for the caller to rename
 * or remove. owner, when not NULL and we are root, gives the new file
 * the old one's owner, so that root's edit does not take the table
 * from whoever kept it.
 */
static int
lmdb_write_once(const char *path, const char *tmp, mode_t mode,
    const struct stat *owner, size_t mapsize, lmdb_fill_fn fill, void *ctx,
    char **err)
{
	struct lmdb_builder b = { .path = path };
	MDB_env *env = NULL;
	MDB_val k, v;
	char marker[64];
	int fd, rc, r = -1;

	if (unlink(tmp) < 0 && errno != ENOENT) {
		*err = xasprintf("cannot remove %s: %s", tmp, strerror(errno));
		return -1;
	}
	/* Create it ourselves: no links followed, no one else's file. */
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    mode);
	if (fd < 0 || fchmod(fd, mode) < 0 || (owner != NULL &&
	    geteuid() == 0 && fchown(fd, owner->st_uid, owner->st_gid) < 0)) {
		*err = xasprintf("cannot create %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, mapsize)) != 0 ||
	    (rc = mdb_env_open(env, tmp, MDB_NOSUBDIR | MDB_NOLOCK |
	    MDB_NOSYNC, mode)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, 0, &b.txn)) != 0 ||
	    (rc = mdb_dbi_open(b.txn, NULL, 0, &b.dbi)) != 0) {
		*err = xasprintf("%s: %s", tmp, mdb_strerror(rc));
		goto out;
	}
	b.maxkey = (size_t)mdb_env_get_maxkeysize(env);

	if (fill(&b, ctx, err) != 0) {
		if (b.rc == MDB_MAP_FULL)
			r = LMDB_MAP_FULL;
		else if (b.rc != 0)
			*err = xasprintf("%s: %s", tmp, mdb_strerror(b.rc));
		else if (b.err != NULL) {
			*err = b.err;
			b.err = NULL;
		}
		goto out;
	}
	snprintf(marker, sizeof(marker), "%s%lu", LMDB_MARKER_VERSION,
	    b.count);
	k.mv_data = (void *)lmdb_marker_key;
	k.mv_size = LMDB_MARKER_KEYLEN;
	v.mv_data = marker;
	v.mv_size = strlen(marker);
	rc = mdb_put(b.txn, b.dbi, &k, &v, 0);
	if (rc == 0)
		rc = mdb_txn_commit(b.txn);
	else
		mdb_txn_abort(b.txn);
	b.txn = NULL;
	if (rc == 0)
		rc = mdb_env_sync(env, 1);
	if (rc == MDB_MAP_FULL)
		r = LMDB_MAP_FULL;
	else if (rc != 0)
		*err = xasprintf("%s: %s", tmp, mdb_strerror(rc));
	else
		r = 0;
out:
	if (b.txn != NULL)
		mdb_txn_abort(b.txn);
	if (env != NULL)
		mdb_env_close(env);
	free(b.err);
	if (r == 0 && fsync(fd) < 0) {
		*err = xasprintf("cannot sync %s: %s", tmp, strerror(errno));
		r = -1;
	}
	close(fd);
	return r;
}

/* The folder holding file, "." when the name has no slash. */
static char *
parent_of(const char *file)
{
	char *dir, *slash;

	dir = xstrdup(file);
	if ((slash = strrchr(dir, '/')) == NULL) {
		free(dir);
		dir = xstrdup(".");
	} else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return dir;
}

/* Make a rename in the folder holding file durable. */
static int
sync_parent(const char *file, char **err)
{
	char *dir;
	int fd, r = 0;

	dir = parent_of(file);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fsync(fd) < 0) {
		*err = xasprintf("cannot sync folder %s: %s", dir,
		    strerror(errno));
		r = -1;
	}
	if (fd >= 0)
		close(fd);
	free(dir);
	return r;
}

/*
 * Wait for our turn to replace file: an exclusive flock on its folder,
 * held until the returned descriptor is closed. Each writer reads the
 * table it changes, so two at once would lose one's work; the folder
 * (not the file, which each writer replaces) is what stays the same.
 * Readers take no lock. -1 with *err.
 */
static int
lmdb_lock(const char *file, char **err)
{
	char *dir;
	int fd;

	dir = parent_of(file);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    flock(fd, LOCK_EX) < 0) {
		*err = xasprintf("cannot lock folder %s: %s", dir,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	free(dir);
	return fd;
}

/*
 * Write dst anew through a temporary file beside it, growing the map
 * until the entries fit, and rename it into place: readers see the
 * old table or the new one. The caller holds the lock. 0, or -1 with
 * *err and dst untouched.
 */
static int
lmdb_replace(const char *dst, const char *path, mode_t mode,
    const struct stat *owner, size_t mapsize, lmdb_fill_fn fill, void *ctx,
    char **err)
{
	char *tmp;
	int r;

	tmp = xasprintf("%s.tmp-%ld", dst, (long)getpid());
	while ((r = lmdb_write_once(path, tmp, mode, owner, mapsize, fill,
	    ctx, err)) == LMDB_MAP_FULL) {
		if (mapsize > (size_t)-1 / 4) {
			*err = xasprintf("%s: table too large", path);
			r = -1;
			break;
		}
		mapsize *= 2;
	}
	if (r == 0 && rename(tmp, dst) < 0) {
		*err = xasprintf("cannot rename %s to %s: %s", tmp, dst,
		    strerror(errno));
		r = -1;
	}
	if (r == 0)
		r = sync_parent(dst, err);
	else
		unlink(tmp);
	free(tmp);
	return r;
}

/* A map size with room for about need bytes of text. */
static size_t
lmdb_map_size(size_t need)
{
	size_t mapsize = LMDB_MAP_MIN;

	/* Keys and values with B-tree overhead rarely need 4x the text. */
	while (mapsize / 4 < need && mapsize < (size_t)-1 / 4)
		mapsize *= 2;
	return mapsize;
}

struct lmdb_text_source {
	const char *path;
	int	 aliases_syntax;
};

static int
lmdb_fill_text(struct lmdb_builder *b, void *ctx, char **err)
{
	struct lmdb_text_source *src = ctx;

	return table_text_walk(src->path, src->aliases_syntax, lmdb_build_put,
	    b, err);
}

int
table_lmdb_build(const char *path, int aliases_syntax, char **err)
{
	struct lmdb_text_source src = { path, aliases_syntax };
	struct stat sb;
	char *dst;
	int lock, r;

	if (stat(path, &sb) < 0) {
		*err = xasprintf("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		*err = xasprintf("%s: not a regular file", path);
		return -1;
	}
	dst = xasprintf("%s.lmdb", path);
	if ((lock = lmdb_lock(dst, err)) < 0) {
		free(dst);
		return -1;
	}
	r = lmdb_replace(dst, path, sb.st_mode & 0666, NULL,
	    lmdb_map_size((size_t)sb.st_size), lmdb_fill_text, &src, err);
	close(lock);
	free(dst);
	return r;
}

/* What table_lmdb_update puts in the new file. */
struct lmdb_update {
	MDB_env	*old;		/* NULL: there was no table yet */
	MDB_dbi	 old_dbi;
	char	**del;		/* folded and sorted */
	size_t	 ndel;
	char *const *addkeys;
	char *const *addvalues;
	size_t	 nadd;
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
lmdb_is_deleted(const struct lmdb_update *u, const MDB_val *k)
{
	char *key;
	int found;

	if (u->ndel == 0)
		return 0;
	key = xstrndup(k->mv_data, k->mv_size);
	found = bsearch(&key, u->del, u->ndel, sizeof(*u->del),
	    cmp_str) != NULL;
	free(key);
	return found;
}

/* The new entries first, so that they win over old ones of that key;
 * then the old entries less the deleted ones. */
static int
lmdb_fill_update(struct lmdb_builder *b, void *ctx, char **err)
{
	struct lmdb_update *u = ctx;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	for (size_t i = 0; i < u->nadd; i++)
		if (lmdb_build_put(u->addkeys[i], u->addvalues[i], b) != 0)
			return -1;
	if (u->old == NULL)
		return 0;
	if ((rc = mdb_txn_begin(u->old, NULL, MDB_RDONLY, &txn)) != 0) {
		b->rc = rc;
		return -1;
	}
	if ((rc = mdb_cursor_open(txn, u->old_dbi, &cur)) != 0) {
		mdb_txn_abort(txn);
		b->rc = rc;
		return -1;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size > 0 && ((const char *)k.mv_data)[0] == '\0')
			continue;	/* the marker: written anew */
		if (lmdb_is_deleted(u, &k))
			continue;
		rc = mdb_put(b->txn, b->dbi, &k, &v, MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST)
			continue;	/* replaced by a new entry */
		if (rc != 0)
			break;
		b->count++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND) {
		b->rc = rc;
		return -1;
	}
	return 0;
}

/* How many of u's deleted keys the old table holds. */
static int
lmdb_count_present(const char *path, struct lmdb_update *u, size_t *n,
    char **err)
{
	MDB_txn *txn;
	MDB_val k, v;
	int rc = 0;

	*n = 0;
	if ((rc = mdb_txn_begin(u->old, NULL, MDB_RDONLY, &txn)) != 0) {
		*err = xasprintf("%s: %s", path, mdb_strerror(rc));
		return -1;
	}
	for (size_t i = 0; i < u->ndel; i++) {
		k.mv_data = u->del[i];
		k.mv_size = strlen(u->del[i]);
		if (k.mv_size == 0 ||
		    k.mv_size > (size_t)mdb_env_get_maxkeysize(u->old))
			continue;
		if ((rc = mdb_get(txn, u->old_dbi, &k, &v)) == 0)
			(*n)++;
		else if (rc != MDB_NOTFOUND)
			break;
		rc = 0;
	}
	mdb_txn_abort(txn);
	if (rc != 0) {
		*err = xasprintf("%s: %s", path, mdb_strerror(rc));
		return -1;
	}
	return 0;
}

int
table_lmdb_update(const char *path, char *const *del, char *const *addkeys,
    char *const *addvalues, size_t nadd, size_t *ndeleted, char **err)
{
	struct lmdb_update u = { .addkeys = addkeys, .addvalues = addvalues,
	    .nadd = nadd };
	struct stat sb, *owner = NULL;
	char *dst;
	size_t need = 0, present = 0, i, out;
	mode_t mode = 0644;
	int lock, r = -1;

	if (ndeleted != NULL)
		*ndeleted = 0;
	dst = xasprintf("%s.lmdb", path);
	if ((lock = lmdb_lock(dst, err)) < 0) {
		free(dst);
		return -1;
	}
	/* Only additions may start a table; a broken one is never empty. */
	if (nadd == 0 || stat(dst, &sb) == 0 || errno != ENOENT) {
		if (lmdb_env_open_checked(dst, &u.old, &u.old_dbi, &sb,
		    err) < 0) {
			u.old = NULL;
			goto out;
		}
		mode = sb.st_mode & 0666;
		owner = &sb;
		need = (size_t)sb.st_size / 2;
	}

	for (i = 0; del != NULL && del[i] != NULL; i++)
		;
	u.del = xcalloc(i + 1, sizeof(*u.del));
	for (i = 0; del != NULL && del[i] != NULL; i++) {
		u.del[i] = xstrdup(del[i]);
		table_fold(u.del[i]);
	}
	qsort(u.del, i, sizeof(*u.del), cmp_str);
	for (u.ndel = out = 0; out < i; out++)
		if (u.ndel == 0 || strcmp(u.del[u.ndel - 1], u.del[out]) != 0)
			u.del[u.ndel++] = u.del[out];
		else
			free(u.del[out]);

	if (u.old != NULL && lmdb_count_present(dst, &u, &present, err) < 0)
		goto out;
	if (ndeleted != NULL)
		*ndeleted = present;
	if (present == 0 && nadd == 0) {
		r = 0;		/* nothing to change: leave the file be */
		goto out;
	}
	for (i = 0; i < nadd; i++)
		need += strlen(addkeys[i]) + strlen(addvalues[i]) + 2;
	r = lmdb_replace(dst, dst, mode, owner, lmdb_map_size(need),
	    lmdb_fill_update, &u, err);
out:
	if (u.old != NULL)
		mdb_env_close(u.old);
	for (i = 0; i < u.ndel; i++)
		free(u.del[i]);
	free(u.del);
	close(lock);
	free(dst);
	return r;
}
