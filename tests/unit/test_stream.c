/*
 * test_stream - the line reader keeps its limits and bytes exactly, every
 * wait ends at the timeout or the deadline, and a dead peer is an error
 * rather than a SIGPIPE.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "buf.h"
#include "event.h"
#include "stream.h"

/* A stream on one end of a socketpair; *peer is the other end. */
static struct stream *
pair(int *peer, int timeout)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	*peer = sv[1];
	return stream_new(sv[0], timeout);
}

static void
send_all(int fd, const char *s, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, s, n);
		assert_true(w > 0);
		s += w;
		n -= (size_t)w;
	}
}

static void
send_str(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

/* Fork a child that writes each piece to fd, pausing ms between. */
static pid_t
writer(int fd, const char *const *pieces, int ms)
{
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (; *pieces != NULL; pieces++) {
			if (write(fd, *pieces, strlen(*pieces)) < 0)
				_exit(1);
			usleep((useconds_t)ms * 1000);
		}
		_exit(0);
	}
	return pid;
}

static void
reap(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
}

static void
line_of_exactly_max_bytes_with_lf_is_accepted(void **state)
{
	struct stream *s;
	struct buf line;
	int peer;

	buf_init(&line, 1000);
	s = pair(&peer, 1000);
	send_str(peer, "123456789\n");
	assert_int_equal(stream_read_line(s, &line, 10), 10);
	assert_string_equal(buf_cstr(&line), "123456789\n");
	stream_free(s);
	close(peer);
	buf_free(&line);
}

static void
line_longer_than_max_is_toolong_and_rest_stays_readable(void **state)
{
	struct stream *s;
	struct buf line;
	int peer;

	buf_init(&line, 1000);
	s = pair(&peer, 1000);
	send_str(peer, "0123456789abc\nnext\n");
	assert_int_equal(stream_read_line(s, &line, 10), STREAM_TOOLONG);
	assert_int_equal(line.len, 10);
	assert_string_equal(buf_cstr(&line), "0123456789");
	/* The rest of the long line was not thrown away... */
	assert_int_equal(stream_read_line(s, &line, 10), 4);
	assert_string_equal(buf_cstr(&line), "abc\n");
	assert_int_equal(stream_read_line(s, &line, 10), 5);
	assert_string_equal(buf_cstr(&line), "next\n");
	stream_free(s);
	close(peer);
	buf_free(&line);
}

static void
skip_line_after_toolong_resumes_at_next_line(void **state)
{
	struct stream *s;
	struct buf line;
	char *big;
	int peer;
	size_t n = 100000;	/* several read chunks, no LF */
	pid_t pid;
	const char *pieces[3];

	buf_init(&line, 1000);
	s = pair(&peer, 1000);
	big = malloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\0';
	pieces[0] = big;
	pieces[1] = "\r\nQUIT\r\n";
	pieces[2] = NULL;
	pid = writer(peer, pieces, 0);
	assert_int_equal(stream_read_line(s, &line, 512), STREAM_TOOLONG);
	assert_int_equal(line.len, 512);
	assert_int_equal(stream_skip_line(s), 0);
	assert_int_equal(stream_read_line(s, &line, 512), 6);
	assert_string_equal(buf_cstr(&line), "QUIT\r\n");
	reap(pid);
	free(big);
	stream_free(s);
	close(peer);
	buf_free(&line);
}

static void
long_line_within_max_crosses_read_chunks(void **state)
{
	struct stream *s;
	struct buf line;
	char *big;
	size_t n = 50000;
	const char *pieces[2];
	pid_t pid;
	int peer;

	buf_init(&line, 100000);
	s = pair(&peer, 1000);
	big = malloc(n + 1);
	memset(big, 'y', n - 1);
	big[n - 1] = '\n';
	big[n] = '\0';
	pieces[0] = big;
	pieces[1] = NULL;
	pid = writer(peer, pieces, 0);
	assert_int_equal(stream_read_line(s, &line, 100000), (int)n);
	assert_memory_equal(line.data, big, n);
	reap(pid);
	free(big);
	stream_free(s);
	close(peer);
	buf_free(&line);
}

