/*
 * test_qmgr_sync - qmgr's done-mark syncing off the event loop
 * (qmgr/qmgr_sync.c): every message handed over comes back exactly
 * once through qmgr_message_synced(), in the loop's thread, with the
 * error of its sync; a stop waits for what was handed over.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "event.h"
#include "qmgr.h"
#include "queue.h"

struct qmgr_state qmgr;

/* What qmgr_message.c would be told: per message, how often and with
 * which error, and whether in the loop's thread. */
#define NMSG	64
static struct qmgr_message msgs[NMSG];
static struct queue_msg qms[NMSG];
static int synced[NMSG], errs[NMSG], wrong_thread;
static size_t nsynced, want;
static pthread_t loop_thread;

void
qmgr_message_synced(struct qmgr_message *msg, int err)
{
	size_t i = (size_t)(msg - msgs);

	assert_true(i < NMSG);
	if (!pthread_equal(pthread_self(), loop_thread))
		wrong_thread++;
	synced[i]++;
	errs[i] = err;
	if (++nsynced == want)
		event_loop_stop(qmgr.loop);
}

int
qmgr_busy(void)
{
	return qmgr_sync_pending() > 0;
}

static void
give_up(void *ctx)
{
	(void)ctx;
	fail_msg("the sync thread did not answer in 10 s");
}

static char tmpl[] = "/tmp/test_qmgr_sync.XXXXXX";

/* Message i with a file of its own holding one written "mark". */
static void
make_msg(size_t i)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "%s/%zu", tmpl, i);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "T", 1, 0), 1);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(pwrite(fd, "D", 1, 0), 1);
	memset(&qms[i], 0, sizeof(qms[i]));
	qms[i].fd = fd;
	memset(&msgs[i], 0, sizeof(msgs[i]));
	msgs[i].qm = &qms[i];
}

static void
run(size_t n)
{
	want = n;
	event_timer_add(qmgr.loop, 10000, give_up, NULL);
	assert_int_equal(event_loop_run(qmgr.loop), 0);
}

static int
setup(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(tmpl));
	loop_thread = pthread_self();
	qmgr.loop = event_loop_new();
	qmgr_sync_init();
	memset(synced, 0, sizeof(synced));
	nsynced = 0;
	wrong_thread = 0;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	qmgr_sync_shutdown();
	event_loop_free(qmgr.loop);
	qmgr.loop = NULL;
	for (size_t i = 0; i < NMSG; i++)
		if (qms[i].fd > 0)
			(void)close(qms[i].fd);
	memset(qms, 0, sizeof(qms));
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpl);
	assert_int_equal(system(cmd), 0);
	strcpy(tmpl, "/tmp/test_qmgr_sync.XXXXXX");
	return 0;
}

/* Many at once (batches form while the thread waits for the disk):
 * each comes back once, without error, in the loop's thread. */
static void
test_every_message_comes_back_once(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NMSG; i++) {
		make_msg(i);
		assert_int_equal(qmgr_sync_submit(&msgs[i]), 0);
	}
	assert_int_equal(qmgr_sync_pending(), NMSG);
	run(NMSG);
	for (i = 0; i < NMSG; i++) {
		assert_int_equal(synced[i], 1);
		assert_int_equal(errs[i], 0);
	}
	assert_int_equal(wrong_thread, 0);
	assert_int_equal(qmgr_sync_pending(), 0);
}

/* A file that cannot be synced is reported as such. */
static void
test_a_failed_sync_is_reported(void **state)
{
	(void)state;
	make_msg(0);
	qms[0].fd = -1;			/* EBADF */
	assert_int_equal(qmgr_sync_submit(&msgs[0]), 0);
	run(1);
	assert_int_equal(synced[0], 1);
	assert_int_equal(errs[0], EBADF);
}

/* A stop (qmgr_sync_shutdown) with messages handed over waits for their
 * syncs and returns; nothing is reported after it. */
static void
test_shutdown_waits_for_the_syncs(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < 8; i++) {
		make_msg(i);
		assert_int_equal(qmgr_sync_submit(&msgs[i]), 0);
	}
	qmgr_sync_shutdown();
	assert_int_equal(qmgr_sync_pending(), 0);
	assert_int_equal(nsynced, 0);
	/* Without threads, the caller syncs in place. */
	assert_int_equal(qmgr_sync_submit(&msgs[0]), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_every_message_comes_back_once, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_failed_sync_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_shutdown_waits_for_the_syncs, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
