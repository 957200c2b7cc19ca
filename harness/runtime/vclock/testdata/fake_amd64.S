# The code vclock maps into a process (amd64): replacements for the vDSO's
# clock_gettime, gettimeofday and time that ask the kernel by syscall and then
# move the answer by the clock set in the data page that follows the code.
#
# Assemble:  as --64 -o fake.o fake_amd64.S && objcopy -O binary -j .text fake.o fake.bin
# The bytes of fake.bin up to the data page are vclock's code (code_amd64.go); a test
# assembles this file again where as and objcopy exist and compares.
#
# Data page (offset 0x1000), little-endian int64s:
#   0x00 seq      a sequence count: odd while the harness is writing
#   0x08 reserved
#   0x10 group 0, the wall clocks (CLOCK_REALTIME, CLOCK_REALTIME_COARSE):
#        base, off, num, den: t -> base + off + (t - base) * num / den
#   0x30 group 1, the monotonic clocks (MONOTONIC, MONOTONIC_RAW, MONOTONIC_COARSE,
#        BOOTTIME), the same four words
# Every routine keeps to the vDSO's calling convention: arguments in rdi, rsi; rax,
# rcx, rdx, r8-r11 are scratch (syscall clobbers rcx and r11); the only stack used is
# one return address.

	.intel_syntax noprefix
	.text
	.globl _start
_start:

# int clock_gettime(clockid_t id /* edi */, struct timespec *ts /* rsi */)
clock_gettime:
	mov	eax, 228		# SYS_clock_gettime
	syscall
	test	rax, rax
	jnz	1f
	lea	r11, [rip + group0]
	cmp	edi, 0
	je	2f
	cmp	edi, 5
	je	2f
	lea	r11, [rip + group1]
	cmp	edi, 1
	je	2f
	cmp	edi, 4
	je	2f
	cmp	edi, 6
	je	2f
	cmp	edi, 7
	je	2f
	xor	eax, eax		# another clock: as the kernel says
1:	ret
2:	mov	r8, [rsi]		# the kernel's answer, kept for a retry
	mov	r9, [rsi + 8]
3:	mov	r10, [rip + seq]
	test	r10, 1
	jnz	3b
	mov	rax, r8
	imul	rax, rax, 1000000000
	add	rax, r9
	call	apply
	cmp	r10, [rip + seq]
	jne	3b
	xor	edx, edx
	mov	rcx, 1000000000
	div	rcx
	mov	[rsi], rax
	mov	[rsi + 8], rdx
	xor	eax, eax
	ret

# int gettimeofday(struct timeval *tv /* rdi */, struct timezone *tz /* rsi */)
gettimeofday:
	mov	eax, 96			# SYS_gettimeofday
	syscall
	test	rax, rax
	jnz	1f
	test	rdi, rdi
	jz	1f
	lea	r11, [rip + group0]
	mov	r8, [rdi]
	mov	r9, [rdi + 8]
3:	mov	r10, [rip + seq]
	test	r10, 1
	jnz	3b
	mov	rax, r8
	imul	rax, rax, 1000000000
	imul	rdx, r9, 1000
	add	rax, rdx
	call	apply
	cmp	r10, [rip + seq]
	jne	3b
	xor	edx, edx
	mov	rcx, 1000000000
	div	rcx
	mov	[rdi], rax
	mov	rax, rdx
	xor	edx, edx
	mov	rcx, 1000
	div	rcx
	mov	[rdi + 8], rax
	xor	eax, eax
1:	ret

# time_t time(time_t *tloc /* rdi */)
time:
	mov	eax, 201		# SYS_time (stores into *tloc itself; overwritten below)
	syscall
	test	rax, rax
	js	1f
	lea	r11, [rip + group0]
	mov	r8, rax
3:	mov	r10, [rip + seq]
	test	r10, 1
	jnz	3b
	mov	rax, r8
	imul	rax, rax, 1000000000
	call	apply
	cmp	r10, [rip + seq]
	jne	3b
	xor	edx, edx
	mov	rcx, 1000000000
	div	rcx
	test	rdi, rdi
	jz	1f
	mov	[rdi], rax
1:	ret

# apply: rax = a time in ns, r11 = its group; returns the group's time for it in rax,
# never below 0. Uses rcx, rdx.
apply:
	mov	rcx, [r11 + 24]		# den: 0 means the page is not set up, no change
	test	rcx, rcx
	jz	2f
	sub	rax, [r11]		# t - base
	mov	rcx, [r11 + 16]
	imul	rcx			# rdx:rax = (t - base) * num
	idiv	qword ptr [r11 + 24]
	add	rax, [r11]
	add	rax, [r11 + 8]
	jns	2f
	xor	eax, eax
2:	ret
code_end:

	.org	0x1000
seq:	.quad	0
	.quad	0
group0:	.quad	0, 0, 0, 0
group1:	.quad	0, 0, 0, 0
