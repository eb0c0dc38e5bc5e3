/* SPDX-License-Identifier: MIT */
/* A statically linked program: LD_PRELOAD cannot reach it. */
int main(void)
{
	return 0;
}
