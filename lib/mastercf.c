/*
 * mastercf - the master.cf reader. See mastercf.h for the columns.
 *
 * The file is read into logical lines the way main.cf is (white space
 * at the start continues a line, "#" lines are skipped), each is split
 * on white space into columns, and each column is checked. Anything
 * master could misread is an error that names the file, the line and
 * the column: too few columns, an unknown service type, a flag that is
 * not y, n or -, a number that does not parse, a service defined twice,
 * a "-o" without name=value. Nothing is half-loaded: on error every
 * service read so far is freed.
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "mastercf.h"
#include "num.h"
#include "strv.h"

#define FIELD_SEPS	" \t"

static const struct {
	const char *name;
	enum service_type type;
} service_types[] = {
	{ "inet", SERVICE_INET },
	{ "unix", SERVICE_UNIX },
	{ "unix-dgram", SERVICE_UNIX_DGRAM },
	{ "fifo", SERVICE_FIFO },
	{ "pass", SERVICE_PASS },
};

const char *
service_type_name(enum service_type type)
{
	for (size_t i = 0; i < sizeof(service_types) / sizeof(service_types[0]);
	    i++)
		if (service_types[i].type == type)
			return service_types[i].name;
	return "unknown";
}

static int
parse_flag(const char *s, int dflt, int *out)
{
	if (strcmp(s, "-") == 0)
		*out = dflt;
	else if (strcmp(s, "y") == 0)
		*out = 1;
	else if (strcmp(s, "n") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

/* The service name must be usable as a socket file name or an address. */
static int
bad_service_name(const char *name, enum service_type type)
{
	if (type == SERVICE_INET)
		return strchr(name, '/') != NULL;
	return strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0;
}

/*
 * One logical line into *svc; -1 with *err ("FILE, line N: ...").
 * Columns: service type private unpriv chroot wakeup maxproc command
 * args...
 */
static int
parse_service(char *text, const char *path, int line,
    struct master_service *svc, char **err)
{
	char **f = strv_split(text, FIELD_SEPS);
	size_t n = strv_len(f), i;
	const char *what = NULL;
	int v, found = 0;
	char *w;

	memset(svc, 0, sizeof(*svc));
	svc->file = xstrdup(path);
	svc->line = line;
	svc->args = xcalloc(1, sizeof(char *));
	svc->overrides = xcalloc(1, sizeof(char *));
	if (n < 8) {
		*err = xasprintf("%s, line %d: service %s has %zu columns, "
		    "expected at least 8: service type private unpriv chroot "
		    "wakeup maxproc command", path, line, f[0], n);
		strv_free(f);
		return -1;
	}
	svc->name = xstrdup(f[0]);
	svc->command = xstrdup(f[7]);
	for (i = 0; i < sizeof(service_types) / sizeof(service_types[0]); i++)
		if (strcmp(f[1], service_types[i].name) == 0) {
			svc->type = service_types[i].type;
			found = 1;
		}
	if (!found) {
		*err = xasprintf("%s, line %d: service %s: bad type \"%s\": "
		    "expected inet, unix, unix-dgram, fifo or pass", path,
		    line, f[0], f[1]);
		goto fail;
	}
	if (bad_service_name(f[0], svc->type)) {
		*err = xasprintf("%s, line %d: bad service name \"%s\"", path,
		    line, f[0]);
		goto fail;
	}
	if (parse_flag(f[2], 1, &svc->private) < 0)
		what = "private";
	else if (parse_flag(f[3], 1, &svc->unpriv) < 0)
		what = "unpriv";
	else if (parse_flag(f[4], 0, &svc->chroot) < 0)
		what = "chroot";
	if (what != NULL) {
		*err = xasprintf("%s, line %d: service %s: bad %s column "
		    "\"%s\": expected y, n or -", path, line, f[0], what,
		    strcmp(what, "private") == 0 ? f[2] :
		    strcmp(what, "unpriv") == 0 ? f[3] : f[4]);
		goto fail;
	}
	/* Postfix's "60?" (wake only a service in use) reads as 60. */
	w = xstrdup(f[5]);
	if (w[0] != '\0' && w[strlen(w) - 1] == '?')
		w[strlen(w) - 1] = '\0';
	if (strcmp(w, "-") == 0)
		svc->wakeup = 0;
	else if (parse_int(w, 0, INT_MAX, &v) == 0)
		svc->wakeup = (unsigned)v;
	else
		what = "wakeup";
	free(w);
	if (what == NULL) {
		if (strcmp(f[6], "-") == 0)
			svc->maxproc = -1;
		else if (parse_int(f[6], 0, INT_MAX, &svc->maxproc) < 0)
			what = "maxproc";
	}
	if (what != NULL) {
		*err = xasprintf("%s, line %d: service %s: bad %s column "
		    "\"%s\": expected a number or -", path, line, f[0], what,
		    strcmp(what, "wakeup") == 0 ? f[5] : f[6]);
		goto fail;
	}
	for (i = 8; i < n; i++) {
		if (strcmp(f[i], "-o") != 0) {
			strv_add(&svc->args, f[i]);
			continue;
		}
		if (i + 1 >= n) {
			*err = xasprintf("%s, line %d: service %s: -o without "
			    "name=value", path, line, f[0]);
			goto fail;
		}
		i++;
		w = strchr(f[i], '=');
		if (w == NULL || w == f[i]) {
			*err = xasprintf("%s, line %d: service %s: bad -o "
			    "\"%s\": expected name=value without spaces", path,
			    line, f[0], f[i]);
			goto fail;
		}
		strv_add(&svc->overrides, f[i]);
	}
	strv_free(f);
	return 0;
fail:
	strv_free(f);
	return -1;
}