static void
crlf_and_bare_lf_lines_are_kept_byte_exact(void **state)
{
	struct stream *s;
	struct buf line;
	int peer;

	buf_init(&line, 1000);
	s = pair(&peer, 1000);
	send_all(peer, "a\r\nb\nc\r\r\n\n\0z\n", 14);
	assert_int_equal(stream_read_line(s, &line, 100), 3);
	assert_string_equal(buf_cstr(&line), "a\r\n");
	assert_int_equal(stream_read_line(s, &line, 100), 2);
	assert_string_equal(buf_cstr(&line), "b\n");
	assert_int_equal(stream_read_line(s, &line, 100), 4);
	assert_string_equal(buf_cstr(&line), "c\r\r\n");
	assert_int_equal(stream_read_line(s, &line, 100), 1);
	assert_string_equal(buf_cstr(&line), "\n");
	assert_int_equal(stream_read_line(s, &line, 100), 3);
	assert_memory_equal(line.data, "\0z\n", 3);
	stream_free(s);
	close(peer);
	buf_free(&line);
}

static void
final_line_without_lf_is_returned_then_eof(void **state)
{
	struct stream *s;
	struct buf line;
	int peer;

	buf_init(&line, 1000);
	s = pair(&peer, 1000);
	send_str(peer, "first\nlast");
	close(peer);
	assert_int_equal(stream_read_line(s, &line, 100), 6);
	assert_int_equal(stream_read_line(s, &line, 100), 4);
	assert_string_equal(buf_cstr(&line), "last");
	assert_int_equal(stream_read_line(s, &line, 100), STREAM_EOF);
	assert_int_equal(line.len, 0);
	stream_free(s);
	buf_free(&line);
}

static void
read_times_out_when_peer_is_silent(void **state)
{
	struct stream *s;
	struct buf line;
	long long t0, dt;
	int peer;

	buf_init(&line, 1000);
	s = pair(&peer, 100);
	send_str(peer, "partial");
	t0 = event_now_ms();
	assert_int_equal(stream_read_line(s, &line, 100), STREAM_TIMEOUT);
	dt = event_now_ms() - t0;
	assert_true(dt >= 95);
	assert_true(dt < 600);
	stream_free(s);
	close(peer);
	buf_free(&line);
}

static void
deadline_cuts_off_a_peer_trickling_bytes(void **state)
{
	static const char *const drip[] = { "a", "b", "c", "d", "e", "f",
		"g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
		"s", "t", NULL };
	struct stream *s;
	struct buf line;
	long long t0, dt;
	pid_t pid;
	int peer;

	buf_init(&line, 1000);
	/* Each byte comes well within the per-wait timeout... */
	s = pair(&peer, 500);
	pid = writer(peer, drip, 20);
	/* ...but the whole line may take only 150 ms. */
	stream_set_deadline(s, 150);
	t0 = event_now_ms();
	assert_int_equal(stream_read_line(s, &line, 100), STREAM_TIMEOUT);
	dt = event_now_ms() - t0;
	assert_true(dt >= 140);
	assert_true(dt < 350);
	kill(pid, SIGKILL);
	reap(pid);
	stream_free(s);
	close(peer);
	buf_free(&line);
}

static void
deadline_cleared_with_zero(void **state)
{
	struct stream *s;
	struct buf line;
	int peer;

	buf_init(&line, 1000);
	s = pair(&peer, 1000);
	stream_set_deadline(s, 1);
	usleep(5000);
	stream_set_deadline(s, 0);
	assert_true(s->deadline == 0);
	send_str(peer, "ok\n");
	assert_int_equal(stream_read_line(s, &line, 100), 3);
	stream_free(s);
	close(peer);
	buf_free(&line);
}

