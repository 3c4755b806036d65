set terminal pngcairo size 1100,650 noenhanced font ',10'
set output 'latency_open_loop.png'
set title "tachyon: one-way latency under open-loop offered load, CO-corrected (ns)"
set logscale xy
set xrange [1:*]
set xlabel 'percentile'
set ylabel 'latency (ns)'
set xtics ('0%%' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, '99.999%%' 100000)
set grid xtics ytics mytics
set key outside right top
$d0 << EOD
1 278.5
2 542
4 554.3
10 652.9
20 726.8
100 37076.2
200 517494
1000 2.57485e+06
2000 3.33216e+06
10000 3.93801e+06
100000 4.02529e+06
EOD
$d1 << EOD
1 228
2 529.6
4 542
10 566.6
20 665.2
100 24454.4
200 97818.7
1000 1.18645e+06
2000 1.56511e+06
10000 2.12047e+06
100000 2.22144e+06
EOD
$d2 << EOD
1 215.7
2 517.3
4 542
10 578.9
20 640.6
100 22876.7
200 757309
1000 2.72631e+06
2000 3.07972e+06
10000 3.43314e+06
100000 3.49947e+06
EOD
$d3 << EOD
1 143.7
2 529.6
4 640.6
10 689.9
20 788.5
100 33131.9
200 309234
1000 2.27193e+06
2000 2.97875e+06
10000 3.53411e+06
100000 3.66318e+06
EOD
$d4 << EOD
1 139.4
2 714.5
4 44964.9
10 1.00975e+06
20 3.33216e+06
100 5.04873e+06
200 5.04873e+06
1000 5.08849e+06
2000 5.08849e+06
10000 5.08849e+06
100000 5.08849e+06
EOD
$d5 << EOD
1 250
2 665.2
4 751.5
10 911.7
20 1109
100 3648.1
200 309234
1000 2.87778e+06
2000 3.23119e+06
10000 3.52611e+06
100000 3.52611e+06
EOD
plot $d0 using 1:2 with linespoints pointsize 0.6 lc rgb '#1f77b4' lw 2 dt 1 title "tachyon@100k/s", \
     $d1 using 1:2 with linespoints pointsize 0.6 lc rgb '#d62728' lw 2 dt 1 title "tachyon@500k/s", \
     $d2 using 1:2 with linespoints pointsize 0.6 lc rgb '#2ca02c' lw 2 dt 1 title "tachyon@1M/s", \
     $d3 using 1:2 with linespoints pointsize 0.6 lc rgb '#ff7f0e' lw 2 dt 1 title "tachyon@2M/s", \
     $d4 using 1:2 with linespoints pointsize 0.6 lc rgb '#9467bd' lw 2 dt 1 title "tachyon@4M/s", \
     $d5 using 1:2 with linespoints pointsize 0.6 lc rgb '#8c564b' lw 2 dt 1 title "tachyon@saturation"
