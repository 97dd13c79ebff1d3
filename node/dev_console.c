/*
 * Console input: one thread reads stdin and hands the bytes to the UART
 * (and so to SBI getchar), raising its receive interrupt.  It polls with a
 * short timeout so that it notices the stop request, and ends at EOF or on
 * an error (stdin from /dev/null, closed, or not pollable): input is a
 * convenience, never a reason for the VM to fail.
 * Started once every hart exists (the UART interrupt reaches harts through
 * the PLIC), stopped before the harts are destroyed.
 */
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "util/util.h"
#include "node/virt_int.h"

static void *input_main(void *arg)
{
	struct vm *vm = arg;
	uint8_t buf[64];
	util_log_set_thread("console");
	for (;;) {
		pthread_mutex_lock(&vm->lock);
		bool stop = vm->virt->input_stop || vm->done;
		pthread_mutex_unlock(&vm->lock);
		if (stop)
			break;
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		int r = poll(&p, 1, 100);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (r > 0 && !(p.revents & POLLIN)))
			break; /* POLLNVAL/POLLERR/POLLHUP without data */
		if (r == 0)
			continue;
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n <= 0)
			break; /* EOF: no more input, the guest runs on */
		pthread_mutex_lock(&vm->lock);
		dev_uart_rx(vm, buf, (size_t)n);
		pthread_mutex_unlock(&vm->lock);
	}
	return NULL;
}

void dev_console_input_start(struct vm *vm)
{
	struct virt *v = vm->virt;
	if (v->input_running)
		return;
	if (pthread_create(&v->input_thread, NULL, input_main, vm) == 0)
		v->input_running = true;
	else
		LOG_WARN("console", "no input thread: the guest console is output only");
}

void dev_console_input_stop(struct vm *vm)
{
	struct virt *v = vm->virt;
	if (v == NULL || !v->input_running)
		return;
	pthread_mutex_lock(&vm->lock);
	v->input_stop = true;
	pthread_mutex_unlock(&vm->lock);
	pthread_join(v->input_thread, NULL);
	v->input_running = false;
}