static void
service_free(struct master_service *svc)
{
	free(svc->name);
	free(svc->command);
	strv_free(svc->args);
	strv_free(svc->overrides);
	free(svc->file);
}

void
mastercf_free(struct master_service *svcs, size_t count)
{
	if (svcs == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		service_free(&svcs[i]);
	free(svcs);
}

/* Add the service of one logical line; -1 with *err. */
static int
add_service(struct master_service **svcs, size_t *n, char *text,
    const char *path, int line, char **err)
{
	struct master_service svc;

	if (parse_service(text, path, line, &svc, err) < 0) {
		service_free(&svc);
		return -1;
	}
	for (size_t i = 0; i < *n; i++) {
		if (strcmp((*svcs)[i].name, svc.name) == 0 &&
		    (*svcs)[i].type == svc.type) {
			*err = xasprintf("%s, line %d: service %s/%s is already "
			    "defined on line %d", path, line, svc.name,
			    service_type_name(svc.type), (*svcs)[i].line);
			service_free(&svc);
			return -1;
		}
	}
	*svcs = xreallocarray(*svcs, *n + 1, sizeof(**svcs));
	(*svcs)[(*n)++] = svc;
	return 0;
}

static void
trim_right(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && strchr(" \t\r\n", s[n - 1]) != NULL)
		s[--n] = '\0';
}

struct master_service *
mastercf_load(const char *path, size_t *count, char **err)
{
	struct master_service *svcs = NULL;
	struct buf logical;
	char *line = NULL;
	size_t cap = 0, n = 0;
	int lineno = 0, start = 0, rc = 0;
	FILE *fp;

	*count = 0;
	if ((fp = fopen(path, "re")) == NULL) {
		*err = xasprintf("cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	buf_init(&logical, BUF_NOMAX);
	while (rc == 0 && getline(&line, &cap, fp) != -1) {
		const char *p;

		lineno++;
		trim_right(line);
		p = line + strspn(line, FIELD_SEPS);
		if (*p == '\0' || *p == '#')
			continue;
		if (p != line) {
			if (start == 0) {
				*err = xasprintf("%s, line %d: continuation "
				    "line without a service before it", path,
				    lineno);
				rc = -1;
				break;
			}
			buf_putc(&logical, ' ');
			buf_puts(&logical, p);
			continue;
		}
		if (start != 0)
			rc = add_service(&svcs, &n, logical.data, path, start,
			    err);
		buf_reset(&logical);
		buf_puts(&logical, line);
		start = lineno;
	}
	if (rc == 0 && ferror(fp)) {
		*err = xasprintf("%s: read error: %s", path, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && start != 0)
		rc = add_service(&svcs, &n, logical.data, path, start, err);
	fclose(fp);
	free(line);
	buf_free(&logical);
	if (rc < 0) {
		mastercf_free(svcs, n);
		return NULL;
	}
	*count = n;
	/* An empty file is valid: return a non-NULL empty array. */
	return svcs != NULL ? svcs : xcalloc(1, sizeof(*svcs));
}
