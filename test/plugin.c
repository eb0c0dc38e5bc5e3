/* SPDX-License-Identifier: MIT */
/* A library the tests dlopen inside a vthread: code and dynamic TLS of its own. */
static __thread int counter = 100;

int plugin_bump(int by)
{
	counter += by;
	return counter;
}
