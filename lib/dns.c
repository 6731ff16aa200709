/*
 * dns - lookups through libunbound (see dns.h for the contract).
 *
 * Called by the smtp client for MX/A/AAAA/TLSA and, later, by smtpd for
 * PTR and DNSBL TXT/A lookups. libunbound does the resolving and the
 * DNSSEC validation; this file builds its context from main.cf, turns
 * its answers into the few outcomes a mail program acts on, and parses
 * the record data of the types we use. Malformed record data is skipped
 * (with a warning), never trusted; nothing here ends the process.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <unbound.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "dns.h"
#include "event.h"
#include "log.h"
#include "strv.h"

#define RCODE_NOERROR	0
#define RCODE_SERVFAIL	2
#define RCODE_NXDOMAIN	3
#define RCODE_REFUSED	5

/* A lookup in flight: what to call, and the id to cancel it by. */
struct dns_pending {
	struct dns_ctx	*ctx;
	int		 id;
	int		 type;
	char		*name;
	dns_done_fn	 done;
	void		*arg;
	struct dns_pending *next;
};

struct dns_ctx {
	struct ub_ctx	*ub;
	struct dns_pending *pending;
};

/*
 * Zones that libunbound answers by itself unless told otherwise: the
 * special-use names of RFC 6761 and friends. With forwarders set, the
 * operator's DNS decides about them instead (a lab or test network
 * serves "test." on purpose), so the built-in answer is switched off.
 */
static const char *const forwarded_special_zones[] = {
	"test.", "home.arpa.",
};

const char *
dns_status_name(enum dns_status st)
{
	switch (st) {
	case DNS_FOUND:
		return "found";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_NODATA:
		return "nodata";
	case DNS_NULLMX:
		return "nullmx";
	case DNS_TEMPFAIL:
		return "tempfail";
	}
	return "?";
}

const char *
dns_type_name(int type)
{
	switch (type) {
	case DNS_T_A:
		return "A";
	case DNS_T_PTR:
		return "PTR";
	case DNS_T_MX:
		return "MX";
	case DNS_T_TXT:
		return "TXT";
	case DNS_T_AAAA:
		return "AAAA";
	case DNS_T_TLSA:
		return "TLSA";
	}
	return "?";
}

static char *
ub_error(const char *what, int r)
{
	return xasprintf("%s: %s", what, ub_strerror(r));
}

struct dns_ctx *
dns_ctx_new(char *const *forwarders, const char *ta_file, char **err)
{
	struct dns_ctx *ctx;
	size_t i;
	int r;

	ctx = xcalloc(1, sizeof(*ctx));
	if ((ctx->ub = ub_ctx_create()) == NULL) {
		*err = xstrdup("cannot create a libunbound context");
		free(ctx);
		return NULL;
	}
	/* Lookups run in a thread of libunbound's, not a forked process. */
	if ((r = ub_ctx_async(ctx->ub, 1)) != 0) {
		*err = ub_error("ub_ctx_async", r);
		goto fail;
	}
	/* resolv.conf and test forwarders commonly name 127.0.0.x. */
	(void)ub_ctx_set_option(ctx->ub, "do-not-query-localhost:", "no");
	if (forwarders != NULL && forwarders[0] != NULL) {
		for (i = 0; forwarders[i] != NULL; i++) {
			if ((r = ub_ctx_set_fwd(ctx->ub, forwarders[i])) != 0) {
				*err = xasprintf("dns_forwarders: bad server "
				    "address \"%s\": %s", forwarders[i],
				    ub_strerror(r));
				goto fail;
			}
		}
		for (i = 0; i < sizeof(forwarded_special_zones) /
		    sizeof(forwarded_special_zones[0]); i++) {
			char *z = xasprintf("%s transparent",
			    forwarded_special_zones[i]);

			(void)ub_ctx_set_option(ctx->ub, "local-zone:", z);
			free(z);
		}
		(void)ub_ctx_set_option(ctx->ub, "unblock-lan-zones:", "yes");
		(void)ub_ctx_set_option(ctx->ub, "insecure-lan-zones:",
		    "yes");
	} else {
		/* Without resolv.conf libunbound recurses from the root
		 * itself, which is a working if slower setup. */
		if ((r = ub_ctx_resolvconf(ctx->ub, "/etc/resolv.conf")) != 0)
			msg_warn("dns: /etc/resolv.conf: %s; resolving from "
			    "the root servers", ub_strerror(r));
		if ((r = ub_ctx_hosts(ctx->ub, "/etc/hosts")) != 0)
			msg_warn("dns: /etc/hosts: %s", ub_strerror(r));
	}
	/* libunbound reads the file only at the first lookup: check it
	 * now so that a mistake shows at start, not as failed lookups. */
	if (ta_file != NULL && *ta_file != '\0' &&
	    access(ta_file, R_OK) < 0) {
		*err = xasprintf("dns_trust_anchor_file %s: %s", ta_file,
		    strerror(errno));
		goto fail;
	}
	if (ta_file != NULL && *ta_file != '\0' &&
	    (r = ub_ctx_add_ta_file(ctx->ub, ta_file)) != 0) {
		*err = xasprintf("dns_trust_anchor_file %s: %s", ta_file,
		    ub_strerror(r));
		goto fail;
	}
	return ctx;
fail:
	ub_ctx_delete(ctx->ub);
	free(ctx);
	return NULL;
}

