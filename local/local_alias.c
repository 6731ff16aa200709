/*
 * local_alias - the syntax of what an alias, a .forward file or an
 * :include: file says: a list of targets, each an address, "\user", a
 * "|command", a "/file" or an ":include:/file", as in aliases(5).
 *
 * Called by local_recipient.c for each alias value and file it reads.
 * Parsing cannot fail: text that is not a command, a file or an include
 * is an address, and a bad address fails later, when it is delivered,
 * with a reason that names it.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "local.h"

const char *
local_target_kind_name(enum local_target_kind k)
{
	switch (k) {
	case TARGET_ADDRESS:
		return "address";
	case TARGET_MAILBOX:
		return "mailbox";
	case TARGET_COMMAND:
		return "command";
	case TARGET_FILE:
		return "file";
	case TARGET_INCLUDE:
		return "include";
	}
	return "?";
}

/* Classify one trimmed, unquoted target and add it to the list. */
static void
target_add(struct local_target **v, size_t *n, const char *text, int quoted)
{
	struct local_target t;
	const char *p = text;

	if (*p == '\0')
		return;
	if (*p == '|') {
		t.kind = TARGET_COMMAND;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return;
	} else if (*p == '/') {
		t.kind = TARGET_FILE;
	} else if (strncasecmp(p, ":include:", 9) == 0) {
		t.kind = TARGET_INCLUDE;
		p += 9;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return;
	} else if (*p == '\\') {
		t.kind = TARGET_MAILBOX;
		p++;
		if (*p == '\0')
			return;
	} else {
		t.kind = TARGET_ADDRESS;
		/* "<user@domain>" as mail programs write it. */
		if (!quoted && *p == '<' && p[strlen(p) - 1] == '>') {
			t.value = xstrndup(p + 1, strlen(p) - 2);
			goto add;
		}
	}
	t.value = xstrdup(p);
add:
	if (t.value[0] == '\0') {
		free(t.value);
		return;
	}
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = t;
}

/* Trim the collected text and add it as a target. */
static void
target_flush(struct local_target **v, size_t *n, struct buf *cur,
    int quoted)
{
	char *s = cur->data, *e;

	if (cur->len == 0)
		return;
	e = s + cur->len;
	while (s < e && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	*e = '\0';
	target_add(v, n, s, quoted);
	buf_reset(cur);
}

size_t
local_targets_parse(const char *text, struct local_target **out)
{
	struct local_target *v = NULL;
	struct buf cur;
	const char *p;
	size_t n = 0;
	int in_quote = 0, quoted = 0, bol = 1;

	buf_init(&cur, BUF_NOMAX);
	for (p = text; *p != '\0'; p++) {
		if (bol && !in_quote) {
			const char *q = p;

			while (*q == ' ' || *q == '\t')
				q++;
			if (*q == '#') {	/* a comment line */
				while (*q != '\0' && *q != '\n')
					q++;
				p = q;
				if (*p == '\0')
					break;
				continue;
			}
		}
		bol = *p == '\n';
		if (in_quote) {
			if (*p == '"')
				in_quote = 0;
			else if (*p == '\\' && p[1] == '"')
				(void)buf_putc(&cur, *++p);
			else
				(void)buf_putc(&cur, *p);
			continue;
		}
		if (*p == '"') {
			/* The quotes go; what is inside stays whole. */
			in_quote = 1;
			quoted = 1;
			continue;
		}
		if (*p == ',' || *p == '\n') {
			target_flush(&v, &n, &cur, quoted);
			quoted = 0;
			continue;
		}
		(void)buf_putc(&cur, *p);
	}
	target_flush(&v, &n, &cur, quoted);
	buf_free(&cur);
	*out = v;
	return n;
}

void
local_targets_free(struct local_target *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].value);
	free(v);
}
