/*
 * qmgr_backoff - when to try a deferred message again, when it has been
 * queued too long, and how delays are written in the log.
 *
 * Called by qmgr_message.c when a message leaves active/ with recipients
 * still to deliver. Pure functions of their arguments (and the clock for
 * qmgr_now), so tests/unit/test_qmgr_backoff.c pins them down; nothing
 * here fails.
 *
 * The retry interval is the message's age, kept between
 * minimal_backoff_time and maximal_backoff_time: a message tried at age
 * t is next tried at about 2t, so attempts double apart as it ages, the
 * way operators expect from Postfix, and a fresh message is retried
 * soon while a week-old one does not hammer a dead destination.
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "qmgr.h"

unsigned long
qmgr_backoff(double age, unsigned long min_backoff, unsigned long max_backoff)
{
	unsigned long delay;

	if (max_backoff < min_backoff)
		max_backoff = min_backoff;
	if (!(age > 0))		/* also NaN, and a clock stepped back */
		return min_backoff;
	if (age >= (double)max_backoff)
		return max_backoff;
	delay = (unsigned long)age;
	return delay < min_backoff ? min_backoff : delay;
}

/*
 * Mail from the null sender (bounces) has its own, usually shorter,
 * lifetime: nobody is told when it fails. A lifetime of 0 means one
 * attempt only: the first deferral expires it (as in Postfix).
 */
int
qmgr_expired(double age, int null_sender, unsigned long max_lifetime,
    unsigned long bounce_lifetime)
{
	unsigned long lifetime = null_sender ? bounce_lifetime : max_lifetime;

	return age >= (double)lifetime;
}

void
qmgr_format_delay(char *out, size_t outlen, double seconds)
{
	size_t n;

	if (!(seconds >= 0.01))		/* also negative and NaN */
		snprintf(out, outlen, "0");
	else if (seconds < 1) {
		/* Two decimals at most, as Postfix logs: "0.09", "0.1". */
		snprintf(out, outlen, "%.2f", seconds);
		n = strlen(out);
		while (n > 0 && out[n - 1] == '0')
			out[--n] = '\0';
		if (n > 0 && out[n - 1] == '.')
			out[--n] = '\0';
	} else if (seconds < 10)
		snprintf(out, outlen, "%.2g", seconds);
	else if (seconds > 1e15)	/* a broken clock, not a real delay */
		snprintf(out, outlen, "1000000000000000");
	else
		snprintf(out, outlen, "%llu", (unsigned long long)seconds);
}

double
qmgr_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