struct dns_ctx *
dns_ctx_from_config(char **err)
{
	struct dns_ctx *ctx;
	char **fwd = config_list("dns_forwarders");

	ctx = dns_ctx_new(fwd, config_str("dns_trust_anchor_file"), err);
	strv_free(fwd);
	return ctx;
}

static void
pending_free(struct dns_pending *p)
{
	free(p->name);
	free(p);
}

static void
pending_unlink(struct dns_ctx *ctx, struct dns_pending *p)
{
	struct dns_pending **pp;

	for (pp = &ctx->pending; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

void
dns_ctx_free(struct dns_ctx *ctx)
{
	struct dns_pending *p, *next;

	if (ctx == NULL)
		return;
	for (p = ctx->pending; p != NULL; p = next) {
		next = p->next;
		(void)ub_cancel(ctx->ub, p->id);
		pending_free(p);
	}
	ub_ctx_delete(ctx->ub);
	free(ctx);
}

void
dns_result_free(struct dns_result *res)
{
	for (size_t i = 0; i < res->nrr; i++) {
		free(res->rr[i].text);
		free(res->rr[i].data);
	}
	free(res->rr);
	free(res->name);
	free(res->reason);
	memset(res, 0, sizeof(*res));
}

/* ---- record data ---- */

/*
 * Read an uncompressed domain name (libunbound hands rdata with names
 * expanded) from p[0..len) into out as lower-case text without the
 * final dot; "" is the root. Returns bytes used, or -1 when it is
 * malformed or holds bytes no host name has (dots inside a label,
 * white space, control bytes).
 */
static int
read_name(const unsigned char *p, size_t len, struct buf *out)
{
	size_t off = 0, total = 0;

	buf_reset(out);
	for (;;) {
		size_t l;

		if (off >= len)
			return -1;
		l = p[off++];
		if (l == 0)
			break;
		if (l > 63 || off + l > len || (total += l + 1) > 255)
			return -1;
		if (out->len > 0 && buf_putc(out, '.') < 0)
			return -1;
		for (size_t i = 0; i < l; i++) {
			unsigned char c = p[off + i];

			if (c <= 0x20 || c >= 0x7f || c == '.')
				return -1;
			if (c >= 'A' && c <= 'Z')
				c = (unsigned char)(c - 'A' + 'a');
			if (buf_putc(out, c) < 0)
				return -1;
		}
		off += l;
	}
	return (int)off;
}

/* Parse one record of type into rr; 0, or -1 when malformed. */
static int
parse_rdata(int type, const unsigned char *d, size_t len, struct dns_rr *rr)
{
	struct buf b;
	char text[INET6_ADDRSTRLEN];
	int n;

	memset(rr, 0, sizeof(*rr));
	rr->type = type;
	switch (type) {
	case DNS_T_A:
	case DNS_T_AAAA:
		if (len != (type == DNS_T_A ? 4u : 16u))
			return -1;
		rr->family = type == DNS_T_A ? AF_INET : AF_INET6;
		memcpy(rr->addr, d, len);
		if (inet_ntop(rr->family, d, text, sizeof(text)) == NULL)
			return -1;
		rr->text = xstrdup(text);
		return 0;
	case DNS_T_MX:
	case DNS_T_PTR:
		buf_init(&b, 300);
		if (type == DNS_T_MX) {
			if (len < 3) {
				buf_free(&b);
				return -1;
			}
			rr->pref = (unsigned)d[0] << 8 | d[1];
			d += 2;
			len -= 2;
		}
		if ((n = read_name(d, len, &b)) < 0 || (size_t)n != len) {
			buf_free(&b);
			return -1;
		}
		rr->text = buf_steal(&b);
		buf_free(&b);
		return 0;
	case DNS_T_TXT:
		buf_init(&b, 65536);
		for (size_t off = 0; off < len;) {
			size_t l = d[off++];

			if (off + l > len || buf_append(&b, d + off, l) < 0) {
				buf_free(&b);
				return -1;
			}
			off += l;
		}
		rr->len = b.len;
		rr->data = xmalloc(b.len + 1);
		memcpy(rr->data, b.data, b.len + 1);
		/* As text only what cannot confuse a log line. */
		for (size_t i = 0; i < b.len; i++)
			if ((unsigned char)b.data[i] < 0x20 ||
			    (unsigned char)b.data[i] == 0x7f)
				b.data[i] = '?';
		rr->text = buf_steal(&b);
		buf_free(&b);
		return 0;
	case DNS_T_TLSA:
		if (len < 4)	/* at least one byte of data */
			return -1;
		rr->usage = d[0];
		rr->selector = d[1];
		rr->mtype = d[2];
		rr->len = len - 3;
		rr->data = xmalloc(rr->len);
		memcpy(rr->data, d + 3, rr->len);
		return 0;
	}
	return -1;
}

static void
set_fail(struct dns_result *res, enum dns_status st, const char *reason)
{
	res->status = st;
	free(res->reason);
	res->reason = xstrdup(reason);
}

static const char *
rcode_name(int rcode)
{
	switch (rcode) {
	case 1:
		return "FORMERR";
	case RCODE_SERVFAIL:
		return "SERVFAIL";
	case 4:
		return "NOTIMP";
	case RCODE_REFUSED:
		return "REFUSED";
	}
	return "error";
}

void
dns_result_from_unbound(int err, const struct ub_result *ur,
    const char *name, int type, struct dns_result *res)
{
	size_t n, bad = 0, nulls = 0;
	char *why;

	memset(res, 0, sizeof(*res));
	res->name = xstrdup(name);
	res->type = type;
	res->rcode = -1;
	res->security = DNS_INSECURE;
	if (err != 0 || ur == NULL) {
		why = xasprintf("Host not found, try again (resolver error: "
		    "%s)", ub_strerror(err));
		set_fail(res, DNS_TEMPFAIL, why);
		free(why);
		return;
	}
	res->rcode = ur->rcode;
	if (ur->bogus) {
		res->security = DNS_BOGUS;
		why = xasprintf("Host not found, try again (DNSSEC validation "
		    "failed: %s)", ur->why_bogus ? ur->why_bogus : "bogus");
		set_fail(res, DNS_TEMPFAIL, why);
		free(why);
		return;
	}
	if (ur->secure)
		res->security = DNS_SECURE;
	if (ur->rcode == RCODE_NXDOMAIN || ur->nxdomain) {
		set_fail(res, DNS_NXDOMAIN, "Host not found");
		return;
	}
	if (ur->rcode != RCODE_NOERROR) {
		why = xasprintf("Host not found, try again (%s)",
		    rcode_name(ur->rcode));
		set_fail(res, DNS_TEMPFAIL, why);
		free(why);
		return;
	}
	if (!ur->havedata || ur->data == NULL || ur->data[0] == NULL) {
		set_fail(res, DNS_NODATA,
		    "Host found but no data record of requested type");
		return;
	}
	for (n = 0; ur->data[n] != NULL; n++)
		;
	res->rr = xcalloc(n, sizeof(*res->rr));
	for (size_t i = 0; i < n; i++) {
		struct dns_rr *rr = &res->rr[res->nrr];

		if (ur->len[i] < 0 || parse_rdata(type,
		    (const unsigned char *)ur->data[i], (size_t)ur->len[i],
		    rr) < 0) {
			free(rr->text);
			free(rr->data);
			bad++;
			continue;
		}
		rr->ttl = ur->ttl > 0 ? (unsigned)ur->ttl : 0;
		/* RFC 7505: "." as exchange is no host at all. */
		if (type == DNS_T_MX && rr->text[0] == '\0') {
			free(rr->text);
			nulls++;
			continue;
		}
		res->nrr++;
	}
	if (bad > 0)
		msg_warn("dns: %s %s: %zu malformed record%s ignored", name,
		    dns_type_name(type), bad, bad > 1 ? "s" : "");
	if (res->nrr > 0) {
		res->status = DNS_FOUND;
		return;
	}
	if (nulls > 0 && bad == 0) {
		set_fail(res, DNS_NULLMX, "Domain does not accept mail "
		    "(null MX)");
		return;
	}
	/* Only junk in the answer: maybe a broken server; try later. */
	set_fail(res, DNS_TEMPFAIL,
	    "Host not found, try again (malformed DNS reply)");
}

/* ---- MX order ---- */

void
dns_mx_sort(struct dns_rr *rr, size_t n)
{
	struct dns_rr t;
	size_t i, j, k;

	/* Insertion sort: MX sets are small and the sort must be stable
	 * only in that it is followed by a shuffle of each run. */
	for (i = 1; i < n; i++) {
		t = rr[i];
		for (j = i; j > 0 && rr[j - 1].pref > t.pref; j--)
			rr[j] = rr[j - 1];
		rr[j] = t;
	}
	/* Fisher-Yates within each run of equal preference. */
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && rr[j].pref == rr[i].pref; j++)
			;
		for (k = j - 1; k > i; k--) {
			size_t r = i + arc4random_uniform((uint32_t)(k - i + 1));

			t = rr[k];
			rr[k] = rr[r];
			rr[r] = t;
		}
	}
}

