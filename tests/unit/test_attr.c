/*
 * test_attr - the IPC framing: escaping is exact and reversible for every
 * byte, limits give STREAM_TOOLONG, a malformed line gives EPROTO, and
 * unix_connect() gives up after its timeout.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/un.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "attr.h"
#include "stream.h"

struct pair {
	struct stream *a;	/* the side under test */
	int	 raw;		/* the other end, written by hand */
};

static int
pair_setup(void **state)
{
	struct pair *p = xcalloc(1, sizeof(*p));
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -1;
	p->a = stream_new(sv[0], 2000);
	p->raw = sv[1];
	*state = p;
	return 0;
}

static int
pair_teardown(void **state)
{
	struct pair *p = *state;

	stream_free(p->a);
	if (p->raw >= 0)
		close(p->raw);
	free(p);
	return 0;
}

static void
feed(struct pair *p, const char *text)
{
	assert_int_equal(write(p->raw, text, strlen(text)),
	    (ssize_t)strlen(text));
}

/* Everything readable on the raw end right now, as a string. */
static char *
drain(struct pair *p)
{
	char *out = xmalloc(65536);
	ssize_t n;

	n = read(p->raw, out, 65535);
	assert_true(n >= 0);
	out[n] = '\0';
	return out;
}

static void
every_byte_value_round_trips(void **state)
{
	struct pair *p = *state;
	struct stream *b;
	struct attrs out, in;
	char all[256];

	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	attrs_init(&out);
	attrs_init(&in);
	attrs_add(&out, "all_bytes", all);
	attrs_add(&out, "empty", "");
	attrs_add(&out, "rcpt", "first");
	attrs_add(&out, "rcpt", "second");
	attrs_addf(&out, "n_2", "%d-%s", 42, "x");
	b = stream_new(dup(p->raw), 2000);
	assert_int_equal(attr_send(b, &out), 0);
	assert_int_equal(attr_recv(p->a, &in, 4096, 16), 0);
	assert_int_equal(in.n, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_string_equal(in.v[i].name, out.v[i].name);
		assert_string_equal(in.v[i].value, out.v[i].value);
	}
	/* Repeated names: all kept in order, attrs_get gives the first. */
	assert_string_equal(attrs_get(&in, "rcpt"), "first");
	assert_string_equal(in.v[3].value, "second");
	assert_string_equal(attrs_get(&in, "n_2"), "42-x");
	assert_null(attrs_get(&in, "missing"));
	attrs_clear(&in);
	attrs_clear(&out);
	assert_int_equal(out.n, 0);
	stream_free(b);
}

static void
escaping_is_exactly_as_documented(void **state)
{
	struct pair *p = *state;
	struct attrs a;
	char *wire;

	attrs_init(&a);
	attrs_add(&a, "v", "a\\b\nc\td\re\x01" "f\x7f" "g=h \xc3\xa9");
	attrs_add(&a, "w", "");
	assert_int_equal(attr_send(p->a, &a), 0);
	wire = drain(p);
	assert_string_equal(wire,
	    "v=a\\\\b\\nc\\td\\re\\x01f\\x7fg=h \xc3\xa9\nw=\n\n");
	free(wire);
	attrs_clear(&a);
}

static void
line_at_the_limit_passes_one_more_byte_is_toolong(void **state)
{
	struct pair *p = *state;
	struct attrs a;
	char line[64];

	attrs_init(&a);
	/* "name=" + 15 bytes = 20 bytes of text, then LF. */
	snprintf(line, sizeof(line), "name=%s\n\n", "123456789012345");
	feed(p, line);
	assert_int_equal(attr_recv(p->a, &a, 20, 8), 0);
	assert_string_equal(attrs_get(&a, "name"), "123456789012345");
	snprintf(line, sizeof(line), "name=%s\n\n", "1234567890123456");
	feed(p, line);
	assert_int_equal(attr_recv(p->a, &a, 20, 8), STREAM_TOOLONG);
	assert_int_equal(a.n, 0);
	attrs_clear(&a);
}

static void
too_many_attributes_is_toolong(void **state)
{
	struct pair *p = *state;
	struct attrs a;

	attrs_init(&a);
	feed(p, "a=1\nb=2\nc=3\n\n");
	assert_int_equal(attr_recv(p->a, &a, 100, 3), 0);
	assert_int_equal(a.n, 3);
	feed(p, "a=1\nb=2\nc=3\nd=4\n\n");
	assert_int_equal(attr_recv(p->a, &a, 100, 3), STREAM_TOOLONG);
	assert_int_equal(a.n, 0);
	attrs_clear(&a);
}

static void
malformed_lines_are_eproto(void **state)
{
	static const char *const bad[] = {
		"novalue\n\n",
		"Upper=x\n\n",
		"=x\n\n",
		"dash-name=x\n\n",
		"a=\\q\n\n",
		"a=\\x00\n\n",
		"a=\\x4\n\n",
		"a=\\xzz\n\n",
		"a=trailing\\\n\n",
	};
	struct pair *p = *state;
	struct stream *s;
	struct attrs a;
	int sv[2];

	attrs_init(&a);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* A fresh pair each time: after an error the stream is done. */
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		s = stream_new(sv[0], 2000);
		assert_int_equal(write(sv[1], bad[i], strlen(bad[i])),
		    (ssize_t)strlen(bad[i]));
		errno = 0;
		if (attr_recv(s, &a, 100, 10) != STREAM_ERROR)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_int_equal(errno, EPROTO);
		assert_int_equal(s->err, EPROTO);
		assert_int_equal(a.n, 0);
		stream_free(s);
		close(sv[1]);
	}
	(void)p;
	attrs_clear(&a);
}

