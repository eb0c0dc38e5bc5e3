#!/usr/bin/env python3
"""c-string.py IN OUT NAME: writes OUT, a C header that defines NAME as the text of IN."""
import os
import sys

src, out, name = sys.argv[1:]
with open(src, encoding="utf-8") as f:
    lines = f.read().splitlines()
quoted = ['"' + line.replace("\\", "\\\\").replace('"', '\\"') + '\\n"' for line in lines]
with open(out, "w", encoding="utf-8") as f:
    f.write("/* Generated from %s by c-string.py: edit that file. */\n" % os.path.basename(src))
    f.write("static const char %s[] =\n\t%s;\n" % (name, "\n\t".join(quoted)))
