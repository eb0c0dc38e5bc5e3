#!/bin/sh
# install.sh MESON BUILDDIR CC SRCDIR: what a packager ships. Installs into a
# temporary root, then builds consumers with pkg-config only: shared, and fully
# static with names the runtime uses inside. The library exports exactly the
# header's functions; every man page renders without a warning. No KVM needed.
set -eu
meson=$1 build=$2 cc=$3 src=$4
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
out=$("$meson" install -C "$build" --no-rebuild --destdir "$dest" 2>&1) || { echo "$out" >&2; exit 1; }
pc=$(find "$dest" -name vthread.pc)
so=$(find "$dest" -name libvthread.so.0)
header=$(find "$dest" -name vthread.h)
[ -n "$pc" ] && [ -n "$so" ] && [ -n "$header" ] || { echo "install: no vthread.pc, libvthread.so.0 or vthread.h" >&2; exit 1; }
export PKG_CONFIG_PATH="${pc%/*}" PKG_CONFIG_SYSROOT_DIR="$dest"

echo "== shared, with pkg-config --cflags --libs vthread"
"$cc" -Wall -Wextra -Werror -o "$dest/consumer" "$src/install_consumer.c" $(pkg-config --cflags --libs vthread)
LD_LIBRARY_PATH="${so%/*}" "$dest/consumer"

echo "== fully static, with pkg-config --static, defining rt and mm_init itself"
"$cc" -Wall -Wextra -Werror -static -DOWN_NAMES -o "$dest/consumer-static" "$src/install_consumer.c" \
	$(pkg-config --cflags --static --libs vthread)
"$dest/consumer-static"

echo "== exports: the header's functions, each in a version node, and the interposed signal functions"
nm -D --defined-only "$so" | awk '$2 == "T" { print $3 }' | sort > "$dest/exports"
grep -v '@@GLIBC_2.2.5$' "$dest/exports" | sed 's/@.*//' > "$dest/exported"
grep -o '\<vthread_[a-z_]*(' "$header" | tr -d '(' | sort -u > "$dest/declared"
diff -u "$dest/declared" "$dest/exported"
! grep -v '@@VTHREAD_\|@@GLIBC_2.2.5$' "$dest/exports"
grep '@@GLIBC_2.2.5$' "$dest/exports" > "$dest/interposed"
printf '%s@@GLIBC_2.2.5\n' bsd_signal sigaction siginterrupt signal sysv_signal |
	diff -u - "$dest/interposed"
wc -l < "$dest/exported" | sed 's/$/ functions, each versioned/'

echo "== tools: --version"
version=$(pkg-config --modversion vthread)
for tool in $(find "$dest" -path '*/bin/*' -type f | sort); do
	out=$(LD_LIBRARY_PATH="${so%/*}" "$tool" --version)
	[ "$out" = "${tool##*/} (libvthread) $version" ] || { echo "$tool --version: '$out'" >&2; exit 1; }
	echo "$out"
done

echo "== man pages"
pages=$(find "$dest" -path '*/man/man*' -type f | sort)
if [ -z "$pages" ]; then
	[ "${VTHREAD_TEST_STRICT:-0}" = 1 ] && { echo "no man pages installed (scdoc missing?)" >&2; exit 1; }
	echo "no man pages installed (built with -Dman=disabled or without scdoc)"
	exit 0
fi
for f in $pages; do
	# .so links resolve against the installed tree, as man resolves them.
	out=$(cd "${f%/man/*}/man" && LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$f" 2>&1 >/dev/null)
	[ -z "$out" ] || { echo "$f: $out" >&2; exit 1; }
done
broken=$(find "$dest" -path '*/man/man*' -xtype l)
[ -z "$broken" ] || { echo "man links to nothing: $broken" >&2; exit 1; }
links=$(find "$dest" -path '*/man/man*' -type l | wc -l)
echo "$(echo "$pages" | wc -l) pages render without warnings; $links other names link to them"

echo "== gdb's auto-load scripts, where gdb looks for the installed library's and the shim's"
for lib in "$(readlink -f "$so")" "$(find "$dest" -name libvthread-shim.so)"; do
	script=$(find "$dest" -path "*/gdb/auto-load${lib#"$dest"}-gdb.py")
	[ -n "$script" ] || { echo "no gdb script for ${lib#"$dest"}" >&2; exit 1; }
	python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' "$script"
	echo "${script#"$dest"}"
done
