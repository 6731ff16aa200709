/*
 * strv - NULL-terminated vectors of strings, the shape of every list
 * Tern reads from main.cf ("a, b c") and hands around.
 */
#ifndef TERN_STRV_H
#define TERN_STRV_H

#include <stddef.h>

/* Split on any of seps (e.g. ", \t\r\n"); empty fields are dropped. */
char	**strv_split(const char *, const char *seps);
void	  strv_add(char ***, const char *);
size_t	  strv_len(char *const *);
void	  strv_free(char **);
/* Case-insensitive membership test. */
int	  strv_contains(char *const *, const char *);

#endif
