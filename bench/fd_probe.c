/*
 * bench/fd_probe.c: how many sockets can one process hold here?
 *
 *   fd_probe [RINGS] [PER_RING]        # defaults: 6 rings, the hard limit - 1000 each
 *
 * Plain descriptors stop at RLIMIT_NOFILE (20,000 hard on the machines this
 * project is built on, and raising it needs CAP_SYS_RESOURCE). io_uring
 * "direct" descriptors live in a ring's own file table instead of the
 * process's: each table may hold up to RLIMIT_NOFILE entries, and a process
 * may have several rings. This probe opens TCP sockets with
 * IORING_OP_SOCKET into the sparse tables of RINGS rings and prints how
 * many it holds, so the terminal gateway's way past the descriptor limit
 * (one ring per 20,000 terminals, see adapters/README.md) can be checked
 * on a new machine in a second. Exit 0 when every socket opened.
 */
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	long rings = argc > 1 ? atol(argv[1]) : 6;
	long per = argc > 2 ? atol(argv[2]) : (long)rl.rlim_max - 1000;
	if (rings < 1 || per < 1 || per > (long)rl.rlim_max) {
		fprintf(stderr, "fd_probe: RINGS >= 1 and 1 <= PER_RING <= %ld (RLIMIT_NOFILE)\n",
			(long)rl.rlim_max);
		return 2;
	}
	printf("RLIMIT_NOFILE %ld; %ld rings x %ld direct sockets\n", (long)rl.rlim_max, rings, per);
	long held = 0;
	for (long r = 0; r < rings; r++) {
		struct io_uring *ring = malloc(sizeof(*ring)); /* kept open until exit */
		int ret = ring ? io_uring_queue_init(256, ring, 0) : -1;
		if (ret == 0)
			ret = io_uring_register_files_sparse(ring, (unsigned)per);
		if (ret) {
			printf("ring %ld: no file table of %ld (%d); held %ld sockets\n", r, per, ret, held);
			return 1;
		}
		for (long i = 0; i < per; i += 128) {
			unsigned n = per - i < 128 ? (unsigned)(per - i) : 128, seen = 0, head;
			for (unsigned k = 0; k < n; k++)
				io_uring_prep_socket_direct(io_uring_get_sqe(ring), AF_INET, SOCK_STREAM, 0,
							    (unsigned)(i + k), 0);
			io_uring_submit_and_wait(ring, n);
			struct io_uring_cqe *cqe;
			io_uring_for_each_cqe(ring, head, cqe)
			{
				if (cqe->res < 0) {
					printf("ring %ld: socket %ld failed (%d); held %ld sockets\n", r,
					       i + seen, cqe->res, held);
					return 1;
				}
				seen++;
				held++;
			}
			io_uring_cq_advance(ring, seen);
		}
	}
	printf("held %ld sockets in one process\n", held);
	return 0;
}
