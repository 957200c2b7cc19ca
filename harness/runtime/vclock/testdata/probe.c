/* The C clock probe: for each line on stdin, one line on stdout with what the
   process sees through libc (and so through the vDSO):
   CLOCK_REALTIME ns, CLOCK_MONOTONIC ns, gettimeofday in ns, time() in s. */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

int main(void) {
	char line[64];
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof line, stdin)) {
		struct timespec rt, mono;
		struct timeval tv;
		clock_gettime(CLOCK_REALTIME, &rt);
		clock_gettime(CLOCK_MONOTONIC, &mono);
		gettimeofday(&tv, NULL);
		time_t s = time(NULL);
		printf("%lld %lld %lld %lld\n",
		       (long long)rt.tv_sec * 1000000000LL + rt.tv_nsec,
		       (long long)mono.tv_sec * 1000000000LL + mono.tv_nsec,
		       (long long)tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL,
		       (long long)s);
	}
	return 0;
}
