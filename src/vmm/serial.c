/* SPDX-License-Identifier: MIT */
/*
 * The serial port at GUEST_SERIAL, output only: an 8250 whose transmitter is
 * always empty.  Output is written a whole line at a time so lines of different
 * vCPUs never interleave; the unfinished line is device state and travels in
 * snapshots (state.c) so a restored guest completes it.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util/io.h"
#include "vmm/vmm-internal.h"

#define UART_LSR	5	/* line status register */
#define UART_LSR_THRE	0x20	/* transmit holding register empty */
#define UART_LSR_TEMT	0x40	/* transmitter empty */

void serial_init(struct serial *s, int fd)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->fd = fd;
}

void serial_destroy(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

static void serial_write_all(int fd, const char *p, size_t n)
{
	if (fd >= 0)
		(void)io_write_full(fd, p, n, -1);	/* a closed stdout must not stop the guest */
}

static void serial_flush_line(struct serial *s)
{
	if (!strncmp(s->line, "RESULT ", 7)) {
		size_t n = s->len < sizeof(s->result) ? s->len : sizeof(s->result) - 1;
		memcpy(s->result, s->line, n);
		s->result[n] = 0;
		if (n && s->result[n - 1] == '\n')
			s->result[n - 1] = 0;
	}
	serial_write_all(s->fd, s->line, s->len);
	s->len = 0;
}

void serial_out(struct serial *s, const uint8_t *data, unsigned len)
{
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < len; i++) {
		s->line[s->len++] = (char)data[i];
		if (data[i] == '\n' || s->len == SERIAL_LINE_MAX)
			serial_flush_line(s);
	}
	pthread_mutex_unlock(&s->lock);
}

uint8_t serial_read(unsigned reg)
{
	return reg == UART_LSR ? UART_LSR_THRE | UART_LSR_TEMT : 0;
}