static void
read_exact_gathers_bytes_across_several_writes(void **state)
{
	static const char *const pieces[] = { "BDAT 1", "2\r\nhello",
		" wor", "ld!!", "\r\nQUIT\r\n", NULL };
	struct stream *s;
	struct buf line, data;
	pid_t pid;
	int peer;

	buf_init(&line, 1000);
	buf_init(&data, 1000);
	buf_puts(&data, ">");
	s = pair(&peer, 1000);
	pid = writer(peer, pieces, 10);
	assert_int_equal(stream_read_line(s, &line, 100), 9);
	assert_string_equal(buf_cstr(&line), "BDAT 12\r\n");
	assert_int_equal(stream_read_exact(s, &data, 12), 0);
	assert_string_equal(buf_cstr(&data), ">hello world!");
	assert_int_equal(stream_read_line(s, &line, 100), 3);
	assert_string_equal(buf_cstr(&line), "!\r\n");
	assert_int_equal(stream_read_line(s, &line, 100), 6);
	assert_string_equal(buf_cstr(&line), "QUIT\r\n");
	reap(pid);
	stream_free(s);
	close(peer);
	buf_free(&line);
	buf_free(&data);
}

static void
read_exact_eof_midway_and_no_room(void **state)
{
	struct stream *s;
	struct buf data;
	int peer;

	buf_init(&data, 8);
	s = pair(&peer, 1000);
	/* More than out->max may hold: refused before reading anything. */
	assert_int_equal(stream_read_exact(s, &data, 9), STREAM_TOOLONG);
	send_str(peer, "abc");
	close(peer);
	assert_int_equal(stream_read_exact(s, &data, 5), STREAM_EOF);
	stream_free(s);
	buf_free(&data);
}

static void
pending_counts_buffered_input_and_discard_drops_it(void **state)
{
	struct stream *s;
	struct buf line;
	int peer;

	buf_init(&line, 1000);
	s = pair(&peer, 1000);
	assert_int_equal(stream_pending(s), 0);
	send_str(peer, "STARTTLS\r\nEHLO injected\r\n");
	assert_int_equal(stream_read_line(s, &line, 100), 10);
	assert_int_equal(stream_pending(s), 15);
	assert_int_equal(stream_wait_input(s, 0), 1);
	stream_discard_input(s);
	assert_int_equal(stream_pending(s), 0);
	assert_int_equal(stream_wait_input(s, 0), 0);
	send_str(peer, "EHLO real\r\n");
	assert_int_equal(stream_wait_input(s, 100), 1);
	assert_int_equal(stream_read_line(s, &line, 100), 11);
	assert_string_equal(buf_cstr(&line), "EHLO real\r\n");
	stream_free(s);
	close(peer);
	buf_free(&line);
}

static void
wait_input_gives_up_after_ms(void **state)
{
	struct stream *s;
	long long t0, dt;
	int peer;

	s = pair(&peer, 1000);
	t0 = event_now_ms();
	assert_int_equal(stream_wait_input(s, 50), 0);
	dt = event_now_ms() - t0;
	assert_true(dt >= 45 && dt < 400);
	close(peer);
	/* EOF counts as input: the next read says what it is. */
	assert_int_equal(stream_wait_input(s, 50), 1);
	stream_free(s);
}

static void
writes_are_buffered_until_flush(void **state)
{
	struct stream *s;
	char got[64];
	ssize_t n;
	int peer;

	s = pair(&peer, 1000);
	assert_int_equal(stream_puts(s, "250-tern\r\n"), 0);
	assert_int_equal(stream_printf(s, "%d %s\r\n", 250, "OK"), 0);
	assert_int_equal(stream_write(s, "x\0y", 3), 0);
	fcntl(peer, F_SETFL, O_NONBLOCK);
	assert_int_equal(read(peer, got, sizeof(got)), -1);
	assert_int_equal(stream_flush(s), 0);
	assert_int_equal(s->out.len, 0);
	n = read(peer, got, sizeof(got));
	assert_int_equal(n, 21);
	assert_memory_equal(got, "250-tern\r\n250 OK\r\nx\0y", 21);
	stream_free(s);
	close(peer);
}

