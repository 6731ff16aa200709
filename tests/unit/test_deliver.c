/*
 * test_deliver - a delivery request and its results survive the trip
 * between qmgr and an agent (a forked child here), and an agent that
 * dies or talks nonsense leaves every recipient deferred, not lost.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "attr.h"
#include "deliver.h"
#include "stream.h"

#define QUEUE_ID	"18A2B3C4D5E6F7A"

static const char *const addrs[] = {
	"alice@example.test",
	"\"john smith\"@example.test",
	"b\xc3\xb6" "b+x=y@example.test",
};

/* The agent's side of the round trip; its exit code says what broke. */
static int
good_agent(int fd)
{
	struct deliver_request req;
	struct stream *s = stream_new(fd, 5000);

	if (deliver_request_recv(s, &req) != 0)
		return 10;
	if (strcmp(req.queue_id, QUEUE_ID) != 0 ||
	    strcmp(req.folder, "active") != 0 ||
	    strcmp(req.sender, "") != 0 ||
	    strcmp(req.nexthop, "[192.0.2.7]:2525") != 0)
		return 11;
	if (req.nrcpts != 3)
		return 12;
	for (size_t i = 0; i < 3; i++)
		if (strcmp(req.rcpts[i].addr, addrs[i]) != 0 ||
		    req.rcpts[i].index != i * 2 + 1)
			return 13;
	deliver_set_result(&req, 0, DELIVER_SENT, "2.0.0",
	    "250 2.0.0 Ok: queued as X");
	deliver_set_result(&req, 1, DELIVER_DEFERRED, "4.4.1",
	    "connect to mx[192.0.2.7]:2525: Connection refused");
	deliver_set_result(&req, 2, DELIVER_BOUNCED, "5.1.1",
	    "550 5.1.1 <b\xc3\xb6" "b>: unknown\nuser\\here");
	req.relay = xstrdup("mx.example.test[192.0.2.7]:2525");
	if (deliver_reply_send(s, &req) != 0)
		return 14;
	deliver_request_free(&req);
	stream_free(s);
	return 0;
}

/* Reads the request, then sends half a reply and dies. */
static int
dying_agent(int fd)
{
	struct deliver_request req;
	struct stream *s = stream_new(fd, 5000);
	static const char half[] = "result=1 sent 2.0.0 ok\nresult=3 se";

	if (deliver_request_recv(s, &req) != 0)
		return 10;
	if (write(fd, half, sizeof(half) - 1) < 0)
		return 11;
	_exit(0);
}

/* Reads the request, then answers with the given raw text. */
static const char *raw_reply;

static int
raw_agent(int fd)
{
	struct deliver_request req;
	struct stream *s = stream_new(fd, 5000);

	if (deliver_request_recv(s, &req) != 0)
		return 10;
	if (write(fd, raw_reply, strlen(raw_reply)) < 0)
		return 11;
	deliver_request_free(&req);
	stream_free(s);
	return 0;
}

/* Checks what qmgr sends for the log, then says it logged. */
static int
extras_agent(int fd)
{
	struct deliver_request req;
	struct stream *s = stream_new(fd, 5000);

	if (deliver_request_recv(s, &req) != 0)
		return 10;
	if (req.rcpts[0].orig != NULL || req.rcpts[2].orig != NULL ||
	    req.rcpts[1].orig == NULL ||
	    strcmp(req.rcpts[1].orig, "info@example.test") != 0)
		return 11;
	if (req.t_arrival != 1700000000.25 || req.t_active != 1700000001.5 ||
	    req.t_start != 1700000002.75 || !req.fallback || req.t_recv <= 0)
		return 12;
	for (size_t i = 0; i < 3; i++)
		deliver_set_result(&req, i, DELIVER_SENT, "2.0.0", "ok");
	req.logged = 1;
	if (deliver_reply_send(s, &req) != 0)
		return 14;
	deliver_request_free(&req);
	stream_free(s);
	return 0;
}

static void
make_request(struct deliver_request *req)
{
	memset(req, 0, sizeof(*req));
	req->queue_id = xstrdup(QUEUE_ID);
	req->folder = xstrdup("active");
	req->sender = xstrdup("");
	req->nexthop = xstrdup("[192.0.2.7]:2525");
	for (size_t i = 0; i < 3; i++)
		deliver_add_rcpt(req, i * 2 + 1, addrs[i]);
}

/* Run agent in a child on one end of a socketpair; the stream for the
 * other end into *s; the child's pid returned. */
static pid_t
start_agent(int (*agent)(int), struct stream **s)
{
	int sv[2];
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		_exit(agent(sv[1]));
	}
	close(sv[1]);
	*s = stream_new(sv[0], 5000);
	return pid;
}

