/*
 * ternconf - show and change Tern's configuration, like Postfix's
 * postconf.
 *
 *	ternconf [-c dir] [-dhnx] [-o name=value] [name ...]
 *	ternconf [-c dir] -e name=value ...
 *	ternconf [-c dir] -M [service[/type] ...]
 *	ternconf -m | --man
 *
 * With no option it prints every parameter as "name = value" sorted by
 * name, as written in main.cf or as defaulted; -n only those main.cf
 * sets, -d the defaults, -x with $name expanded, -h the values alone.
 * -e edits main.cf in place: comments, order and other lines stay, an
 * assignment (with its continuation lines) is replaced or appended, and
 * the new file replaces the old by rename after fsync, so a crash
 * leaves one or the other. -M prints master.cf, -m the parameter
 * section of main.cf(5).
 *
 * A configuration error is fatal, naming file, line and reason. An
 * unknown parameter name on the command line is a warning and makes the
 * exit status 1.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "mastercf.h"
#include "strv.h"

#define SHOW_DEFAULTS	0x01	/* -d */
#define SHOW_SET	0x02	/* -n */
#define SHOW_EXPANDED	0x04	/* -x */
#define SHOW_VALUES	0x08	/* -h */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: ternconf [-c dir] [-dhnx] [-o name=value] [name ...]\n"
	    "       ternconf [-c dir] -e name=value ...\n"
	    "       ternconf [-c dir] -M [service[/type] ...]\n"
	    "       ternconf -m | --man\n");
	exit(2);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
print_param(const char *name, int flags)
{
	const char *value = config_raw(name);
	char *expanded = NULL, *err = NULL;

	if (flags & SHOW_EXPANDED) {
		if (param_find(name) != NULL)
			value = config_str(name);
		else if (config_expand(value, &expanded, &err) < 0)
			msg_fatal("%s", err);
		else
			value = expanded;
	}
	if (flags & SHOW_VALUES)
		printf("%s\n", value);
	else if (*value == '\0')
		printf("%s =\n", name);
	else
		printf("%s = %s\n", name, value);
	free(expanded);
}

/* Print the parameters named, or all (or all set); 1 if a name is
 * unknown. */
static int
show_params(char **names, int flags)
{
	char **list = NULL;
	int status = 0;

	if (*names != NULL) {
		for (; *names != NULL; names++) {
			if (config_raw(*names) == NULL ||
			    ((flags & SHOW_DEFAULTS) && !param_find(*names))) {
				msg_warn("%s: unknown parameter", *names);
				status = 1;
			} else if (!(flags & SHOW_SET) ||
			    config_is_set(*names))
				print_param(*names, flags);
		}
		return status;
	}
	list = xcalloc(1, sizeof(char *));
	for (size_t i = 0; i < param_count; i++)
		if (!(flags & SHOW_SET) || config_is_set(param_table[i].name))
			strv_add(&list, param_table[i].name);
	if (flags & SHOW_SET)
		for (char *const *u = config_unknown_names(); *u != NULL; u++)
			strv_add(&list, *u);
	qsort(list, strv_len(list), sizeof(char *), cmp_str);
	for (size_t i = 0; list[i] != NULL; i++)
		print_param(list[i], flags);
	strv_free(list);
	return status;
}

/* Split "name=value"; white space around either is dropped. */
static void
split_setting(const char *arg, char **name, char **value)
{
	const char *eq = strchr(arg, '=');
	const char *start, *end;

	if (eq == NULL)
		msg_fatal("%s: expected name=value", arg);
	start = arg + strspn(arg, " \t");
	end = eq;
	while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*name = xstrndup(start, end - start);
	start = eq + 1 + strspn(eq + 1, " \t");
	end = start + strlen(start);
	while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*value = xstrndup(start, end - start);
}

/* The parameter name an assignment line starts with, or NULL. */
static char *
line_param(const char *line)
{
	size_t n;

	if (*line == ' ' || *line == '\t' || *line == '#')
		return NULL;
	n = strcspn(line, " \t=\r\n");
	if (n == 0)
		return NULL;
	return xstrndup(line, n);
}

static int
blank_or_comment(const char *line)
{
	line += strspn(line, " \t\r\n");
	return *line == '\0' || *line == '#';
}

static void
write_all(int fd, const char *path, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			msg_fatal("write %s: %s", path, strerror(errno));
		}
		data += n;
		len -= (size_t)n;
	}
}

/*
 * ternconf -e: replace or append each name=value in dir/main.cf. The
 * new text goes to a temporary file beside it that is fsynced and then
 * renamed over main.cf, and the folder is fsynced, so main.cf is at
 * every moment either the old file or the new one.
 */