static void
large_flush_waits_for_a_slow_reader(void **state)
{
	struct stream *s;
	char *big, got[4096];
	size_t n = 1 << 20, total = 0;
	ssize_t r;
	pid_t pid;
	int peer, status;

	s = pair(&peer, 2000);
	big = malloc(n);
	memset(big, 'm', n);
	assert_int_equal(stream_write(s, big, n), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Read everything, then say by exit code if it all came. */
		close(s->fd);
		while ((r = read(peer, got, sizeof(got))) > 0)
			total += (size_t)r;
		_exit(total == n ? 0 : 1);
	}
	assert_int_equal(stream_flush(s), 0);
	stream_free(s);
	close(peer);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(big);
}

static void
flush_times_out_when_peer_does_not_read(void **state)
{
	struct stream *s;
	char *big;
	size_t n = 8 << 20;	/* more than any socket buffer */
	long long t0, dt;
	int peer;

	s = pair(&peer, 100);
	big = malloc(n);
	memset(big, 'z', n);
	stream_write(s, big, n);
	t0 = event_now_ms();
	assert_int_equal(stream_flush(s), STREAM_TIMEOUT);
	dt = event_now_ms() - t0;
	assert_true(dt >= 95 && dt < 600);
	/* What was sent is gone from the buffer; the rest is kept. */
	assert_true(s->out.len > 0 && s->out.len < n);
	stream_free(s);
	close(peer);
	free(big);
}

static void
write_to_closed_socket_peer_is_error_not_sigpipe(void **state)
{
	struct stream *s;
	void (*old)(int);
	int peer;

	old = signal(SIGPIPE, SIG_DFL);	/* a SIGPIPE would end the test */
	s = pair(&peer, 1000);
	close(peer);
	assert_int_equal(stream_puts(s, "221 bye\r\n"), 0);
	assert_int_equal(stream_flush(s), STREAM_ERROR);
	assert_int_equal(s->err, EPIPE);
	stream_free(s);
	signal(SIGPIPE, old);
}

static void
write_to_closed_pipe_is_error_not_sigpipe(void **state)
{
	struct stream *s;
	void (*old)(int);
	sigset_t pending;
	int p[2];

	old = signal(SIGPIPE, SIG_DFL);
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	s = stream_new(p[1], 1000);
	assert_int_equal(stream_puts(s, "x\n"), 0);
	assert_int_equal(stream_flush(s), STREAM_ERROR);
	assert_int_equal(s->err, EPIPE);
	/* No SIGPIPE is left pending to strike later either. */
	sigpending(&pending);
	assert_false(sigismember(&pending, SIGPIPE));
	stream_free(s);
	signal(SIGPIPE, old);
}

/*
 * A transport that hands out its source one byte per call, failing with
 * EAGAIN before each byte and asking, as a TLS read may, to wait until
 * the fd is writable; it collects what is written three bytes a call.
 */
struct fake {
	const char	*src;
	size_t		 pos;
	int		 again;
	struct buf	 sent;
};

static ssize_t
fake_read(struct stream *s, void *p, size_t n)
{
	struct fake *f = s->ctx;

	if (f->src[f->pos] == '\0')
		return 0;
	if ((f->again = !f->again)) {
		s->want_write = 1;
		errno = EAGAIN;
		return -1;
	}
	*(char *)p = f->src[f->pos++];
	return 1;
}

static ssize_t
fake_write(struct stream *s, const void *p, size_t n)
{
	struct fake *f = s->ctx;

	if (n > 3)
		n = 3;
	buf_append(&f->sent, p, n);
	return (ssize_t)n;
}

