/*
 * qmgr_backoff - when to try a deferred message again and when it has
 * been queued too long.
 *
 * Called by qmgr_message.c when a message leaves active/ with recipients
 * still to deliver. Pure functions of their arguments, so
 * tests/unit/test_qmgr_backoff.c pins them down; nothing here fails.
 *
 * The retry interval is the message's age, kept between
 * minimal_backoff_time and maximal_backoff_time: a message tried at age
 * t is next tried at about 2t, so attempts double apart as it ages, the
 * way operators expect from Postfix, and a fresh message is retried
 * soon while a week-old one does not hammer a dead destination.
 */
#include "autoconf.h"

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
