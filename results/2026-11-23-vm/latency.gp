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
1 225.4
2 516.5
4 590.4
10 651.9
20 688.8
100 910.4
200 1008.8
1000 2264.2
2000 3839.6
10000 35445.5
100000 61439.2
EOD
$d1 << EOD
1 300
2 615
4 664.2
10 701.1
20 762.7
100 885.8
200 1008.8
1000 2461.1
2000 3938
10000 44897.8
100000 103974
EOD
$d2 << EOD
1 245.4
2 528.8
4 615
10 664.2
20 725.8
100 935
200 1008.8
1000 2264.2
2000 3839.6
10000 40959.3
100000 88220.5
EOD
$d3 << EOD
1 2564.6
2 11027.2
4 12405.7
10 21661
20 22842.5
100 29144
200 40171.6
1000 67740.7
2000 81919
10000 352883
100000 2.06689e+06
EOD
$d4 << EOD
1 303.1
2 504.2
4 541.2
10 565.8
20 590.4
100 1058.1
200 1107.3
1000 1919.6
2000 3642.7
10000 34657.8
100000 58288.4
EOD
$d5 << EOD
1 272.3
2 504.2
4 553.5
10 590.4
20 615
100 1082.7
200 1156.5
1000 3544.2
2000 11224.2
10000 38596.3
100000 70891.4
EOD
$d6 << EOD
1 279.2
2 516.5
4 553.5
10 578.1
20 602.7
100 627.3
200 639.6
1000 1131.9
2000 2855
10000 29144
100000 74042.2
EOD
$d7 << EOD
1 432.3
2 29144
4 35445.5
10 38596.3
20 40171.6
100 43322.4
200 50411.6
1000 94522
2000 116577
10000 680561
100000 1.48715e+06
EOD
$d8 << EOD
1 690.8
2 26781
4 35445.5
10 38596.3
20 39384
100 42534.7
200 49623.9
1000 89795.9
2000 107125
10000 592340
100000 1.71401e+06
EOD
$d9 << EOD
1 91.5
2 282.7
4 319.6
10 331.9
20 338.1
100 350.4
200 356.5
1000 627.3
2000 1771.9
10000 3741.1
100000 67740.7
EOD
plot $d0 using 1:2 with linespoints pointsize 0.6 lc rgb '#1f77b4' lw 2 dt 1 title "tachyon_busy_spin", \
     $d1 using 1:2 with linespoints pointsize 0.6 lc rgb '#d62728' lw 2 dt 1 title "tachyon_yield", \
     $d2 using 1:2 with linespoints pointsize 0.6 lc rgb '#2ca02c' lw 2 dt 1 title "tachyon_spin_then_park", \
     $d3 using 1:2 with linespoints pointsize 0.6 lc rgb '#ff7f0e' lw 2 dt 1 title "tachyon_parked", \
     $d4 using 1:2 with linespoints pointsize 0.6 lc rgb '#9467bd' lw 1 dt 2 title "moodycamel_tokens", \
     $d5 using 1:2 with linespoints pointsize 0.6 lc rgb '#8c564b' lw 1 dt 2 title "moodycamel_64B", \
     $d6 using 1:2 with linespoints pointsize 0.6 lc rgb '#e377c2' lw 1 dt 2 title "atomic_queue", \
     $d7 using 1:2 with linespoints pointsize 0.6 lc rgb '#17becf' lw 1 dt 2 title "mutex_cv", \
     $d8 using 1:2 with linespoints pointsize 0.6 lc rgb '#7f7f7f' lw 1 dt 2 title "asio_thread_pool", \
     $d9 using 1:2 with linespoints pointsize 0.6 lc rgb '#bcbd22' lw 1 dt 2 title "cache_line"
