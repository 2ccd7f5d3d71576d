"""`python -m bench`: the media benchmark (see `bench.media_bench`)."""

from bench.media_bench import main

raise SystemExit(main())