char *
dns_reverse_name(int family, const unsigned char *a)
{
	static const char hex[] = "0123456789abcdef";
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	if (family == AF_INET) {
		(void)buf_printf(&b, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2],
		    a[1], a[0]);
	} else {
		for (int i = 15; i >= 0; i--)
			(void)buf_printf(&b, "%c.%c.", hex[a[i] & 0xf],
			    hex[a[i] >> 4]);
		(void)buf_puts(&b, "ip6.arpa");
	}
	return buf_steal(&b);
}

/* ---- lookups ---- */

/* A name libunbound may be asked about: a sane length, no white space
 * or control bytes. Anything else does not exist. */
static int
name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 254)
		return 0;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
			return 0;
	return 1;
}

static void
ub_done(void *arg, int err, struct ub_result *ur)
{
	struct dns_pending *p = arg;
	struct dns_result res;

	pending_unlink(p->ctx, p);
	dns_result_from_unbound(err, ur, p->name, p->type, &res);
	if (ur != NULL)
		ub_resolve_free(ur);
	p->done(&res, p->arg);
	dns_result_free(&res);
	pending_free(p);
}

int
dns_lookup_start(struct dns_ctx *ctx, const char *name, int type,
    dns_done_fn done, void *arg, char **err)
{
	struct dns_pending *p;
	int r;

	if (!name_ok(name)) {
		*err = xstrdup("malformed domain name");
		return -1;
	}
	p = xcalloc(1, sizeof(*p));
	p->ctx = ctx;
	p->type = type;
	p->name = xstrdup(name);
	p->done = done;
	p->arg = arg;
	if ((r = ub_resolve_async(ctx->ub, name, type, 1, p, ub_done,
	    &p->id)) != 0) {
		*err = ub_error("ub_resolve_async", r);
		pending_free(p);
		return -1;
	}
	p->next = ctx->pending;
	ctx->pending = p;
	return p->id;
}