static int
agent_exit(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
request_and_results_round_trip(void **state)
{
	struct deliver_request req;
	struct stream *s;
	pid_t pid;

	make_request(&req);
	pid = start_agent(good_agent, &s);
	assert_int_equal(deliver_call(s, &req), 0);
	assert_int_equal(agent_exit(pid), 0);
	assert_int_equal(req.rcpts[0].status, DELIVER_SENT);
	assert_string_equal(req.rcpts[0].dsn, "2.0.0");
	assert_string_equal(req.rcpts[0].reason, "250 2.0.0 Ok: queued as X");
	assert_int_equal(req.rcpts[1].status, DELIVER_DEFERRED);
	assert_string_equal(req.rcpts[1].dsn, "4.4.1");
	assert_string_equal(req.rcpts[1].reason,
	    "connect to mx[192.0.2.7]:2525: Connection refused");
	assert_int_equal(req.rcpts[2].status, DELIVER_BOUNCED);
	assert_string_equal(req.rcpts[2].dsn, "5.1.1");
	assert_string_equal(req.rcpts[2].reason,
	    "550 5.1.1 <b\xc3\xb6" "b>: unknown\nuser\\here");
	assert_string_equal(req.relay, "mx.example.test[192.0.2.7]:2525");
	deliver_request_free(&req);
	assert_null(req.rcpts);
	assert_int_equal(req.nrcpts, 0);
	stream_free(s);
}

static void
assert_all_deferred(const struct deliver_request *req)
{
	for (size_t i = 0; i < req->nrcpts; i++) {
		assert_int_equal(req->rcpts[i].status, DELIVER_DEFERRED);
		assert_string_equal(req->rcpts[i].dsn, "4.3.0");
		assert_non_null(strstr(req->rcpts[i].reason,
		    "delivery agent failed"));
	}
}

static void
orig_times_fallback_and_logged_travel_both_ways(void **state)
{
	struct deliver_request req;
	struct stream *s;
	pid_t pid;

	make_request(&req);
	req.rcpts[1].orig = xstrdup("info@example.test");
	req.t_arrival = 1700000000.25;
	req.t_active = 1700000001.5;
	req.t_start = 1700000002.75;
	req.fallback = 1;
	pid = start_agent(extras_agent, &s);
	assert_int_equal(deliver_call(s, &req), 0);
	assert_int_equal(agent_exit(pid), 0);
	assert_true(req.logged);
	deliver_request_free(&req);
	stream_free(s);

	/* Without them: nothing invented, and qmgr is told nothing was
	 * logged. */
	make_request(&req);
	pid = start_agent(good_agent, &s);
	assert_int_equal(deliver_call(s, &req), 0);
	assert_int_equal(agent_exit(pid), 0);
	assert_false(req.logged);
	deliver_request_free(&req);
	stream_free(s);
}

static void
agent_dying_mid_reply_is_an_error_and_defers_all(void **state)
{
	struct deliver_request req;
	struct stream *s;
	pid_t pid;

	make_request(&req);
	pid = start_agent(dying_agent, &s);
	assert_int_equal(deliver_call(s, &req), STREAM_EOF);
	assert_int_equal(agent_exit(pid), 0);
	assert_all_deferred(&req);
	assert_null(req.relay);
	deliver_request_free(&req);
	stream_free(s);
}

static int
vanishing_agent(int fd)
{
	return 0;
}

static void
agent_gone_before_reading_is_an_error(void **state)
{
	struct deliver_request req;
	struct stream *s;
	pid_t pid;
	int r;

	make_request(&req);
	pid = start_agent(vanishing_agent, &s);
	assert_int_equal(agent_exit(pid), 0);
	/* EOF on read, or EPIPE on write: an error either way, no signal. */
	r = deliver_call(s, &req);
	assert_true(r == STREAM_EOF || r == STREAM_ERROR);
	assert_all_deferred(&req);
	deliver_request_free(&req);
	stream_free(s);
}

static void
bad_replies_are_protocol_errors(void **state)
{
	static const char *const bad[] = {
		/* no status */
		"result=1 sent 2.0.0 a\nresult=3 sent 2.0.0 b\n"
		"result=5 sent 2.0.0 c\n\n",
		/* a recipient without a result */
		"result=1 sent 2.0.0 a\nresult=3 sent 2.0.0 b\nstatus=0\n\n",
		/* a result for a recipient not in the request */
		"result=1 sent 2.0.0 a\nresult=3 sent 2.0.0 b\n"
		"result=5 sent 2.0.0 c\nresult=7 sent 2.0.0 d\nstatus=0\n\n",
		/* the same recipient twice */
		"result=1 sent 2.0.0 a\nresult=1 sent 2.0.0 b\n"
		"result=5 sent 2.0.0 c\nstatus=0\n\n",
		/* unknown status word */
		"result=1 sent 2.0.0 a\nresult=3 lost 2.0.0 b\n"
		"result=5 sent 2.0.0 c\nstatus=0\n\n",
		/* reason not xtext */
		"result=1 sent 2.0.0 a b\nresult=3 sent 2.0.0 b\n"
		"result=5 sent 2.0.0 c\nstatus=0\n\n",
		/* missing fields */
		"result=1 sent\nresult=3 sent 2.0.0 b\n"
		"result=5 sent 2.0.0 c\nstatus=0\n\n",
		/* status other than 0 */
		"result=1 sent 2.0.0 a\nresult=3 sent 2.0.0 b\n"
		"result=5 sent 2.0.0 c\nstatus=1\n\n",
	};
	struct deliver_request req;
	struct stream *s;
	pid_t pid;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		make_request(&req);
		raw_reply = bad[i];
		pid = start_agent(raw_agent, &s);
		errno = 0;
		if (deliver_call(s, &req) != STREAM_ERROR)
			fail_msg("reply %zu was accepted", i);
		assert_int_equal(s->err, EPROTO);
		assert_int_equal(agent_exit(pid), 0);
		assert_all_deferred(&req);
		deliver_request_free(&req);
		stream_free(s);
	}
	/* The same shape, well formed, is accepted: the cases are sound. */
	make_request(&req);
	raw_reply = "result=5 bounced 5.0.0 c\nresult=1 sent 2.0.0 a\n"
	    "result=3 deferred 4.0.0 b+20c\nstatus=0\n\n";
	pid = start_agent(raw_agent, &s);
	assert_int_equal(deliver_call(s, &req), 0);
	assert_int_equal(agent_exit(pid), 0);
	assert_int_equal(req.rcpts[2].status, DELIVER_BOUNCED);
	assert_string_equal(req.rcpts[1].reason, "b c");
	assert_null(req.relay);
	deliver_request_free(&req);
	stream_free(s);
}

