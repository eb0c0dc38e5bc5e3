// SPDX-License-Identifier: MIT
// C++ exceptions thrown and caught inside a vthread, through several frames.
#include <stdexcept>
#include <string>

struct Unwound {
	int *count;
	~Unwound() { ++*count; }
};

[[gnu::noinline]] static void thrower(int depth, int *count)
{
	Unwound u{count};
	if (depth == 0)
		throw std::runtime_error("thrown at depth " + std::to_string(*count));
	thrower(depth - 1, count);
}

extern "C" int cxx_throw_and_catch(int depth)
{
	int destroyed = 0;

	try {
		thrower(depth, &destroyed);
	} catch (const std::runtime_error &e) {
		return std::string(e.what()) == "thrown at depth 0" ? destroyed : -1;
	}
	return -2;
}