int
dns_fd(const struct dns_ctx *ctx)
{
	return ub_fd(ctx->ub);
}

int
dns_process(struct dns_ctx *ctx)
{
	int r;

	if ((r = ub_process(ctx->ub)) != 0) {
		msg_warn("dns: ub_process: %s", ub_strerror(r));
		return -1;
	}
	return 0;
}

void
dns_cancel(struct dns_ctx *ctx, int id)
{
	struct dns_pending *p;

	for (p = ctx->pending; p != NULL; p = p->next)
		if (p->id == id) {
			(void)ub_cancel(ctx->ub, id);
			pending_unlink(ctx, p);
			pending_free(p);
			return;
		}
}

struct sync_wait {
	int		 done;
	struct dns_result *res;
};

static void
sync_done(struct dns_result *res, void *arg)
{
	struct sync_wait *w = arg;

	/* Take the result over; the caller of the callback frees the
	 * emptied shell. */
	*w->res = *res;
	memset(res, 0, sizeof(*res));
	w->done = 1;
}

static void
make_fail(struct dns_result *res, const char *name, int type,
    enum dns_status st, const char *reason)
{
	memset(res, 0, sizeof(*res));
	res->name = xstrdup(name);
	res->type = type;
	res->rcode = -1;
	res->security = DNS_INSECURE;
	res->status = st;
	res->reason = xstrdup(reason);
}

