/*
 * pause: the process that holds a pod sandbox's namespaces open.
 *
 * It sleeps until a signal arrives. SIGTERM and SIGINT end it with status 0;
 * SIGCHLD reaps every exited child, since as PID 1 of a shared PID namespace
 * it inherits orphans. It prints nothing.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void on_child(int sig)
{
	int saved = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

int main(void)
{
	struct sigaction stop = { .sa_handler = on_stop };
	struct sigaction child = { .sa_handler = on_child,
				   .sa_flags = SA_NOCLDSTOP | SA_RESTART };

	sigemptyset(&stop.sa_mask);
	sigemptyset(&child.sa_mask);
	if (sigaction(SIGTERM, &stop, NULL) != 0 || sigaction(SIGINT, &stop, NULL) != 0 ||
	    sigaction(SIGCHLD, &child, NULL) != 0)
		return 1;
	for (;;)
		pause();
}
