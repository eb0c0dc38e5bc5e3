/* SPDX-License-Identifier: MIT */
/*
 * Thread bodies written for pthreads, unchanged: C++ exceptions, setjmp,
 * dlopen and its TLS, ucontext coroutines, qsort, locales, iconv, sockets,
 * pipes with poll and epoll.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <iconv.h>
#include <locale.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <ucontext.h>
#include <unistd.h>
#include <wchar.h>

#include "common.h"

#ifdef HAVE_CXX
int cxx_throw_and_catch(int depth);

static void *throw_catch(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)cxx_throw_and_catch(5);
}

START_TEST(test_cxx_exception_thrown_and_caught)
{
	ck_assert_int_eq(run_vthread(throw_catch, NULL), 6);	/* every frame's destructor ran */
}
END_TEST
#endif

static jmp_buf jb;

static __attribute__((noinline)) void jump_back(int v)
{
	longjmp(jb, v);
}

static void *set_and_long_jump(void *arg)
{
	volatile int rounds = 0;

	(void)arg;
	if (setjmp(jb) < 3) {
		rounds++;
		jump_back(rounds);
	}
	return (void *)(intptr_t)rounds;
}

START_TEST(test_setjmp_longjmp)
{
	ck_assert_int_eq(run_vthread(set_and_long_jump, NULL), 3);
}
END_TEST

static void *load_plugin(void *arg)
{
	void *h = dlopen(arg, RTLD_NOW | RTLD_LOCAL);
	int (*bump)(int);
	int a, b;

	if (!h)
		return (void *)-1;
	bump = (int (*)(int))dlsym(h, "plugin_bump");
	if (!bump)
		return (void *)-2;
	a = bump(1);		/* this thread's copy of the library's TLS */
	b = bump(10);
	dlclose(h);
	return (void *)(intptr_t)(a * 1000 + b);
}

START_TEST(test_dlopen_and_its_tls)
{
	ck_assert_int_eq(run_vthread(load_plugin, PLUGIN_PATH), 101 * 1000 + 111);
}
END_TEST

static ucontext_t main_ctx, co_ctx;
static int co_values[4];

static void coroutine(void)
{
	for (int i = 0; i < 4; i++) {
		co_values[i] = i * i;
		swapcontext(&co_ctx, &main_ctx);
	}
}

static void *run_coroutine(void *arg)
{
	static char co_stack[64 << 10];
	volatile int sum = 0;

	(void)arg;
	getcontext(&co_ctx);
	co_ctx.uc_stack.ss_sp = co_stack;
	co_ctx.uc_stack.ss_size = sizeof(co_stack);
	co_ctx.uc_link = &main_ctx;
	makecontext(&co_ctx, coroutine, 0);
	for (int i = 0; i < 4; i++) {
		swapcontext(&main_ctx, &co_ctx);
		sum += co_values[i];
	}
	return (void *)(intptr_t)sum;
}

START_TEST(test_ucontext_coroutine)
{
	ck_assert_int_eq(run_vthread(run_coroutine, NULL), 0 + 1 + 4 + 9);
}
END_TEST

static int by_value(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static void *sort(void *arg)
{
	int *v = arg;

	qsort(v, 1000, sizeof(int), by_value);
	for (int i = 1; i < 1000; i++)
		if (v[i - 1] > v[i])
			return (void *)0;
	return (void *)1;
}

START_TEST(test_qsort)
{
	static int v[1000];

	for (int i = 0; i < 1000; i++)
		v[i] = (i * 7919) % 1000;
	ck_assert_int_eq(run_vthread(sort, v), 1);
}
END_TEST

static void *use_locale(void *arg)
{
	locale_t l = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
	wchar_t w[8];
	size_t n;

	(void)arg;
	if (!l)
		return (void *)-1;
	uselocale(l);
	n = mbstowcs(w, "h\xc3\xa9llo", 8);	/* é is two bytes, one character */
	uselocale(LC_GLOBAL_LOCALE);
	freelocale(l);
	return (void *)(intptr_t)(n == 5 && w[1] == 0xe9);
}

START_TEST(test_locale)
{
	ck_assert_int_eq(run_vthread(use_locale, NULL), 1);
}
END_TEST

static void *convert(void *arg)
{
	iconv_t cd = iconv_open("UTF-8", "ISO-8859-15");	/* a gconv module, dlopened */
	char in[] = "\xa4 10", out[16] = { 0 };
	char *ip = in, *op = out;
	size_t il = strlen(in), ol = sizeof(out) - 1;

	(void)arg;
	if (cd == (iconv_t)-1)
		return (void *)-1;
	if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1)
		return (void *)-2;
	iconv_close(cd);
	return (void *)(intptr_t)(strcmp(out, "\xe2\x82\xac 10") == 0);	/* the euro sign */
}

