/* SPDX-License-Identifier: MIT */
/* Guest entry: the VMM enters every vCPU here in 64-bit mode, ring 3, with
 * RSP on that vCPU's stack and RDI = vCPU index. */
	.section .text.start, "ax"
	.globl _start
	.code64
_start:
	xorl %ebp, %ebp
	call guest_main
1:	pause
	jmp 1b
	.section .note.GNU-stack, "", @progbits
