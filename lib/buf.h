/*
 * buf - the one growable byte buffer, with an explicit maximum.
 *
 * Anything whose length a peer chooses goes into a buf, never into a
 * fixed array. A buf grows on demand up to its max; an append that would
 * pass max fails with -1 and leaves the buffer as it was, so the caller
 * can answer "line too long" or "message too big" and go on. The data is
 * always NUL-terminated (the NUL is not counted in len), so it can be
 * used as a C string when it holds no NUL of its own.
 */
#ifndef TERN_BUF_H
#define TERN_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;		/* most bytes it may ever hold */
};

#define BUF_NOMAX	((size_t)-1 / 2)

void	 buf_init(struct buf *, size_t max);
void	 buf_free(struct buf *);
void	 buf_reset(struct buf *);
int	 buf_append(struct buf *, const void *, size_t);
int	 buf_puts(struct buf *, const char *);
int	 buf_putc(struct buf *, int);
int	 buf_printf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	 buf_vprintf(struct buf *, const char *, va_list);
/* Drop the first n bytes (consumed input). */
void	 buf_consume(struct buf *, size_t);
/* Give the contents to the caller as a C string; the buf is left empty. */
char	*buf_steal(struct buf *);
/* The contents as a C string (valid until the next change). */
const char *buf_cstr(const struct buf *);

#endif