enum dns_status
dns_lookup(struct dns_ctx *ctx, const char *name, int type, int timeout_ms,
    struct dns_result *res)
{
	struct sync_wait w;
	long long deadline = 0;
	struct pollfd pfd;
	char *err = NULL, *why;
	int id, r;

	memset(res, 0, sizeof(*res));
	w.done = 0;
	w.res = res;
	if (!name_ok(name)) {
		make_fail(res, name, type, DNS_NXDOMAIN,
		    "malformed domain name");
		return res->status;
	}
	if ((id = dns_lookup_start(ctx, name, type, sync_done, &w,
	    &err)) < 0) {
		why = xasprintf("Host not found, try again (%s)", err);
		make_fail(res, name, type, DNS_TEMPFAIL, why);
		free(why);
		free(err);
		return res->status;
	}
	if (timeout_ms > 0)
		deadline = event_now_ms() + timeout_ms;
	while (!w.done) {
		int wait = -1;

		if (deadline != 0) {
			long long left = deadline - event_now_ms();

			if (left <= 0) {
				dns_cancel(ctx, id);
				make_fail(res, name, type, DNS_TEMPFAIL,
				    "Host not found, try again (DNS lookup "
				    "timed out)");
				return res->status;
			}
			wait = (int)left;
		}
		pfd.fd = dns_fd(ctx);
		pfd.events = POLLIN;
		r = poll(&pfd, 1, wait);
		if (r < 0 && errno != EINTR) {
			why = xasprintf("Host not found, try again (poll: %s)",
			    strerror(errno));
			dns_cancel(ctx, id);
			make_fail(res, name, type, DNS_TEMPFAIL, why);
			free(why);
			return res->status;
		}
		if (r > 0 && dns_process(ctx) < 0 && !w.done) {
			dns_cancel(ctx, id);
			make_fail(res, name, type, DNS_TEMPFAIL,
			    "Host not found, try again (resolver error)");
			return res->status;
		}
	}
	return res->status;
}
