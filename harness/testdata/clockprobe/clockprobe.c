/* clockprobe in C: every 10 ms, CLOCK_REALTIME and CLOCK_MONOTONIC in ns, through
   libc (a dynamically linked program reads them through the vDSO too). */
#include <stdio.h>
#include <time.h>

int main(void) {
	struct timespec nap = {0, 10 * 1000 * 1000};
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		struct timespec rt, mono;
		clock_gettime(CLOCK_REALTIME, &rt);
		clock_gettime(CLOCK_MONOTONIC, &mono);
		printf("%lld %lld\n", (long long)rt.tv_sec * 1000000000LL + rt.tv_nsec,
		       (long long)mono.tv_sec * 1000000000LL + mono.tv_nsec);
		nanosleep(&nap, NULL);
	}
}
