/*
 * config - main.cf: the parameter table and the reader over it.
 *
 * ONE table (param_table[], in params.c) names every parameter Tern
 * knows: its type, its default (as main.cf text, which may refer to
 * other parameters with $name), a one-line description and its limits.
 * That table drives parsing, validation, `ternconf -d` and the
 * parameter section of main.cf(5).
 *
 * main.cf syntax is Postfix's: "name = value", a line starting with
 * white space continues the previous one, "#" starts a comment line,
 * $name, ${name} and $(name) expand to other parameters (loops are an
 * error, not a hang), ${name?text} gives text when name is not empty and
 * ${name:text} when it is, $$ is a literal $. Lists are separated by
 * commas or white space; an item with braces ("inline:{ a=1, b=2 }")
 * stays whole up to its matching brace.
 *
 * config_load() reads a main.cf: an unknown parameter is a warning
 * naming file and line; a value of the wrong type is an error naming
 * file, line and the expected type. Errors are returned, so that
 * `tern check` can report them; daemons make them fatal.
 *
 * The accessors (config_str, config_int, ...) return the expanded,
 * validated value of a known parameter; asking for a name that is not
 * in the table is a bug (panic).
 */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stddef.h>

enum param_type {
	PARAM_STR,		/* any text */
	PARAM_BOOL,		/* yes / no */
	PARAM_INT,		/* decimal, within [min, max] */
	PARAM_SIZE,		/* bytes, within [min, max] */
	PARAM_TIME,		/* seconds; units s m h d w; default unit in unit */
	PARAM_LIST,		/* comma or white space separated */
};

struct param_def {
	const char	*name;
	enum param_type	 type;
	const char	*defval;	/* main.cf text; may use $name */
	const char	*desc;		/* one line, for ternconf and man page */
	unsigned long	 min;		/* INT, SIZE, TIME */
	unsigned long	 max;		/* INT, SIZE, TIME; 0 = no limit */
	int		 unit;		/* TIME: default unit 's','m','h','d' */
	int		 flags;		/* PARAM_RAW */
};

/* Not expanded when read: $name in the value means something to the
 * program that uses it (forward_path's $home), not another parameter. */
#define PARAM_RAW	0x01

extern const struct param_def param_table[];
extern const size_t param_count;

const struct param_def *param_find(const char *name);
const char *param_type_name(enum param_type);

/*
 * Read dir/main.cf (dir NULL: $TERN_CONFIG_DIR or the built-in
 * default). Returns 0, or -1 with *err ("main.cf, line 12: ...")
 * allocated. Warnings go to the log. A missing main.cf is an error.
 */
int	config_load(const char *dir, char **err);
/* Forget everything loaded and set (tests, reload). */
void	config_reset(void);
/* Override a value (master.cf -o, command line); validated like main.cf.
 * 0, or -1 with *err. */
int	config_set(const char *name, const char *value, char **err);

const char *config_dir(void);		/* the folder main.cf came from */
/* Raw text as written in main.cf (or the default); NULL when the name
 * is neither in the table nor set in main.cf. */
const char *config_raw(const char *name);
/* 1 when main.cf (or config_set) gave it a value. */
int	config_is_set(const char *name);
/* Where it was set: file and line, or NULL/0 for defaults and overrides. */
int	config_where(const char *name, const char **file);

/* Expanded values of known parameters (PARAM_RAW ones: the raw text). */
const char *config_str(const char *name);
int	config_bool(const char *name);
long	config_int(const char *name);
size_t	config_size(const char *name);
unsigned long config_time(const char *name);	/* seconds */
/* A fresh vector of the list's items; strv_free() it. */
char	**config_list(const char *name);

/*
 * Expand $name, ${name}, $(name) in text using the current values;
 * names neither in the table nor set in main.cf expand to nothing (as in
 * Postfix). 0, or -1 with *err on a loop or a syntax error. The result
 * is allocated into *out.
 */
int	config_expand(const char *text, char **out, char **err);

/* Names of parameters set in main.cf that are not in the table, in
 * file order (for ternconf -n); NULL-terminated, owned by config. */
char *const *config_unknown_names(void);

#endif