static void
edit_main_cf(const char *dir, char **settings)
{
	char **names = xcalloc(1, sizeof(char *));
	char **values = xcalloc(1, sizeof(char *));
	char *path, *tmp, *line = NULL, *name, *value, *err = NULL;
	int *done, fd, dfd, dropping = 0;
	struct buf out;
	struct stat st;
	size_t cap = 0, n;
	FILE *fp;

	for (; *settings != NULL; settings++) {
		split_setting(*settings, &name, &value);
		if (strpbrk(value, "\r\n") != NULL)
			msg_fatal("%s: a value cannot span lines", name);
		if (config_set(name, value, &err) < 0)
			msg_fatal("%s", err);
		strv_add(&names, name);
		strv_add(&values, value);
		free(name);
		free(value);
	}
	n = strv_len(names);
	done = xcalloc(n + 1, sizeof(int));

	path = xasprintf("%s/main.cf", dir);
	if ((fp = fopen(path, "re")) == NULL)
		msg_fatal("open %s: %s", path, strerror(errno));
	if (fstat(fileno(fp), &st) < 0)
		msg_fatal("stat %s: %s", path, strerror(errno));
	buf_init(&out, BUF_NOMAX);
	while (getline(&line, &cap, fp) != -1) {
		char *lp = line_param(line);
		size_t i = n;

		/* Comment lines do not end a logical line (see config.c):
		 * only the next assignment ends the one being replaced. */
		if (lp == NULL && dropping && !blank_or_comment(line))
			continue;
		if (lp != NULL) {
			dropping = 0;
			for (i = 0; i < n; i++)
				if (strcmp(lp, names[i]) == 0)
					break;
			free(lp);
		}
		if (i < n) {
			buf_printf(&out, "%s = %s\n", names[i], values[i]);
			done[i] = 1;
			dropping = 1;
			continue;
		}
		buf_puts(&out, line);
		if (out.len > 0 && out.data[out.len - 1] != '\n')
			buf_putc(&out, '\n');
	}
	if (ferror(fp))
		msg_fatal("read %s: %s", path, strerror(errno));
	fclose(fp);
	free(line);
	for (size_t i = 0; i < n; i++)
		if (!done[i])
			buf_printf(&out, "%s = %s\n", names[i], values[i]);

	tmp = xasprintf("%s/.main.cf.XXXXXX", dir);
	if ((fd = mkstemp(tmp)) < 0)
		msg_fatal("create %s: %s", tmp, strerror(errno));
	if (fchmod(fd, st.st_mode & 07777) < 0 ||
	    (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)) {
		unlink(tmp);
		msg_fatal("set owner or mode of %s: %s", tmp, strerror(errno));
	}
	write_all(fd, tmp, out.data != NULL ? out.data : "", out.len);
	if (fsync(fd) < 0 || close(fd) < 0) {
		unlink(tmp);
		msg_fatal("write %s: %s", tmp, strerror(errno));
	}
	if (rename(tmp, path) < 0) {
		unlink(tmp);
		msg_fatal("rename %s to %s: %s", tmp, path, strerror(errno));
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	buf_free(&out);
	free(tmp);
	free(path);
	free(done);
	strv_free(names);
	strv_free(values);
}

/* master.cf, one service a line, in normalized columns. */
static int
show_master(const char *dir, char **filters)
{
	struct master_service *svcs;
	char *path, *err = NULL;
	size_t count;
	int status = 0;
	char wakeup[32], maxproc[32];

	path = xasprintf("%s/master.cf", dir);
	if ((svcs = mastercf_load(path, &count, &err)) == NULL)
		msg_fatal("%s", err);
	for (char **f = filters; *f != NULL; f++) {
		int found = 0;

		for (size_t i = 0; i < count && !found; i++) {
			char *id = xasprintf("%s/%s", svcs[i].name,
			    service_type_name(svcs[i].type));

			found = strcmp(*f, svcs[i].name) == 0 ||
			    strcmp(*f, id) == 0;
			free(id);
		}
		if (!found) {
			msg_warn("%s: no such service in %s", *f, path);
			status = 1;
		}
	}
	for (size_t i = 0; i < count; i++) {
		struct master_service *s = &svcs[i];

		if (*filters != NULL) {
			char *id = xasprintf("%s/%s", s->name,
			    service_type_name(s->type));
			int match = strv_contains(filters, s->name) ||
			    strv_contains(filters, id);

			free(id);
			if (!match)
				continue;
		}
		if (s->wakeup == 0)
			snprintf(wakeup, sizeof(wakeup), "-");
		else
			snprintf(wakeup, sizeof(wakeup), "%u", s->wakeup);
		if (s->maxproc < 0)
			snprintf(maxproc, sizeof(maxproc), "-");
		else
			snprintf(maxproc, sizeof(maxproc), "%d", s->maxproc);
		printf("%-10s %-5s %-7s %-7s %-7s %-7s %-7s %s",
		    s->name, service_type_name(s->type),
		    s->private ? "y" : "n", s->unpriv ? "y" : "n",
		    s->chroot ? "y" : "n", wakeup, maxproc, s->command);
		for (char **o = s->overrides; *o != NULL; o++)
			printf(" -o %s", *o);
		for (char **a = s->args; *a != NULL; a++)
			printf(" %s", *a);
		printf("\n");
	}
	mastercf_free(svcs, count);
	free(path);
	return status;
}

/* Text for roff: backslashes and hyphens escaped, no control line. */
static void
roff_text(struct buf *b, const char *s)
{
	if (*s == '.' || *s == '\'')
		buf_puts(b, "\\&");
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			buf_puts(b, "\\e");
		else if (*s == '-')
			buf_puts(b, "\\-");
		else
			buf_putc(b, *s);
	}
}

