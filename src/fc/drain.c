/* SPDX-License-Identifier: MIT */
/*
 * On a server stop (SIGTERM), a VM still being served gets the rest of its
 * memory before its uffd is closed: the VMs already served keep running on
 * their own memory after the page server is gone, never on zero pages.
 */
#include <stdlib.h>

#include "engine/engine.h"
#include "fc/server.h"

#define DRAIN_PIECE (2u << 20)	/* at least one 2 MiB huge page */

void fc_vm_drain(struct fc_vm *vm, struct lvm_engine *e)
{
	struct lvm_source *src = vm->s->o.src;
	uint8_t *buf = malloc(DRAIN_PIECE);
	uint64_t pieces = 0;
	for (unsigned i = 0; buf && i < vm->nmap; i++) {
		const struct fc_mapping *m = &vm->map[i];
		size_t piece = DRAIN_PIECE < m->page_size ? m->page_size : DRAIN_PIECE;
		for (uint64_t off = 0; off < m->size; off += piece) {
			size_t len = m->size - off < piece ? (size_t)(m->size - off) : piece;
			if (len > DRAIN_PIECE)
				continue;	/* a page larger than any the VMM maps */
			/* supply skips the pages already there */
			if (lvm_source_read(src, m->offset + off, buf, len) ||
			    lvm_engine_supply(e, src, m->offset + off, buf, len) < 0)
				continue;	/* the engine poisons what it cannot serve */
			pieces++;
		}
	}
	free(buf);
	fc_server_log(vm->s, "vm %u: server stopping: rest of its memory supplied (%llu pieces)",
		      vm->rec.id, (unsigned long long)pieces);
}
