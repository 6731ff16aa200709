/*
 * alloc - checked memory allocation.
 *
 * Every Tern program allocates through these. When memory runs out the
 * process logs "fatal: out of memory" and exits, so callers never test
 * the result for NULL.
 */
#ifndef TERN_ALLOC_H
#define TERN_ALLOC_H

#include <stddef.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
char	*xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));

#endif
