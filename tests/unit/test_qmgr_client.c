/*
 * test_qmgr_client - the requests lib/qmgr_client.c sends to qmgr's
 * socket and how it reports a qmgr that is down or answers nonsense. A
 * forked child plays qmgr: it takes one connection, reports the request
 * it read over a pipe and answers as the test says.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "attr.h"
#include "qmgr_client.h"
#include "stream.h"

static char dir[] = "/tmp/test_qmgr_client.XXXXXX";

static int
setup(void **state)
{
	char *p;

	if (mkdtemp(dir) == NULL)
		return -1;
	p = xasprintf("%s/public", dir);
	mkdir(p, 0700);
	free(p);
	p = xasprintf("%s/private", dir);
	mkdir(p, 0700);
	free(p);
	return 0;
}

static int
teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);

	assert_int_equal(system(cmd), 0);
	free(cmd);
	return 0;
}

static int
listen_at(const char *where)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s/qmgr", dir,
	    where);
	unlink(sun.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/*
 * Play qmgr for one connection in a child: the request comes back as
 * "name=value;..." text through *report_fd; reply is sent as is.
 */
static pid_t
fake_qmgr(int lfd, const char *reply, int *report_fd)
{
	int pfd[2], fd;
	struct stream *s;
	struct attrs a;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	if ((pid = fork()) == 0) {
		close(pfd[0]);
		fd = accept(lfd, NULL, NULL);
		s = stream_new(fd, 5000);
		attrs_init(&a);
		if (attr_recv(s, &a, 1024, 16) == 0)
			for (size_t i = 0; i < a.n; i++)
				dprintf(pfd[1], "%s=%s;", a.v[i].name,
				    a.v[i].value);
		/* "": no answer (reply=no); the client is gone already. */
		if (reply[0] != '\0' && write(fd, reply, strlen(reply)) < 0)
			_exit(1);
		stream_free(s);
		_exit(0);
	}
	close(pfd[1]);
	*report_fd = pfd[0];
	return pid;
}

