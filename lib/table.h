/*
 * table - lookup tables, named "type:name" as in Postfix.
 *
 * One interface over a small set of backends, each a file of its own
 * (table_lmdb.c, table_texthash.c, ...) implementing struct table_ops:
 *	lmdb:/path	LMDB file /path.lmdb built by ternmap
 *	texthash:/path	the text file, read when the table is opened
 *	inline:{ k1=v1, { k2 = v with, comma } }
 *	static:value	every key maps to value
 *	regexp:/path	"/pattern/flags result" lines, if/endif
 *	cidr:/path	"network/prefix result" lines, IPv4 and IPv6
 *	unix:passwd.byname  the local users (lib/localuser.h)
 * "proxy:type:name" is accepted and means "type:name".
 *
 * Keys are looked up case-insensitively (lowercased) except by regexp
 * patterns, which follow their own flags. A table that cannot be read
 * (missing file, corrupt LMDB, bad regexp line) is not "empty": every
 * lookup reports TABLE_ERROR with the reason until the table is fixed,
 * so that callers answer "try again later" instead of acting on a wrong
 * "not found".
 */
#ifndef TERN_TABLE_H
#define TERN_TABLE_H

#include <stdio.h>

#define TABLE_FOUND	1
#define TABLE_NOTFOUND	0
#define TABLE_ERROR	(-1)

struct table;

struct table_ops {
	const char *type;
	/* Open name; 0 or -1 with *err. May leave state in t->priv. */
	int	(*open)(struct table *, const char *name, char **err);
	/* Look up a key already lowercased (unless raw_keys); one of
	 * TABLE_FOUND (*value allocated), TABLE_NOTFOUND, TABLE_ERROR. */
	int	(*lookup)(struct table *, const char *key, char **value,
		    char **err);
	void	(*close)(struct table *);
	int	raw_keys;	/* 1: backend sees the key as given */
	/* 1: the name is the table itself (inline:, static:), so an open
	 * that fails means a malformed spec and table_open fails. */
	int	name_is_content;
	/* Optional (ternmap -s): call fn for every entry, keys as stored,
	 * in key order (inline: as written); the first nonzero return
	 * stops the walk and is returned; -1 with *err when the table
	 * cannot be read. NULL for tables that have no list of keys
	 * (static:, regexp:, cidr:, unix:). */
	int	(*walk)(struct table *,
		    int (*fn)(const char *key, const char *value, void *ctx),
		    void *ctx, char **err);
};

struct table {
	const struct table_ops *ops;
	char	*spec;		/* "type:name" as given */
	char	*name;		/* the part after "type:" */
	char	*open_err;	/* set when open failed; lookups report it */
	void	*priv;		/* backend state */
};

/* Open a table. NULL with *err only for a malformed spec or unknown
 * type; an unreadable table opens and reports errors at lookup. */
struct table *table_open(const char *spec, char **err);
void	table_close(struct table *);

/* Look up key; TABLE_FOUND (*value allocated), TABLE_NOTFOUND, or
 * TABLE_ERROR (*err allocated). */
int	table_lookup(struct table *, const char *key, char **value,
	    char **err);

/*
 * Look up an address the way Postfix does for access and virtual maps:
 * "user@domain", then "user" (only when with_user is set, e.g. the
 * domain is local), then "@domain". The first hit wins.
 */
int	table_lookup_addr(struct table *, const char *addr, int with_user,
	    char **value, char **err);

/*
 * List every entry of t (see walk in struct table_ops). -1 with *err
 * when the table cannot be read or its type has no list of keys.
 */
int	table_walk(struct table *,
	    int (*fn)(const char *key, const char *value, void *ctx),
	    void *ctx, char **err);

/* For backends: lowercase s in place (ASCII), as lookups fold keys. */
void	table_fold(char *s);

/* The backends, for the registry in table.c. */
extern const struct table_ops table_lmdb_ops;
extern const struct table_ops table_texthash_ops;
extern const struct table_ops table_inline_ops;
extern const struct table_ops table_static_ops;
extern const struct table_ops table_regexp_ops;
extern const struct table_ops table_cidr_ops;
extern const struct table_ops table_unix_ops;

/*
 * Parse "key value" / "key: value" text tables (Postfix's format: "#"
 * comments, continuation lines starting with white space). fn is called
 * for each entry with key and value; the first nonzero return stops the
 * walk and is returned. Returns -1 with *err on a malformed line.
 */
int	table_text_walk(const char *path, int aliases_syntax,
	    int (*fn)(const char *key, const char *value, void *ctx),
	    void *ctx, char **err);

/* table_text_walk over an open stream (ternmap -i reads standard
 * input); name stands for the file in messages. */
int	table_text_walk_fp(FILE *fp, const char *name, int aliases_syntax,
	    int (*fn)(const char *key, const char *value, void *ctx),
	    void *ctx, char **err);

/*
 * The line reader under table_text_walk, for backends with a syntax of
 * their own (regexp:, cidr:). fn gets each logical line (comments and
 * blank lines skipped, continuation lines joined with one space, ends
 * trimmed) and the number of the line it began on; it may set *err and
 * return nonzero, which stops the read and is returned. -1 with *err
 * when the file cannot be read or a line is malformed ("path:line: ...").
 */
int	table_text_lines(const char *path,
	    int (*fn)(const char *line, int lineno, void *ctx, char **err),
	    void *ctx, char **err);

/* Build path.lmdb from the text file path, atomically replacing the old
 * one. 0, or -1 with *err. */
int	table_lmdb_build(const char *path, int aliases_syntax, char **err);

/*
 * Change path.lmdb without its text file (ternmap -i and -d): a new
 * file is written with the old entries less the keys in del (folded
 * like lookups) and plus the nadd entries addkeys[i] = addvalues[i]
 * (which replace old values of the same key), then renamed over the
 * old one, as a build is. A missing path.lmdb counts as empty only
 * when there is something to add. *ndeleted (may be NULL) is the
 * number of del keys that were present; when nothing is added and
 * nothing was present the file is left alone. 0, or -1 with *err (a
 * table that cannot be read is never taken as empty). Builds and
 * changes of tables in one folder take turns (an flock on the folder),
 * so none undoes another.
 */
int	table_lmdb_update(const char *path, char *const *del,
	    char *const *addkeys, char *const *addvalues, size_t nadd,
	    size_t *ndeleted, char **err);

/* Call fn for every entry of path.lmdb in key order (ternmap -s); the
 * first nonzero return stops the walk and is returned. -1 with *err
 * when the file cannot be read. */
int	table_lmdb_walk(const char *path,
	    int (*fn)(const char *key, const char *value, void *ctx),
	    void *ctx, char **err);

#endif
