# vthread-bench's chart: per row, the time of an operation in a vthread divided by
# its time in a pthread. vthread-bench embeds this script at build time and feeds
# it to gnuplot's standard input, after these settings:
#   rows          the number of rows
#   chart_title   the machine, the backend, the library's version and commit
#   noisy_spread  the p90/p10 of a row's paired ratios above which it is noisy
#   ratio_key     what the points and whiskers are, for the legend
#   $ratios       a line per row: "name" median p10 p90 noisy (0 or 1), where
#                 median, p10 and p90 are those of the paired ratios (sample i
#                 as a vthread over sample i as a pthread, taken one after the
#                 other), or for a run saved by an older bench those ratio_key says
#   set output    the SVG file
# The axis is fixed so that charts of different runs compare at a glance: kvm_pvm's
# most expensive row (hostcall, ~2800x) fits, and so does a vthread twice as fast.
lo = 0.5
hi = 10000
clamp(x) = x < lo ? lo : x > hi ? hi : x
fmt(x) = sprintf(x < 10 ? "%.2fx" : x < 100 ? "%.1fx" : "%.0fx", x)

set terminal svg size 1000, 200 + 30 * rows dynamic font "sans,12" background "white"
set title chart_title noenhanced
set logscale x
set xrange [lo:hi]
set xtics ("1x" 1, "10x" 10, "100x" 100, "1000x" 1000, "10000x" 10000)
set mxtics 10
set grid xtics lc "#dddddd"
set xlabel "vthread / pthread, time per operation (log scale)"
set ylabel "row"
# The first row at the top.
set yrange [rows - 0.5 : -0.5]
set ytics scale 0 noenhanced
# Room on the right for a value off the axis, below for the legend.
set rmargin 22
set key below box
set bmargin 8
set style line 1 lc "#1b6ac9" pt 7 ps 0.8 lw 1.5
set style line 2 lc "#d95f02" pt 7 ps 0.8 lw 1.5
set arrow from 1, graph 0 to 1, graph 1 nohead lc "black" lw 1.5 back

# Noisy rows are drawn again over the others, in their own colour.
plot $ratios using (clamp($2)):0:(clamp($3)):(clamp($4)):ytic(1) with xerrorbars ls 1 \
	title ratio_key, \
     '' using ($5 > 0 ? clamp($2) : NaN):0:(clamp($3)):(clamp($4)) with xerrorbars ls 2 \
	title sprintf("noisy row: p90/p10 over %g", noisy_spread), \
     '' using (clamp($4)):0:(fmt($2) . ($2 > hi || $2 < lo ? " (off the axis)" : "")) \
	with labels left offset char 1, 0 notitle, \
     keyentry with lines lc "black" lw 1.5 title "1x: as fast as a pthread"
