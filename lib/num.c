/*
 * num - checked number parsing. See num.h.
 */
#include "autoconf.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "num.h"

/* Digits only, stopping at the first non-digit; returns where it stopped. */
static const char *
scan_digits(const char *s, unsigned long *out, int *overflow)
{
	unsigned long v = 0;

	*overflow = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (ULONG_MAX - d) / 10)
			*overflow = 1;
		else
			v = v * 10 + d;
	}
	*out = v;
	return s;
}

int
parse_ulong(const char *s, unsigned long min, unsigned long max,
    unsigned long *out)
{
	unsigned long v;
	const char *end;
	int overflow;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	end = scan_digits(s, &v, &overflow);
	if (*end != '\0' || overflow || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
parse_int(const char *s, int min, int max, int *out)
{
	unsigned long v;

	if (min < 0)
		return -1;	/* negative numbers are never needed */
	if (parse_ulong(s, (unsigned long)min, (unsigned long)max, &v) < 0)
		return -1;
	*out = (int)v;
	return 0;
}

int
parse_size(const char *s, size_t *out)
{
	unsigned long v;

	if (parse_ulong(s, 0, SIZE_MAX < ULONG_MAX ? SIZE_MAX : ULONG_MAX,
	    &v) < 0)
		return -1;
	*out = (size_t)v;
	return 0;
}

int
parse_time(const char *s, int default_unit, unsigned long max,
    unsigned long *out)
{
	unsigned long v, mult;
	const char *end;
	int overflow, unit;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	end = scan_digits(s, &v, &overflow);
	if (overflow)
		return -1;
	if (*end == '\0')
		unit = default_unit;
	else if (end[1] == '\0')
		unit = *end;
	else
		return -1;
	switch (unit) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	case 'w': mult = 7 * 86400; break;
	default: return -1;
	}
	if (v > ULONG_MAX / mult || v * mult > max)
		return -1;
	*out = v * mult;
	return 0;
}

int
parse_bool(const char *s, int *out)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}
