set terminal pngcairo size 1100,650 noenhanced font ',10'
set output 'latency.png'
set title "one-hop round trip (ns)"
set logscale xy
set xrange [1:*]
set xlabel 'percentile'
set ylabel 'latency (ns)'
set xtics ('0%%' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, '99.999%%' 100000)
set grid xtics ytics mytics
set key outside right top
$d0 << EOD
1 140.2
2 603.6
4 763.8
10 813.1
20 862.4
100 1084.3
200 1232.2
1000 2415.5
2000 3007.2
10000 44176
100000 93085.6
EOD
$d1 << EOD
1 130.2
2 591.3
4 751.5
10 813.1
20 837.8
100 1035
200 1207.6
1000 1404.8
2000 2563.4
10000 29976.4
100000 77308.3
EOD
$d2 << EOD
1 180.3
2 702.2
4 887.1
10 911.7
20 985.7
100 1232.2
200 1355.5
1000 2809.9
2000 3549.5
10000 37076.2
100000 64686.5
EOD
$d3 << EOD
1 120.2
2 591.3
4 751.5
10 837.8
20 887.1
100 1059.7
200 1182.9
1000 2169
2000 2612.7
10000 30765.3
100000 52064.6
EOD
$d4 << EOD
1 2553.8
2 10057.6
4 11438.1
10 15382.5
20 20510.1
100 26821
200 30765.3
1000 56797.8
2000 78886
10000 555360
100000 2.12047e+06
EOD
$d5 << EOD
1 120.2
2 677.5
4 726.8
10 776.2
20 813.1
100 1528
200 1577.3
1000 1676
2000 2563.4
10000 29187.6
100000 59953.3
EOD
$d6 << EOD
1 120.2
2 702.2
4 751.5
10 788.5
20 837.8
100 1454.1
200 1528
1000 2169
2000 3253.7
10000 53642.4
100000 119907
EOD
$d7 << EOD
1 110.2
2 751.5
4 887.1
10 911.7
20 961
100 1010.3
200 1035
1000 1873.2
2000 11043.7
10000 44964.9
100000 116752
EOD
$d8 << EOD
1 250.4
2 1109
4 16171.3
10 26821
20 26821
100 30765.3
200 37076.2
1000 46542.6
2000 58375.5
10000 110441
100000 1.11072e+06
EOD
$d9 << EOD
1 380.6
2 1232.2
4 13804.7
10 26821
20 26821
100 28398.7
200 32343
1000 47331.4
2000 58375.5
10000 94663.3
100000 1.61559e+06
EOD
$d10 << EOD
1 10
2 443.4
4 480.3
10 529.6
20 566.6
100 628.2
200 652.9
1000 837.8
2000 2021.1
10000 18537.9
100000 72575.1
EOD
plot $d0 using 1:2 with linespoints pointsize 0.6 lc rgb '#1f77b4' lw 2 dt 1 title "tachyon_busy_spin", \
     $d1 using 1:2 with linespoints pointsize 0.6 lc rgb '#d62728' lw 2 dt 1 title "tachyon_busy_spin_no_ts", \
     $d2 using 1:2 with linespoints pointsize 0.6 lc rgb '#2ca02c' lw 2 dt 1 title "tachyon_yield", \
     $d3 using 1:2 with linespoints pointsize 0.6 lc rgb '#ff7f0e' lw 2 dt 1 title "tachyon_spin_then_park", \
     $d4 using 1:2 with linespoints pointsize 0.6 lc rgb '#9467bd' lw 2 dt 1 title "tachyon_parked", \
     $d5 using 1:2 with linespoints pointsize 0.6 lc rgb '#8c564b' lw 1 dt 2 title "moodycamel_tokens", \
     $d6 using 1:2 with linespoints pointsize 0.6 lc rgb '#e377c2' lw 1 dt 2 title "moodycamel_64B", \
     $d7 using 1:2 with linespoints pointsize 0.6 lc rgb '#17becf' lw 1 dt 2 title "atomic_queue", \
     $d8 using 1:2 with linespoints pointsize 0.6 lc rgb '#7f7f7f' lw 1 dt 2 title "mutex_cv", \
     $d9 using 1:2 with linespoints pointsize 0.6 lc rgb '#bcbd22' lw 1 dt 2 title "asio_thread_pool", \
     $d10 using 1:2 with linespoints pointsize 0.6 lc rgb '#000000' lw 1 dt 2 title "cache_line"
