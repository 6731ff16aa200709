/*
 * master.h - what the parts of master share: its configuration, the
 * services it runs and the processes it started.
 *
 * master.c owns the process (options, pid file, signals, reload, stop),
 * master_listen.c turns a master.cf service into listening sockets, and
 * master_service.c keeps each service's pool of processes: it spawns,
 * counts busy and idle processes from their status messages, reaps them
 * and throttles a service whose processes crash. Nothing here is fatal
 * once master runs: a service that cannot be set up is logged and
 * skipped, and the others keep working.
 */
#ifndef TERN_MASTER_H
#define TERN_MASTER_H

#include <sys/types.h>

#include "mastercf.h"

struct event_loop;
struct service_def;

/* What master itself takes from main.cf and master.cf. */
struct master_conf {
	char		*config_dir;	/* absolute */
	char		*maincf_text;	/* did main.cf change? */
	char		*queue_dir;
	char		*daemon_dir;
	char		*data_dir;
	char		*mail_owner;
	char		*maillog_file;
	char		**inet_interfaces;
	char		**inet_protocols;
	long		 process_limit;	/* default_process_limit */
	unsigned long	 throttle_max;	/* service_throttle_time */
	struct master_service *defs;
	size_t		 ndefs;
};

/* One service: a master.cf line with its sockets and processes. */
struct service {
	struct service	*next;
	char		*name;
	enum service_type type;
	char		*spec;		/* columns but maxproc */
	char		*path;		/* daemon_dir/command */
	int		 maxproc;	/* resolved: never -1 */
	int		 always_on;	/* keep one process running */
	char		*listen_key;	/* the addresses, for reload */
	char		*unix_path;	/* socket file, unix services */
	int		*listen_fds;
	size_t		 nlisten;
	int		 status_rd;	/* status pipe: master's end */
	int		 status_wr;	/* the end passed to processes */
	int		 nchild;
	int		 nidle;
	int		 watching;	/* listen fds in the event loop */
	int		 retired;	/* replaced or removed */
	int		 throttled;
	unsigned long	 throttle_delay;	/* last one, seconds */
	unsigned long	 throttle_timer;
	struct service_def *def;	/* how its processes are started */
	/* maxproc 1 across a reload: the new pool waits for the old. */
	struct service	*predecessor;
	struct service	*successor;
};

/* master.c */
extern struct event_loop *master_loop;
extern struct master_conf *master_conf;
extern int master_stopping;
extern int master_verbose;

/* master_listen.c */
/* Work out the addresses of def: *key names them. 0 or -1 with *err. */
int	listen_resolve(const struct master_service *def,
	    const struct master_conf *, char **key, char **err);
/* Open svc's sockets for the addresses named by svc->listen_key. */
int	listen_open(struct service *svc, const struct master_conf *,
	    char **err);
/* Close svc's sockets (and remove its socket file when unlink_path). */
void	listen_close(struct service *svc, int unlink_path);

/* master_service.c */
/* Every column but maxproc, which can change without a restart. */
char	*service_spec(const struct master_service *def);
/* maxproc with "-" and 0 (no limit) worked out. */
int	service_maxproc(const struct master_service *def,
	    const struct master_conf *);
/* svc replaces prev, about to be retired; with maxproc 1, svc starts no
 * process until prev's last one has exited. */
void	service_follow(struct service *svc, struct service *prev);
/* Move from's listening sockets to to (a reload that kept them). */
void	service_take_sockets(struct service *to, struct service *from);
struct service *service_create(const struct master_service *def,
	    const struct master_conf *, char **err);
/* Start what should run, and watch the sockets when it may need more. */
void	service_update(struct service *);
/* No new work; idle processes are told to exit, busy ones finish. The
 * sockets still held are closed (a unix socket's file removed when
 * unlink_socket). */
void	service_retire(struct service *, int unlink_socket);
/* A process ended: bookkeeping, logging and throttling. */
void	service_reap(pid_t, int status);
/* SIGTERM (or SIGKILL) to every process master started. */
void	service_signal_all(int signo);
int	service_children(void);
/* The active services (not retired), in master.cf order. */
extern struct service *service_list;

#endif
