"""`python -m bench`: the media benchmarks (`bench.media_bench`), then upload landed →
listed through a running `make run` (`bench.listing_bench`)."""

from bench.listing_bench import LISTING_BENCHMARKS
from bench.media_bench import BENCHMARKS, main

raise SystemExit(main(benchmarks=BENCHMARKS + LISTING_BENCHMARKS))