static void
crlf_and_upper_case_hex_are_accepted(void **state)
{
	struct pair *p = *state;
	struct attrs a;

	attrs_init(&a);
	feed(p, "a=x\\x1B\\x1by\r\nb=2\r\n\r\n");
	assert_int_equal(attr_recv(p->a, &a, 100, 10), 0);
	assert_string_equal(attrs_get(&a, "a"), "x\x1b\x1by");
	assert_string_equal(attrs_get(&a, "b"), "2");
	attrs_clear(&a);
}

static void
peer_closing_mid_list_is_eof(void **state)
{
	struct pair *p = *state;
	struct attrs a;

	attrs_init(&a);
	feed(p, "a=1\nb=2\n");
	close(p->raw);
	p->raw = -1;
	assert_int_equal(attr_recv(p->a, &a, 100, 10), STREAM_EOF);
	assert_int_equal(a.n, 0);
	attrs_clear(&a);
}

static void
last_line_without_lf_is_eof(void **state)
{
	struct pair *p = *state;
	struct attrs a;

	attrs_init(&a);
	feed(p, "a=1\nb=2");
	close(p->raw);
	p->raw = -1;
	assert_int_equal(attr_recv(p->a, &a, 100, 10), STREAM_EOF);
	attrs_clear(&a);
}

static void
numbers_are_plain_decimal_only(void **state)
{
	struct attrs a;

	attrs_init(&a);
	attrs_add(&a, "n", "42");
	attrs_add(&a, "zero", "0");
	attrs_add(&a, "neg", "-1");
	attrs_add(&a, "junk", "4x");
	attrs_add(&a, "space", " 4");
	attrs_add(&a, "huge", "99999999999999999999999");
	assert_int_equal(attrs_get_num(&a, "n"), 42);
	assert_int_equal(attrs_get_num(&a, "zero"), 0);
	assert_int_equal(attrs_get_num(&a, "neg"), -1);
	assert_int_equal(attrs_get_num(&a, "junk"), -1);
	assert_int_equal(attrs_get_num(&a, "space"), -1);
	assert_int_equal(attrs_get_num(&a, "huge"), -1);
	assert_int_equal(attrs_get_num(&a, "missing"), -1);
	attrs_clear(&a);
}

static void
sending_a_bad_name_is_a_bug_that_panics(void **state)
{
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct attrs a;

		/* stderr would show the expected panic line: hide it. */
		(void)freopen("/dev/null", "w", stderr);
		attrs_init(&a);
		attrs_add(&a, "Bad-Name", "x");
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
unix_connect_connects_refuses_and_times_out(void **state)
{
	char dir[] = "/tmp/test_attr.XXXXXX", *path, *cmd;
	struct sockaddr_un sun;
	int lfd, fd, extra[256], nextra = 0;
	long long t0;

	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/sock", dir);
	/* Nothing there yet. */
	assert_int_equal(unix_connect(path, 500), -1);
	assert_int_equal(errno, ENOENT);

	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 0), 0);
	fd = unix_connect(path, 500);
	assert_true(fd >= 0);
	close(fd);
	/* Fill the backlog (nobody accepts), then a connect must give up. */
	for (nextra = 0; nextra < 256; nextra++) {
		extra[nextra] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (connect(extra[nextra], (struct sockaddr *)&sun,
		    sizeof(sun)) < 0) {
			close(extra[nextra]);
			break;
		}
	}
	assert_true(nextra < 256);
	t0 = now_ms();
	assert_int_equal(unix_connect(path, 300), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(now_ms() - t0 >= 250);
	assert_true(now_ms() - t0 < 3000);
	for (int i = 0; i < nextra; i++)
		close(extra[i]);
	close(lfd);

	/* A path too long for sun_path. */
	free(path);
	path = xmalloc(200);
	memset(path, 'x', 199);
	path[199] = '\0';
	assert_int_equal(unix_connect(path, 100), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	free(path);
	cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* The kernel's word on who connected; a descriptor that is not a
 * socket has no peer. */
static void
unix_peer_uid_names_the_connecting_user(void **state)
{
	int sv[2], pfd[2];
	uid_t uid = (uid_t)-1;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(unix_peer_uid(sv[0], &uid), 0);
	assert_int_equal(uid, getuid());
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(pipe(pfd), 0);
	uid = 12345;
	assert_int_equal(unix_peer_uid(pfd[0], &uid), -1);
	assert_int_equal(errno, ENOTSOCK);
	assert_int_equal(uid, 12345);
	close(pfd[0]);
	close(pfd[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(every_byte_value_round_trips,
		    pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(
		    escaping_is_exactly_as_documented, pair_setup,
		    pair_teardown),
		cmocka_unit_test_setup_teardown(
		    line_at_the_limit_passes_one_more_byte_is_toolong,
		    pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(too_many_attributes_is_toolong,
		    pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(malformed_lines_are_eproto,
		    pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(
		    crlf_and_upper_case_hex_are_accepted, pair_setup,
		    pair_teardown),
		cmocka_unit_test_setup_teardown(peer_closing_mid_list_is_eof,
		    pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(last_line_without_lf_is_eof,
		    pair_setup, pair_teardown),
		cmocka_unit_test(numbers_are_plain_decimal_only),
		cmocka_unit_test(sending_a_bad_name_is_a_bug_that_panics),
		cmocka_unit_test(unix_connect_connects_refuses_and_times_out),
		cmocka_unit_test(unix_peer_uid_names_the_connecting_user),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