static void
agent_refuses_bad_requests(void **state)
{
	static const char *const bad[] = {
		"request=flush\nqueue_id=" QUEUE_ID "\nfolder=active\n"
		"sender=\nrcpt=0 a@b\n\n",
		"request=deliver\nqueue_id=../../x\nfolder=active\n"
		"sender=\nrcpt=0 a@b\n\n",
		"request=deliver\nqueue_id=" QUEUE_ID "\nfolder=public\n"
		"sender=\nrcpt=0 a@b\n\n",
		"request=deliver\nqueue_id=" QUEUE_ID "\nfolder=active\n"
		"rcpt=0 a@b\n\n",
		"request=deliver\nqueue_id=" QUEUE_ID "\nfolder=active\n"
		"sender=\n\n",
		"request=deliver\nqueue_id=" QUEUE_ID "\nfolder=active\n"
		"sender=\nrcpt=x a@b\n\n",
		"request=deliver\nqueue_id=" QUEUE_ID "\nfolder=active\n"
		"sender=\nrcpt=0 a b\n\n",
		"request=deliver\nqueue_id=" QUEUE_ID "\nfolder=active\n"
		"sender=\nrcpt=0\n\n",
		/* orig= for a recipient not in the request */
		"request=deliver\nqueue_id=" QUEUE_ID "\nfolder=active\n"
		"sender=\nrcpt=0 a@b\norig=1 c@d\n\n",
		"request=deliver\nqueue_id=" QUEUE_ID "\nfolder=active\n"
		"sender=\nrcpt=0 a@b\norig=0\n\n",
		"request=deliver\nqueue_id=" QUEUE_ID "\nfolder=active\n"
		"sender=\nrcpt=0 a@b\ntimes=1 2\n\n",
		"request=deliver\nqueue_id=" QUEUE_ID "\nfolder=active\n"
		"sender=\nrcpt=0 a@b\ntimes=1 2 3x\n\n",
		"request=deliver\nqueue_id=" QUEUE_ID "\nfolder=active\n"
		"sender=\nrcpt=0 a@b\ntimes=1 -2 3\n\n",
	};
	struct deliver_request req;
	struct stream *s;
	int sv[2];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		s = stream_new(sv[0], 2000);
		assert_int_equal(write(sv[1], bad[i], strlen(bad[i])),
		    (ssize_t)strlen(bad[i]));
		if (deliver_request_recv(s, &req) != STREAM_ERROR)
			fail_msg("request %zu was accepted", i);
		assert_int_equal(s->err, EPROTO);
		assert_null(req.queue_id);
		stream_free(s);
		close(sv[1]);
	}
	/* Minimal good request: no nexthop means "". */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s = stream_new(sv[0], 2000);
	{
		const char *ok = "request=deliver\nqueue_id=" QUEUE_ID
		    "\nfolder=deferred\nsender=a+40b\nrcpt=12 x+20y@z\n"
		    "future_attr=1\n\n";

		assert_int_equal(write(sv[1], ok, strlen(ok)),
		    (ssize_t)strlen(ok));
	}
	assert_int_equal(deliver_request_recv(s, &req), 0);
	assert_string_equal(req.folder, "deferred");
	/* Only rcpt addresses are xtext; the sender is as sent. */
	assert_string_equal(req.sender, "a+40b");
	assert_string_equal(req.nexthop, "");
	assert_int_equal(req.nrcpts, 1);
	assert_int_equal(req.rcpts[0].index, 12);
	assert_string_equal(req.rcpts[0].addr, "x y@z");
	/* A result the agent forgot goes back deferred. */
	assert_int_equal(deliver_reply_send(s, &req), 0);
	{
		char wire[256];
		ssize_t n = read(sv[1], wire, sizeof(wire) - 1);

		assert_true(n > 0);
		wire[n] = '\0';
		assert_string_equal(wire, "result=12 deferred 4.3.0 "
		    "delivery+20agent+20gave+20no+20result\nstatus=0\n\n");
	}
	deliver_request_free(&req);
	stream_free(s);
	close(sv[1]);
}

