/*
 * strv - NULL-terminated string vectors. See strv.h.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "strv.h"

size_t
strv_len(char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

void
strv_add(char ***vp, const char *s)
{
	size_t n = strv_len(*vp);

	*vp = xreallocarray(*vp, n + 2, sizeof(char *));
	(*vp)[n] = xstrdup(s);
	(*vp)[n + 1] = NULL;
}

char **
strv_split(const char *s, const char *seps)
{
	char **v = xcalloc(1, sizeof(char *));
	size_t n;

	while (*s != '\0') {
		s += strspn(s, seps);
		if (*s == '\0')
			break;
		n = strcspn(s, seps);
		{
			char *field = xstrndup(s, n);

			strv_add(&v, field);
			free(field);
		}
		s += n;
	}
	return v;
}

void
strv_free(char **v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

int
strv_contains(char *const *v, const char *s)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		if (strcasecmp(v[i], s) == 0)
			return 1;
	return 0;
}
