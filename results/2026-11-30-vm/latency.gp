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
2 221.5
4 233.8
10 332.4
20 776.2
100 862.4
200 887.1
1000 1232.2
2000 1306.2
10000 39443
100000 72575.4
EOD
$d1 << EOD
1 120.2
2 221.5
4 221.5
10 332.4
20 776.2
100 837.8
200 887.1
1000 1232.2
2000 1232.2
10000 3549.5
100000 44965.1
EOD
$d2 << EOD
1 160.2
2 591.3
4 603.6
10 763.8
20 887.1
100 985.7
200 1059.7
1000 1873.2
2000 3056.5
10000 37865.3
100000 66264.5
EOD
$d3 << EOD
1 100.1
2 215.3
4 246.1
10 350.9
20 911.7
100 961
200 985.7
1000 1232.2
2000 1823.9
10000 36287.5
100000 82041.8
EOD
$d4 << EOD
1 1021.5
2 8874.4
4 10057.7
10 14199.2
20 15382.5
100 22482.3
200 26821.1
1000 55220.3
2000 77308.6
10000 593228
100000 2.27194e+06
EOD
$d5 << EOD
1 130.2
2 181.4
4 190.7
10 363.2
20 739.2
100 813.1
200 862.4
1000 1626.7
2000 1626.7
10000 2612.7
100000 50487.1
EOD
$d6 << EOD
1 110.2
2 181.4
4 190.7
10 221.5
20 406.4
100 739.2
200 763.8
1000 1429.4
2000 1454.1
10000 2316.9
100000 38654.1
EOD
$d7 << EOD
1 110.2
2 221.5
4 233.8
10 246.1
20 295.4
100 911.7
200 961
1000 1035
2000 1035
10000 2267.6
100000 30765.4
EOD
$d8 << EOD
1 490.7
2 603.6
4 615.9
10 1035
20 24060.1
100 26821.1
200 27610
1000 37865.3
2000 41809.6
10000 61531.3
100000 148307
EOD
$d9 << EOD
1 490.7
2 677.5
4 702.2
10 1281.5
20 13804.8
100 26821.1
200 27610
1000 34709.8
2000 39443
10000 61531.3
100000 151462
EOD
$d10 << EOD
1 10
2 110.5
4 122.9
10 150.6
20 492.7
100 578.9
200 591.3
1000 652.9
2000 689.9
10000 2316.9
100000 67842.2
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
