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
1 225.8
2 430.4
4 504.2
10 553.5
20 713.5
100 26781
200 252059
1000 1.03344e+06
2000 1.20989e+06
10000 1.58798e+06
100000 1.71257e+06
EOD
$d1 << EOD
1 228.1
2 442.7
4 467.3
10 541.2
20 578.1
100 11814.9
200 26781
1000 453707
2000 831797
10000 1.41153e+06
100000 1.53756e+06
EOD
$d2 << EOD
1 165.4
2 442.7
4 491.9
10 553.5
20 615
100 10042.6
200 22448.7
1000 428501
2000 743576
10000 1.33592e+06
100000 1.46195e+06
EOD
$d3 << EOD
1 205
2 455
4 491.9
10 553.5
20 701.1
100 21661
200 74042.2
1000 1.33592e+06
2000 1.91565e+06
10000 2.47019e+06
100000 2.5851e+06
EOD
$d4 << EOD
1 169.6
2 528.8
4 627.3
10 935
20 2510.4
100 23630.2
200 51986.9
1000 466310
2000 693164
10000 1.23509e+06
100000 1.36112e+06
EOD
$d5 << EOD
1 168.8
2 528.8
4 676.5
10 861.1
20 1033.5
100 40171.6
200 80343.7
1000 617546
2000 1.20989e+06
10000 1.38633e+06
100000 1.47543e+06
EOD
plot $d0 using 1:2 with linespoints pointsize 0.6 lc rgb '#1f77b4' lw 2 dt 1 title "tachyon@100k/s", \
     $d1 using 1:2 with linespoints pointsize 0.6 lc rgb '#d62728' lw 2 dt 1 title "tachyon@500k/s", \
     $d2 using 1:2 with linespoints pointsize 0.6 lc rgb '#2ca02c' lw 2 dt 1 title "tachyon@1M/s", \
     $d3 using 1:2 with linespoints pointsize 0.6 lc rgb '#ff7f0e' lw 2 dt 1 title "tachyon@2M/s", \
     $d4 using 1:2 with linespoints pointsize 0.6 lc rgb '#9467bd' lw 2 dt 1 title "tachyon@4M/s", \
     $d5 using 1:2 with linespoints pointsize 0.6 lc rgb '#8c564b' lw 2 dt 1 title "tachyon@saturation"