static char *
read_report(int fd)
{
	char buf[1024];
	ssize_t n, len = 0;

	while ((n = read(fd, buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
		len += n;
	buf[len] = '\0';
	close(fd);
	return xstrdup(buf);
}

static void
finish(pid_t pid, int lfd)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(lfd);
}

static void
notify_new_sends_the_queue_id_and_succeeds(void **state)
{
	int lfd = listen_at("public"), rfd;
	pid_t pid = fake_qmgr(lfd, "", &rfd);
	char *got;

	/* Sent without waiting for an answer: qmgr gives none. */
	assert_int_equal(qmgr_notify_new(dir, "0123456789ABCDEF"), 0);
	got = read_report(rfd);
	assert_string_equal(got,
	    "request=new;queue_id=0123456789ABCDEF;reply=no;");
	free(got);
	finish(pid, lfd);
}

static void
flush_sends_the_site_only_when_given(void **state)
{
	int lfd = listen_at("public"), rfd;
	pid_t pid = fake_qmgr(lfd, "status=0\n\n", &rfd);
	char *got;

	assert_int_equal(qmgr_flush(dir, "example.com"), 0);
	got = read_report(rfd);
	assert_string_equal(got, "request=flush;site=example.com;");
	free(got);
	finish(pid, lfd);

	lfd = listen_at("public");
	pid = fake_qmgr(lfd, "status=0\n\n", &rfd);
	assert_int_equal(qmgr_flush(dir, NULL), 0);
	got = read_report(rfd);
	assert_string_equal(got, "request=flush;");
	free(got);
	finish(pid, lfd);
}

static void
deliver_now_sends_the_queue_id(void **state)
{
	int lfd = listen_at("public"), rfd;
	pid_t pid = fake_qmgr(lfd, "status=0\n\n", &rfd);
	char *got;

	assert_int_equal(qmgr_deliver_now(dir, "0123456789ABCDEF1"), 0);
	got = read_report(rfd);
	assert_string_equal(got,
	    "request=deliver;queue_id=0123456789ABCDEF1;");
	free(got);
	finish(pid, lfd);
}

static void
qmgr_down_is_minus_one_with_errno(void **state)
{
	char *p = xasprintf("%s/public/qmgr", dir);

	unlink(p);
	free(p);
	errno = 0;
	assert_int_equal(qmgr_notify_new(dir, "0123456789ABCDEF"), -1);
	assert_true(errno != 0);
}

static void
reply_without_status_is_an_error(void **state)
{
	int lfd = listen_at("public"), rfd;
	pid_t pid = fake_qmgr(lfd, "hello=world\n\n", &rfd);
	char *got;

	errno = 0;
	assert_int_equal(qmgr_deliver_now(dir, "0123456789ABCDEF"), -1);
	assert_int_equal(errno, EPROTO);
	got = read_report(rfd);
	free(got);
	finish(pid, lfd);
}

/* Ask for a delete or hold, qmgr answering reply; the return value
 * and what qmgr was sent. */
static int
cancel_with_reply(int hold, const char *reply, long *deliveries,
    char **why, char **sent)
{
	int lfd = listen_at("public"), rfd, r;
	pid_t pid = fake_qmgr(lfd, reply, &rfd);

	r = qmgr_cancel(dir, "0123456789ABCDEF1", hold, deliveries, why);
	*sent = read_report(rfd);
	finish(pid, lfd);
	return r;
}

static void
cancel_reports_done_pending_and_notfound(void **state)
{
	long n = -1;
	char *why = NULL, *sent;

	assert_int_equal(cancel_with_reply(0, "status=0\nresult=done\n\n",
	    &n, &why, &sent), QMGR_CANCEL_DONE);
	assert_string_equal(sent,
	    "request=delete;queue_id=0123456789ABCDEF1;");
	assert_null(why);
	free(sent);
	assert_int_equal(cancel_with_reply(1, "status=0\nresult=pending\n"
	    "deliveries=3\n\n", &n, &why, &sent), QMGR_CANCEL_PENDING);
	assert_string_equal(sent, "request=hold;queue_id=0123456789ABCDEF1;");
	assert_int_equal(n, 3);
	free(sent);
	assert_int_equal(cancel_with_reply(1,
	    "status=0\nresult=notfound\n\n", &n, &why, &sent),
	    QMGR_CANCEL_NOTFOUND);
	free(sent);
}

static void
cancel_refused_or_unknown_is_an_error_with_the_reason(void **state)
{
	long n;
	char *why = NULL, *sent;

	/* Refused (not root or mail_owner). */
	assert_int_equal(cancel_with_reply(0, "status=1\nreason=delete is "
	    "for root and mail_owner only\n\n", &n, &why, &sent), -1);
	assert_int_equal(errno, EPROTO);
	assert_string_equal(why, "delete is for root and mail_owner only");
	free(why);
	free(sent);
	/* A status without a result, or a result we do not know, is no
	 * answer (a qmgr from before these requests says status=1). */
	assert_int_equal(cancel_with_reply(0, "status=0\n\n", &n, &why,
	    &sent), -1);
	assert_non_null(why);
	free(why);
	free(sent);
	assert_int_equal(cancel_with_reply(0, "status=0\nresult=maybe\n\n",
	    &n, &why, &sent), -1);
	assert_string_equal(why, "unknown result \"maybe\"");
	free(why);
	free(sent);
}

static void
socket_path_is_public_then_private(void **state)
{
	char *p, *want;
	int lfd;

	p = xasprintf("%s/public/qmgr", dir);
	unlink(p);
	free(p);
	/* Neither exists: the default, public/. */
	p = qmgr_socket_path(dir);
	want = xasprintf("%s/public/qmgr", dir);
	assert_string_equal(p, want);
	free(p);
	free(want);
	/* master.cf marks qmgr private: it is found there. */
	lfd = listen_at("private");
	p = qmgr_socket_path(dir);
	want = xasprintf("%s/private/qmgr", dir);
	assert_string_equal(p, want);
	free(p);
	free(want);
	close(lfd);
	p = xasprintf("%s/private/qmgr", dir);
	unlink(p);
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(notify_new_sends_the_queue_id_and_succeeds),
		cmocka_unit_test(flush_sends_the_site_only_when_given),
		cmocka_unit_test(deliver_now_sends_the_queue_id),
		cmocka_unit_test(qmgr_down_is_minus_one_with_errno),
		cmocka_unit_test(reply_without_status_is_an_error),
		cmocka_unit_test(cancel_reports_done_pending_and_notfound),
		cmocka_unit_test(
		    cancel_refused_or_unknown_is_an_error_with_the_reason),
		cmocka_unit_test(socket_path_is_public_then_private),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