/*
 * ternconf --man: the PARAMETERS section of main.cf(5), one tagged
 * paragraph per parameter, made from the table so the page cannot
 * disagree with the program.
 */
static void
print_man(void)
{
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	for (size_t i = 0; i < param_count; i++) {
		const struct param_def *p = &param_table[i];

		buf_reset(&b);
		buf_puts(&b, ".TP\n.B ");
		roff_text(&b, p->name);
		buf_puts(&b, "\n");
		if (p->desc[0] >= 'a' && p->desc[0] <= 'z') {
			buf_putc(&b, p->desc[0] - 'a' + 'A');
			roff_text(&b, p->desc + 1);
		} else
			roff_text(&b, p->desc);
		buf_puts(&b, ".\n.br\nType: ");
		buf_puts(&b, param_type_name(p->type));
		if (p->type == PARAM_TIME)
			buf_printf(&b, " (default unit %c)", p->unit);
		buf_puts(&b, "; default: ");
		if (p->defval[0] == '\0')
			buf_puts(&b, "empty");
		else {
			buf_puts(&b, "\\fB");
			roff_text(&b, p->defval);
			buf_puts(&b, "\\fR");
		}
		if (p->type == PARAM_INT || p->type == PARAM_SIZE ||
		    p->type == PARAM_TIME) {
			if (p->max != 0)
				buf_printf(&b, "; from %lu to %lu", p->min,
				    p->max);
			else if (p->min != 0)
				buf_printf(&b, "; at least %lu%s", p->min,
				    p->type == PARAM_TIME ? "s" : "");
		}
		if (p->flags & PARAM_RAW)
			buf_puts(&b, "; $names in it are not main.cf "
			    "parameters");
		buf_puts(&b, ".\n");
		fputs(buf_cstr(&b), stdout);
	}
	buf_free(&b);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "man", no_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL;
	char **overrides = xcalloc(1, sizeof(char *));
	char *err = NULL, *name, *value;
	int ch, flags = 0, edit = 0, master = 0, man = 0, broken = 0;
	int status;

	log_init_tool("ternconf");
	while ((ch = getopt_long(argc, argv, "c:dehmMno:x", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			dir = optarg;
			break;
		case 'd':
			flags |= SHOW_DEFAULTS;
			break;
		case 'e':
			edit = 1;
			break;
		case 'h':
			flags |= SHOW_VALUES;
			break;
		case 'm':
			man = 1;
			break;
		case 'M':
			master = 1;
			break;
		case 'n':
			flags |= SHOW_SET;
			break;
		case 'o':
			strv_add(&overrides, optarg);
			break;
		case 'x':
			flags |= SHOW_EXPANDED;
			break;
		default:
			usage();
		}
	}
	argv += optind;
	if (edit + master + man > 1 ||
	    ((flags & SHOW_DEFAULTS) && (flags & SHOW_SET)) ||
	    (edit && *argv == NULL))
		usage();

	if (man) {
		print_man();
		status = 0;
	} else if (master) {
		status = show_master(dir != NULL ? dir : config_dir(), argv);
	} else {
		if (dir == NULL)
			dir = config_dir();
		/* -d shows the built-in defaults: main.cf is not read. An
		 * edit may be what fixes main.cf, so it goes on over a
		 * main.cf with errors, checking new values against the
		 * defaults alone. */
		if (!(flags & SHOW_DEFAULTS) && config_load(dir, &err) < 0) {
			if (!edit)
				msg_fatal("%s", err);
			msg_warn("%s", err);
			free(err);
			err = NULL;
			broken = 1;
			config_reset();
		}
		for (char **o = overrides; *o != NULL; o++) {
			split_setting(*o, &name, &value);
			if (config_set(name, value, &err) < 0)
				msg_fatal("-o %s: %s", *o, err);
			free(name);
			free(value);
		}
		status = 0;
		if (!edit)
			status = show_params(argv, flags);
		else {
			edit_main_cf(dir, argv);
			if (broken && config_load(dir, &err) < 0) {
				msg_warn("main.cf still has an error: %s", err);
				free(err);
				status = 1;
			}
		}
	}
	strv_free(overrides);
	if (fflush(stdout) != 0 || ferror(stdout))
		msg_fatal("write to standard output: %s", strerror(errno));
	return status;
}