static void
pluggable_transport_is_used_and_its_wait_direction_obeyed(void **state)
{
	struct fake f = { "HELO a\r\nMAIL\nrest", 0, 0, { 0 } };
	struct stream *s;
	struct buf line;
	int peer;

	buf_init(&line, 100);
	buf_init(&f.sent, 100);
	/*
	 * Nothing ever arrives on the socket, but it is writable: were the
	 * stream to wait for readable after the EAGAIN, it would time out.
	 */
	s = pair(&peer, 200);
	s->read_fn = fake_read;
	s->write_fn = fake_write;
	s->ctx = &f;
	assert_int_equal(stream_read_line(s, &line, 100), 8);
	assert_string_equal(buf_cstr(&line), "HELO a\r\n");
	assert_int_equal(stream_read_line(s, &line, 100), 5);
	assert_int_equal(stream_read_line(s, &line, 100), 4);
	assert_string_equal(buf_cstr(&line), "rest");
	assert_int_equal(stream_read_line(s, &line, 100), STREAM_EOF);
	stream_puts(s, "250 2.0.0 Ok\r\n");
	assert_int_equal(stream_flush(s), 0);
	assert_string_equal(buf_cstr(&f.sent), "250 2.0.0 Ok\r\n");
	stream_free(s);
	close(peer);
	buf_free(&line);
	buf_free(&f.sent);
}

static void
line_buffer_max_caps_the_line_limit(void **state)
{
	struct stream *s;
	struct buf line;
	int peer;

	buf_init(&line, 4);
	s = pair(&peer, 1000);
	send_str(peer, "abcdef\n");
	assert_int_equal(stream_read_line(s, &line, 100), STREAM_TOOLONG);
	assert_string_equal(buf_cstr(&line), "abcd");
	assert_int_equal(stream_read_line(s, &line, 100), 3);
	assert_string_equal(buf_cstr(&line), "ef\n");
	stream_free(s);
	close(peer);
	buf_free(&line);
}

static void
strerror_names_each_code(void **state)
{
	assert_string_equal(stream_strerror(STREAM_TIMEOUT), "timeout");
	assert_string_equal(stream_strerror(STREAM_TOOLONG), "line too long");
	assert_string_equal(stream_strerror(STREAM_EOF), "lost connection");
	assert_string_equal(stream_strerror(STREAM_ERROR), "I/O error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(line_of_exactly_max_bytes_with_lf_is_accepted),
		cmocka_unit_test(line_longer_than_max_is_toolong_and_rest_stays_readable),
		cmocka_unit_test(skip_line_after_toolong_resumes_at_next_line),
		cmocka_unit_test(long_line_within_max_crosses_read_chunks),
		cmocka_unit_test(crlf_and_bare_lf_lines_are_kept_byte_exact),
		cmocka_unit_test(final_line_without_lf_is_returned_then_eof),
		cmocka_unit_test(read_times_out_when_peer_is_silent),
		cmocka_unit_test(deadline_cuts_off_a_peer_trickling_bytes),
		cmocka_unit_test(deadline_cleared_with_zero),
		cmocka_unit_test(read_exact_gathers_bytes_across_several_writes),
		cmocka_unit_test(read_exact_eof_midway_and_no_room),
		cmocka_unit_test(pending_counts_buffered_input_and_discard_drops_it),
		cmocka_unit_test(wait_input_gives_up_after_ms),
		cmocka_unit_test(writes_are_buffered_until_flush),
		cmocka_unit_test(large_flush_waits_for_a_slow_reader),
		cmocka_unit_test(flush_times_out_when_peer_does_not_read),
		cmocka_unit_test(write_to_closed_socket_peer_is_error_not_sigpipe),
		cmocka_unit_test(write_to_closed_pipe_is_error_not_sigpipe),
		cmocka_unit_test(pluggable_transport_is_used_and_its_wait_direction_obeyed),
		cmocka_unit_test(line_buffer_max_caps_the_line_limit),
		cmocka_unit_test(strerror_names_each_code),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
