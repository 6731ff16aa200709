/*
 * num - checked parsing of numbers from configuration and peers.
 *
 * Every function accepts only plain decimal digits (no sign, no leading
 * white space, no trailing junk), rejects values that overflow or fall
 * outside [min, max], and returns 0 with the value stored, or -1 with
 * *out untouched. parse_time() takes Postfix time values: a number with
 * an optional unit s, m, h, d, w (default unit given by the caller).
 * parse_bool() takes yes/no/true/false/on/off/1/0, any case.
 */
#ifndef TERN_NUM_H
#define TERN_NUM_H

#include <stddef.h>

int	parse_ulong(const char *, unsigned long min, unsigned long max,
	    unsigned long *out);
int	parse_int(const char *, int min, int max, int *out);
int	parse_size(const char *, size_t *out);
/* Seconds; default_unit is 's', 'm', 'h', 'd' or 'w'. */
int	parse_time(const char *, int default_unit, unsigned long max,
	    unsigned long *out);
int	parse_bool(const char *, int *out);

#endif
