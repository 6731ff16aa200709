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
 *
 * Failure: a file that is missing, shorter than its own meta page says
 * (truncated: reading it through the map would fault), not built by
 * ternmap, or whose entry count disagrees with the marker is an error at
 * every lookup, never an empty table. The check is cheap and runs at
 * every (re)open; each lookup first stat()s the file.
 */
#include "autoconf.h"

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

const struct table_ops table_lmdb_ops = {
	.type = "lmdb",
	.open = lmdb_open,
	.lookup = lmdb_lookup,
	.close = lmdb_close,
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

/* State of one build pass, handed to the text walk. */
struct lmdb_builder {
	const char *path;	/* the text file, for messages */
	MDB_txn	*txn;
	MDB_dbi	 dbi;
	size_t	 maxkey;
	unsigned long count;
	int	 rc;		/* an LMDB error that stopped the walk */
	char	*err;		/* or a message */
};

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
 * One build of tmp from path with the given map size: 0, LMDB_MAP_FULL
 * (try again larger), or -1 with *err. tmp is left for the caller to
 * rename or remove.
 */
static int
lmdb_build_once(const char *path, const char *tmp, int aliases_syntax,
    mode_t mode, size_t mapsize, char **err)
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
	if (fd < 0 || fchmod(fd, mode) < 0) {
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

	if (table_text_walk(path, aliases_syntax, lmdb_build_put, &b,
	    err) != 0) {
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

/* Make a rename in the folder holding file durable. */
static int
sync_parent(const char *file, char **err)
{
	char *dir, *slash;
	int fd, r = 0;

	dir = xstrdup(file);
	if ((slash = strrchr(dir, '/')) == NULL) {
		free(dir);
		dir = xstrdup(".");
	} else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
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

int
table_lmdb_build(const char *path, int aliases_syntax, char **err)
{
	struct stat sb;
	char *dst, *tmp;
	size_t mapsize;
	int r;

	if (stat(path, &sb) < 0) {
		*err = xasprintf("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		*err = xasprintf("%s: not a regular file", path);
		return -1;
	}
	dst = xasprintf("%s.lmdb", path);
	tmp = xasprintf("%s.tmp-%ld", dst, (long)getpid());

	/* Keys and values with B-tree overhead rarely need 4x the text. */
	mapsize = LMDB_MAP_MIN;
	while (mapsize / 4 < (size_t)sb.st_size && mapsize < (size_t)-1 / 4)
		mapsize *= 2;
	while ((r = lmdb_build_once(path, tmp, aliases_syntax,
	    sb.st_mode & 0666, mapsize, err)) == LMDB_MAP_FULL) {
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
	free(dst);
	free(tmp);
	return r;
}
