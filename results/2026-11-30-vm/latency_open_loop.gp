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
1 86.3
2 150.6
4 156.8
10 169.1
20 209.2
100 12227.1
200 37865.3
1000 807800
2000 1.51463e+06
10000 2.12048e+06
100000 2.25957e+06
EOD
$d1 << EOD
1 63.6
2 147.5
4 162.9
10 184.5
20 203
100 10846.5
200 52064.9
1000 2.12048e+06
2000 2.87779e+06
10000 3.43315e+06
100000 3.56775e+06
EOD
$d2 << EOD
1 57.8
2 135.2
4 150.6
10 159.9
20 172.2
100 14593.7
200 195639
1000 2.22145e+06
2000 2.87779e+06
10000 3.53413e+06
100000 3.53413e+06
EOD
$d3 << EOD
1 55.5
2 122.9
4 132.1
10 153.7
20 190.7
100 467009
200 1.6156e+06
1000 4.039e+06
2000 4.8468e+06
10000 5.35168e+06
100000 5.47124e+06
EOD
$d4 << EOD
1 46.6
2 119.8
4 138.3
10 169.1
20 203
100 16565.8
200 53642.6
1000 1.13597e+06
2000 1.86804e+06
10000 2.37291e+06
100000 2.49815e+06
EOD
$d5 << EOD
1 74.3
2 240
4 295.4
10 369.4
20 480.3
100 66264.5
200 116752
1000 744690
2000 1.00975e+06
10000 2.32243e+06
100000 2.3492e+06
EOD
plot $d0 using 1:2 with linespoints pointsize 0.6 lc rgb '#1f77b4' lw 2 dt 1 title "tachyon@100k/s", \
     $d1 using 1:2 with linespoints pointsize 0.6 lc rgb '#d62728' lw 2 dt 1 title "tachyon@500k/s", \
     $d2 using 1:2 with linespoints pointsize 0.6 lc rgb '#2ca02c' lw 2 dt 1 title "tachyon@1M/s", \
     $d3 using 1:2 with linespoints pointsize 0.6 lc rgb '#ff7f0e' lw 2 dt 1 title "tachyon@2M/s", \
     $d4 using 1:2 with linespoints pointsize 0.6 lc rgb '#9467bd' lw 2 dt 1 title "tachyon@4M/s", \
     $d5 using 1:2 with linespoints pointsize 0.6 lc rgb '#8c564b' lw 2 dt 1 title "tachyon@saturation"