static void
status_names_are_the_protocol_words(void **state)
{
	assert_string_equal(deliver_status_name(DELIVER_SENT), "sent");
	assert_string_equal(deliver_status_name(DELIVER_DEFERRED), "deferred");
	assert_string_equal(deliver_status_name(DELIVER_BOUNCED), "bounced");
}

static void
delays_are_written_like_postfix(void **state)
{
	char b[32];

	deliver_format_delay(b, sizeof(b), 0);
	assert_string_equal(b, "0");
	deliver_format_delay(b, sizeof(b), 0.001);
	assert_string_equal(b, "0");
	deliver_format_delay(b, sizeof(b), -3);
	assert_string_equal(b, "0");
	deliver_format_delay(b, sizeof(b), 0.0054);
	assert_string_equal(b, "0");
	deliver_format_delay(b, sizeof(b), 0.07);
	assert_string_equal(b, "0.07");
	deliver_format_delay(b, sizeof(b), 0.093);
	assert_string_equal(b, "0.09");
	deliver_format_delay(b, sizeof(b), 0.1);
	assert_string_equal(b, "0.1");
	deliver_format_delay(b, sizeof(b), 0.999);
	assert_string_equal(b, "1");
	deliver_format_delay(b, sizeof(b), 0.19);
	assert_string_equal(b, "0.19");
	deliver_format_delay(b, sizeof(b), 1.234);
	assert_string_equal(b, "1.2");
	deliver_format_delay(b, sizeof(b), 43.7);
	assert_string_equal(b, "43");
	deliver_format_delay(b, sizeof(b), 7200);
	assert_string_equal(b, "7200");
	deliver_format_delay(b, sizeof(b), NAN);
	assert_string_equal(b, "0");
}

static void
only_a_request_deferred_wholly_for_network_reasons_is_a_site_failure(
    void **state)
{
	const char *refused[] = { "4.4.1", "4.4.1" };
	const char *dns[] = { "4.4.3" };
	const char *mixed[] = { "4.4.1", "4.2.0" };
	const char *missing[] = { "4.4.1", NULL };
	int all[] = { 1, 1 }, one_sent[] = { 1, 0 };

	assert_true(deliver_site_failure(refused, all, 2));
	assert_true(deliver_site_failure(dns, all, 1));
	/* The server answered for one recipient: it was reached. */
	assert_false(deliver_site_failure(mixed, all, 2));
	assert_false(deliver_site_failure(refused, one_sent, 2));
	assert_false(deliver_site_failure(missing, all, 2));
	assert_false(deliver_site_failure(refused, all, 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(request_and_results_round_trip),
		cmocka_unit_test(
		    agent_dying_mid_reply_is_an_error_and_defers_all),
		cmocka_unit_test(agent_gone_before_reading_is_an_error),
		cmocka_unit_test(bad_replies_are_protocol_errors),
		cmocka_unit_test(agent_refuses_bad_requests),
		cmocka_unit_test(
		    orig_times_fallback_and_logged_travel_both_ways),
		cmocka_unit_test(status_names_are_the_protocol_words),
		cmocka_unit_test(delays_are_written_like_postfix),
		cmocka_unit_test(
	only_a_request_deferred_wholly_for_network_reasons_is_a_site_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