START_TEST(test_iconv)
{
	ck_assert_int_eq(run_vthread(convert, NULL), 1);
}
END_TEST

struct server {
	int listener;
	char got[64];
};

static void *echo_server(void *arg)
{
	struct server *s = arg;
	ssize_t n;
	int c;

	c = accept(s->listener, NULL, NULL);	/* blocks until the client comes */
	if (c < 0)
		return (void *)-1;
	n = recv(c, s->got, sizeof(s->got) - 1, MSG_WAITALL);
	if (n <= 0)
		return (void *)-2;
	send(c, s->got, n, 0);
	close(c);
	return (void *)n;
}

START_TEST(test_loopback_socket_server_in_a_vthread)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	struct server s = { 0 };
	char back[64] = { 0 };
	vthread_t vt;
	void *ret;
	int c;

	require_backend();
	s.listener = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(s.listener, 0);
	ck_assert_int_eq(bind(s.listener, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s.listener, 1), 0);
	ck_assert_int_eq(getsockname(s.listener, (struct sockaddr *)&a, &len), 0);
	ck_assert_int_eq(vthread_create(&vt, NULL, echo_server, &s), 0);
	usleep(20000);		/* the server is waiting in accept() */
	c = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(send(c, "ping over loopback", 18, 0), 18);
	shutdown(c, SHUT_WR);
	ck_assert_int_eq(recv(c, back, sizeof(back) - 1, MSG_WAITALL), 18);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((intptr_t)ret, 18);
	ck_assert_str_eq(back, "ping over loopback");
	close(c);
	close(s.listener);
}
END_TEST

static int wake[2];

static void *wait_poll_then_epoll(void *arg)
{
	struct pollfd p = { .fd = wake[0], .events = POLLIN };
	struct epoll_event ev = { .events = EPOLLIN }, got;
	char c[2];
	int ep, n;

	(void)arg;
	if (poll(&p, 1, 10000) != 1 || read(wake[0], c, 1) != 1)
		return (void *)-1;
	ep = epoll_create1(EPOLL_CLOEXEC);
	epoll_ctl(ep, EPOLL_CTL_ADD, wake[0], &ev);
	n = epoll_wait(ep, &got, 1, 10000);
	close(ep);
	if (n != 1 || read(wake[0], c + 1, 1) != 1)
		return (void *)-2;
	return (void *)(intptr_t)(c[0] * 256 + c[1]);
}

START_TEST(test_poll_and_epoll_block_until_a_pthread_writes)
{
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(pipe(wake), 0);
	ck_assert_int_eq(vthread_create(&vt, NULL, wait_poll_then_epoll, NULL), 0);
	usleep(20000);
	ck_assert_int_eq(write(wake[1], "a", 1), 1);
	usleep(20000);
	ck_assert_int_eq(write(wake[1], "b", 1), 1);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((intptr_t)ret, 'a' * 256 + 'b');
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bodies");
	TCase *tc = tcase_create("bodies");

	tcase_set_timeout(tc, 60);
#ifdef HAVE_CXX
	tcase_add_test(tc, test_cxx_exception_thrown_and_caught);
#endif
	tcase_add_test(tc, test_setjmp_longjmp);
	tcase_add_test(tc, test_dlopen_and_its_tls);
	tcase_add_test(tc, test_ucontext_coroutine);
	tcase_add_test(tc, test_qsort);
	tcase_add_test(tc, test_locale);
	tcase_add_test(tc, test_iconv);
	tcase_add_test(tc, test_loopback_socket_server_in_a_vthread);
	tcase_add_test(tc, test_poll_and_epoll_block_until_a_pthread_writes);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
