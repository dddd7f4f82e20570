/* SPDX-License-Identifier: MIT */
/* The guests' flat images (guests/guests.mk builds them), embedded read-only. */
#define GUEST_IMAGE(sym, file)			\
	.globl sym##_start, sym##_end;		\
	.balign 16;				\
sym##_start:					\
	.incbin file;				\
sym##_end:

	.section .rodata.lazyvm_guests, "a"
GUEST_IMAGE(guest_image_workload, "guests/workload.bin")
GUEST_IMAGE(guest_image_boot_like, "guests/boot-like.bin")
GUEST_IMAGE(guest_image_dirty, "guests/dirty.bin")
	.section .note.GNU-stack, "", @progbits
