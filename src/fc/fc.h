/* SPDX-License-Identifier: MIT */
/*
 * Firecracker's UFFD handler protocol (docs/firecracker.md).
 *
 * The VMM maps guest memory (anonymous or hugetlb), creates a userfaultfd
 * (EVENT_REMOVE, O_NONBLOCK, O_CLOEXEC), registers every region MISSING,
 * connects to the handler's Unix socket and sends ONE message: a JSON array
 * of region mappings, with the uffd attached as SCM_RIGHTS.  The socket
 * stays open for the life of the VM.  Each mapping:
 *
 *   {"base_host_virt_addr": N, "size": N, "offset": N, "page_size": N}
 *
 * offset is where the region starts in the flat guest-memory file; older
 * Firecracker releases call page_size "page_size_kib" although the value is
 * in bytes too.  The earliest releases sent no page size (4 KiB only).
 *
 *   json.c     parse / format the mappings array (strict, fuzzed)
 *   message.c          receive / send the message, validate it, check the peer
 *   server.c   the listening socket and one engine per connected VM
 *   client.c   the VMM side (lazyvm restore --uffd-socket)
 */
#ifndef LAZYVM_FC_H
#define LAZYVM_FC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lazyvm.h"

#define FC_MAX_MAPPINGS 64		/* = the engine's region limit */
#define FC_MAX_MSG	(64u << 10)	/* 64 regions need < 10 KiB */
#define FC_MAX_DEPTH	16		/* nesting of values skipped in unknown keys */
/* Highest user address on x86-64 with 5-level paging; no mapping reaches it. */
#define FC_MAX_ADDR	(1ull << 57)

struct fc_mapping {
	uint64_t base;		/* base_host_virt_addr: in the VMM's address space */
	uint64_t size;
	uint64_t offset;	/* into the memory file */
	uint64_t page_size;	/* bytes: 4096 or 2 MiB */
	/* Firecracker's secret-hiding branch adds these (0 / false otherwise);
	 * offset is then the region's place in the guest_memfd as well. */
	uint64_t gpa_start;
	bool has_gpa_start;
	bool is_guest_memfd;
};

/* ---- json.c ---------------------------------------------------------- */

/*
 * Parse the mappings array.  Strict JSON (RFC 8259) for the document, with
 * numbers of the known keys non-negative integers that fit in 64 bits;
 * unknown keys are skipped whatever their value.  Returns the number of
 * mappings (>= 1), -ENODATA when the text stops before the array ends (more
 * may arrive on the socket), -EBADMSG when it is malformed, -E2BIG beyond
 * max mappings; err gets one line ("byte 17: expected ':'").
 */
int fc_parse_mappings(const char *json, size_t len, struct fc_mapping *out, unsigned max,
		      char *err, size_t errlen);
/* Format the array as current Firecracker does ("page_size").  Returns
 * the length written (< buflen, NUL-terminated) or -ENOSPC. */
int fc_format_mappings(const struct fc_mapping *m, unsigned n, char *buf, size_t buflen);

/* ---- message.c --------------------------------------------------------------- */

/*
 * Check what a handler must never trust: page size 4 KiB or 2 MiB; base,
 * size and offset multiples of it; no wrap-around; every region inside the
 * file (file_size bytes); regions overlap neither in the VMM's address
 * space nor in the file.  0 or -EINVAL / -ERANGE / -EEXIST with err set.
 */
int fc_validate_mappings(const struct fc_mapping *m, unsigned n, uint64_t file_size,
			 char *err, size_t errlen);

/*
 * Receive the message on a connected socket: the JSON (read until the array
 * is complete, at most FC_MAX_MSG bytes, within timeout_ms) and exactly one
 * fd, which must be a userfaultfd.  Returns the mapping count and *uffd
 * (ours to close), or -errno with err set; no fd is leaked on failure.
 */
int fc_recv_message(int sock, int timeout_ms, struct fc_mapping *out, unsigned max,
		    int *uffd, char *err, size_t errlen);
/* Send the message (JSON + uffd) in one sendmsg, as Firecracker does. */
int fc_send_message(int sock, const struct fc_mapping *m, unsigned n, int uffd);

/* SO_PEERCRED: is the peer our own uid or one of allowed[]?  0 yes,
 * -EPERM no, -errno on failure; *uid and *pid get the peer's. */
int fc_check_peer(int sock, const uid_t *allowed, unsigned nallowed, uid_t *uid,
		  pid_t *pid);

/* ---- server.c -------------------------------------------------------- */

struct fc_server;
struct ws;

struct fc_server_opts {
	const char *socket_path;
	struct lvm_source *src;		/* the memory file; shared by every VM */
	const uid_t *allow_uids;	/* besides our own uid */
	unsigned nallow_uids;
	bool once;			/* stop after the first VM finished */
	bool prefault;			/* fill every page in the background */
	/* Optional: a working set (src/snapshot/ws.h, pages = offsets in src)
	 * each VM gets prefetched ahead of its vCPUs; shared, read-only. */
	const struct ws *ws;
	unsigned threads;		/* engine threads per VM; 0 = one per CPU */
	size_t fault_around;		/* bytes served per 4 KiB fault; 0 = 64 KiB */
	int handshake_timeout_ms;	/* 0 = 10 s */
	/* One line per event (VM served, finished, refused); NULL = stderr. */
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
};

/*
 * Create the socket (mode 0600; a stale socket file is replaced only if it
 * is a socket nobody listens on).  -EADDRINUSE when a server is running.
 */
int fc_server_open(const struct fc_server_opts *o, struct fc_server **out, char *err,
		   size_t errlen);
/* Accept and serve VMs until fc_server_stop(), or (once) the first VM ends. */
int fc_server_run(struct fc_server *s);
/* From any thread or a signal handler: make fc_server_run() return. */
void fc_server_stop(struct fc_server *s);
/* Stats of the whole run as one JSON object written to path (after run). */
int fc_server_write_stats(struct fc_server *s, const char *path);

/* Totals over every VM so far, finished or being served (for metrics). */
struct fc_totals {
	uint64_t vms_served, vms_active, vms_refused, vms_failed;
	uint64_t faults, pages_demand, pages_background, pages_zero, pages_failed;
	struct lvm_latency fault_latency;	/* the worst VM's of each quantile */
};
void fc_server_totals(struct fc_server *s, struct fc_totals *t);
/* Stops every VM, removes the socket file. */
void fc_server_close(struct fc_server *s);

/* ---- client.c -------------------------------------------------------- */

struct fc_client;

/*
 * Act as Firecracker: create a uffd (EVENT_REMOVE, non-blocking, cloexec),
 * register mem MISSING, connect to socket_path, send one mapping (offset 0)
 * and the uffd, keep the socket open.  on_lost(ctx, msg) is called once if
 * the page server closes the socket while the VM runs (stop the VM: its
 * faults can no longer be served).
 */
int fc_client_connect(const char *socket_path, struct lvm_mem *mem,
		      void (*on_lost)(void *ctx, const char *msg), void *ctx,
		      struct fc_client **out, char *err, size_t errlen);
/* Close the socket (the server then finishes this VM) and free. */
void fc_client_close(struct fc_client *c);
/* Shared with the secret-free client (sf-client.c): connect to a Unix
 * socket (-errno, err set); once the page server is gone, poison every
 * page that faults on uffd until stop_efd is written (never zeros). */
int fc_connect_unix(const char *path, char *err, size_t errlen);
void fc_poison_faults_until(int uffd, int stop_efd, size_t page_size);

#endif
