"""Media benchmark: Kino's PyAV code against the `ffmpeg` command-line tool, side by side
in one run, on one generated 1080p clip.

Each benchmark is a named function from the shared `BenchContext` to a `Ratio`; add new
ones to `BENCHMARKS`. Timings are cached in the context by name, so
benchmarks share measurements (the PyAV transcode serves two ratios). Measurements that
are compared alternate between the two sides, and the best run of each counts: on a
small shared machine, background load otherwise decides the ratio.

Threading: PyAV gives codec contexts slice threading by default, while the `ffmpeg` tool
uses frame threads. Kino's `transcode` sets `thread_type = "AUTO"` on the decoder and
`"FRAME"` on libx264 (thread count 0, FFmpeg's automatic count, on both sides), which is
what makes the comparison fair; the decode benchmark also prints PyAV left on its default
slice threading, to show the difference.

The trimming benchmarks use their own source, a 60 s 720p clip with a keyframe every 2 s
(made once, on first use): a frame-accurate cut seeks to the keyframe before its start,
so its cost follows the span, not where the span is in the file.

The ladder benchmark has a source of its own too, a 60 s 720p VP9/Opus WebM (made once,
on first use, with libvpx-vp9's realtime settings): a source that must be re-encoded
for every rung, so one decode serving them all is what it measures.

The `ffmpeg` tool is Debian's package (its own FFmpeg and libx264 builds, possibly
older than PyAV's bundled ones); the x264 build of each output is printed so a gap can
be told apart from a version difference.
"""

from __future__ import annotations

import argparse
import heapq
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

from services.transcoder.media.cut import cut
from services.transcoder.media.ladder import (
    DEFAULT_HEIGHTS,
    KEYFRAME_SECONDS,
    MOVFLAGS,
    Rung,
    encode_renditions,
    plan_ladder,
)
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.playback import make_playback, transcode
from services.transcoder.media.probe import MediaInfo, MediaLimits, probe
from services.transcoder.media.smart_cut import smart_cut

CLIP_SIZE = (1920, 1080)
CLIP_FPS = 30
#: The trimming benchmarks' source: 60 s of 720p, a keyframe every 2 s.
TRIM_CLIP_SIZE = (1280, 720)
TRIM_CLIP_SECONDS = 60.0
TRIM_CLIP_KEYINT = 2 * CLIP_FPS
#: The ladder benchmark's source: 60 s of 720p VP9 and Opus in WebM.
LADDER_CLIP_SIZE = (1280, 720)
LADDER_CLIP_SECONDS = 60.0
FFMPEG_MISSING = "install it with `apt-get install -y ffmpeg` (Debian/Ubuntu)"


@dataclass(frozen=True)
class Ratio:
    name: str
    #: None when the benchmark was skipped.
    value: float | None
    #: e.g. ">= 0.95"
    target: str
    detail: str

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "SKIPPED"
        op, bound = self.target.split()
        met = self.value >= float(bound) if op == ">=" else self.value <= float(bound)
        return "ok" if met else "MISSED"


@dataclass
class BenchContext:
    workdir: Path
    clip: Path
    info: MediaInfo
    frames: int
    profile: PlaybackProfile
    ffmpeg: str | None
    #: Side-by-side measurements alternate this many times; the best run counts.
    rounds: int = 2
    #: Wall times in seconds of every run, by measurement name.
    samples: dict[str, list[float]] = field(default_factory=dict)
    #: Further sources benchmarks made (once), by name.
    sources: dict[str, tuple[Path, MediaInfo]] = field(default_factory=dict)

    def sample(self, name: str, action: Callable[[], object]) -> float:
        """Run `action` once, record and return its wall time."""
        started = time.perf_counter()
        action()
        elapsed = time.perf_counter() - started
        self.samples.setdefault(name, []).append(elapsed)
        return elapsed

    def best(self, name: str, action: Callable[[], object], runs: int = 1) -> float:
        """The best time of `name` over at least `runs` runs, reusing earlier ones."""
        while len(self.samples.get(name, [])) < runs:
            self.sample(name, action)
        return min(self.samples[name])

    def side_by_side(
        self, first: tuple[str, Callable[[], object]], second: tuple[str, Callable[[], object]]
    ) -> tuple[float, float]:
        """Best times of two actions run in turn `rounds` times (so background load hits
        both alike), reusing earlier samples of either."""
        for _ in range(self.rounds):
            self.sample(*first)
            self.sample(*second)
        return self.best(*first), self.best(*second)

    def run_ffmpeg(self, *args: str) -> None:
        assert self.ffmpeg is not None
        subprocess.run(
            [self.ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
            check=True,
        )


Benchmark = Callable[[BenchContext], Ratio]


def transcode_vs_ffmpeg(ctx: BenchContext) -> Ratio:
    """PyAV `transcode` fps ÷ `ffmpeg` fps, same libx264/AAC settings and thread count."""
    name, target = "transcode fps, PyAV / ffmpeg", ">= 0.95"
    pyav_out, cli_out = ctx.workdir / "pyav.mp4", ctx.workdir / "cli.mp4"

    def pyav_transcode() -> None:
        transcode(ctx.clip, pyav_out, ctx.info, ctx.profile)

    if ctx.ffmpeg is None:
        ctx.best("pyav transcode", pyav_transcode)  # still wanted by remux_vs_transcode
        return Ratio(name, None, target, f"ffmpeg not on PATH: {FFMPEG_MISSING}")
    threads = str(ctx.profile.threads)

    def cli_transcode() -> None:
        ctx.run_ffmpeg(
            "-threads", threads, "-i", str(ctx.clip),
            "-map", "0:v:0", "-map", "0:a:0?",
            "-c:v", "libx264", "-preset", ctx.profile.preset, "-crf", str(ctx.profile.crf),
            "-pix_fmt", "yuv420p", "-threads", threads,
            "-c:a", "aac", "-b:a", str(ctx.profile.audio_bitrate),
            "-movflags", "+faststart", str(cli_out),
        )  # fmt: skip

    pyav, cli = ctx.side_by_side(
        ("pyav transcode", pyav_transcode), ("ffmpeg transcode", cli_transcode)
    )
    detail = (
        f"best of {ctx.rounds}: PyAV {ctx.frames / pyav:.1f} fps ({pyav:.1f} s), "
        f"ffmpeg {ctx.frames / cli:.1f} fps ({cli:.1f} s); x264 PyAV: {_x264_build(pyav_out)}, "
        f"ffmpeg: {_x264_build(cli_out)}; output {pyav_out.stat().st_size // 1024} KiB vs "
        f"{cli_out.stat().st_size // 1024} KiB"
    )
    return Ratio(name, cli / pyav, target, detail)


def decode_vs_ffmpeg(ctx: BenchContext) -> Ratio:
    """PyAV decode fps (thread_type AUTO) ÷ `ffmpeg -i clip -f null -` fps."""
    name, target = "decode fps, PyAV / ffmpeg", ">= 0.9"

    def pyav_decode() -> None:
        _decode_everything(ctx.clip, "AUTO")

    def cli_decode() -> None:
        ctx.run_ffmpeg("-i", str(ctx.clip), "-f", "null", "-")

    if ctx.ffmpeg is None:
        return Ratio(name, None, target, f"ffmpeg not on PATH: {FFMPEG_MISSING}")
    for _ in range(ctx.rounds + 1):
        ctx.sample("pyav decode", pyav_decode)
        ctx.sample("ffmpeg decode", cli_decode)
    pyav, cli = ctx.best("pyav decode", pyav_decode), ctx.best("ffmpeg decode", cli_decode)
    slice_threads = ctx.best(
        "pyav decode, slice threads", lambda: _decode_everything(ctx.clip, None)
    )
    detail = (
        f"best of {ctx.rounds + 1}: PyAV {ctx.frames / pyav:.0f} fps, ffmpeg "
        f"{ctx.frames / cli:.0f} fps (PyAV left on its default slice threading: "
        f"{ctx.frames / slice_threads:.0f} fps)"
    )
    return Ratio(name, cli / pyav, target, detail)


def remux_vs_transcode(ctx: BenchContext) -> Ratio:
    """`make_playback` on a playable H.264/AAC MP4 (remux) ÷ the PyAV transcode of it.

    The remux decodes every packet it copies, so that no undecodable packet reaches the
    playback file (it falls back to a transcode that leaves them out): it costs about
    one decode of the file, measured at 0.07-0.12 of the transcode (1080p, veryfast)."""
    name, target = "playback time, remux / transcode", "<= 0.15"
    remux_out, pyav_out = ctx.workdir / "remuxed.mp4", ctx.workdir / "pyav.mp4"
    remuxed: list[bool] = []
    remux = ctx.best(
        "make_playback remux",
        lambda: remuxed.append(make_playback(ctx.clip, remux_out, ctx.info, ctx.profile)),
        runs=3,
    )
    if not all(remuxed):
        return Ratio(name, None, target, "make_playback re-encoded a playable clip")
    full = ctx.best("pyav transcode", lambda: transcode(ctx.clip, pyav_out, ctx.info, ctx.profile))
    return Ratio(name, remux / full, target, f"remux {remux:.2f} s, transcode {full:.1f} s")


def cut_vs_decoding_from_the_start(ctx: BenchContext) -> Ratio:
    """A frame-accurate 2 s cut at 45 s ÷ decoding and re-encoding the file's first 47 s
    (what a cut that cannot seek does, and more)."""
    name, target = "cut 2 s at 45 s / re-encode 0-47 s", "<= 0.1"
    source, info = _trim_source(ctx)
    cut_out, naive_out = ctx.workdir / "cut-2s.mp4", ctx.workdir / "naive-47s.mp4"

    def short_cut() -> None:
        cut(source, cut_out, 45.0, 2.0, info, ctx.profile)

    def naive() -> None:
        cut(source, naive_out, 0.0, 47.0, info, ctx.profile)

    fast, slow = ctx.side_by_side(("cut 2 s at 45 s", short_cut), ("re-encode 0-47 s", naive))
    detail = f"best of {ctx.rounds}: cut {fast:.2f} s, re-encode from the start {slow:.1f} s"
    return Ratio(name, fast / slow, target, detail)


def cut_vs_transcode(ctx: BenchContext) -> Ratio:
    """A 30 s cut (mid-file) ÷ the playback transcode of a 30 s file of the same video:
    both re-encode everything; packet copying between keyframes would beat it."""
    name, target = "cut 30 s / transcode 30 s", "<= 1.1"
    source, info = _trim_source(ctx)
    head = ctx.workdir / "trim-head-30s.mp4"
    _copy_head(source, head, 30.0)
    head_info = probe(head, _BENCH_LIMITS)
    cut_out, transcode_out = ctx.workdir / "cut-30s.mp4", ctx.workdir / "transcode-30s.mp4"

    def long_cut() -> None:
        cut(source, cut_out, 16.0, 30.0, info, ctx.profile)

    def full() -> None:
        transcode(head, transcode_out, head_info, ctx.profile)

    cut_time, full_time = ctx.side_by_side(("cut 30 s", long_cut), ("transcode 30 s", full))
    detail = (
        f"best of {ctx.rounds}: cut {cut_time:.1f} s, transcode {full_time:.1f} s "
        f"({TRIM_CLIP_SIZE[1]}p, preset {ctx.profile.preset})"
    )
    return Ratio(name, cut_time / full_time, target, detail)


#: The smart-cut benchmarks' span: starts mid-group, so both edges are re-encoded.
SMART_START, SMART_SECONDS = 16.5, 30.0


def smart_cut_vs_full_cut(ctx: BenchContext) -> Ratio:
    """A 30 s smart cut (whole groups of pictures copied, edges re-encoded) ÷ the full
    re-encode (`cut`) of the same span."""
    name, target = "smart cut 30 s / full re-encode 30 s", "<= 0.15"
    source, info = _trim_source(ctx)
    smart_out, full_out = ctx.workdir / "smart-30s.mp4", ctx.workdir / "full-30s.mp4"

    def smart() -> None:
        smart_cut(source, smart_out, SMART_START, SMART_SECONDS, info, ctx.profile)

    def full() -> None:
        cut(source, full_out, SMART_START, SMART_SECONDS, info, ctx.profile)

    fast, slow = ctx.side_by_side(("smart cut 30 s", smart), ("full re-encode 30 s", full))
    detail = f"best of {ctx.rounds}: smart {fast:.2f} s, full re-encode {slow:.1f} s"
    return Ratio(name, fast / slow, target, detail)


def smart_cut_edge_quality(ctx: BenchContext) -> Ratio:
    """PSNR (luma) of the smart cut's re-encoded frames against the source's: the worst
    frame. Copied frames decode identically and are left out."""
    name, target = "smart cut edges PSNR (dB, worst)", ">= 40"
    source, info = _trim_source(ctx)
    output = ctx.workdir / "smart-30s-quality.mp4"
    result = smart_cut(source, output, SMART_START, SMART_SECONDS, info, ctx.profile)
    with av.open(str(source)) as original, av.open(str(output)) as clip:
        original.seek(round((result.actual_start - 1) * av.time_base))
        wanted = (f for f in original.decode(video=0) if f.time >= result.actual_start - 1e-6)
        scores = [
            _psnr(reference, made)
            for reference, made in zip(wanted, clip.decode(video=0), strict=False)
        ]
    edges = [score for score in scores if math.isfinite(score)]
    worst = min(edges) if edges else math.inf
    mean = sum(edges) / len(edges) if edges else math.inf
    detail = (
        f"{result.method}: {len(edges)} re-encoded frames of {len(scores)}, "
        f"worst {worst:.1f} dB, mean {mean:.1f} dB; {result.copied_packets} packets copied"
    )
    return Ratio(name, worst, target, detail)


def short_cut_vs_ffmpeg(ctx: BenchContext) -> Ratio:
    """Kino's cut (smart where it can) of 2 s at 45 s ÷ the `ffmpeg` command line's
    frame-accurate cut of the same span (`-ss` before `-i`: seek, then decode to the
    exact start), same encoder settings."""
    name, target = "cut 2 s at 45 s, Kino / ffmpeg", "<= 1.0"
    source, info = _trim_source(ctx)
    if ctx.ffmpeg is None:
        return Ratio(name, None, target, f"ffmpeg not on PATH: {FFMPEG_MISSING}")
    kino_out, cli_out = ctx.workdir / "kino-2s.mp4", ctx.workdir / "ffmpeg-2s.mp4"
    threads = str(ctx.profile.threads)
    methods: list[str] = []

    def kino() -> None:
        methods.append(smart_cut(source, kino_out, 45.0, 2.0, info, ctx.profile).method)

    def cli() -> None:
        ctx.run_ffmpeg(
            "-threads", threads, "-ss", "45", "-i", str(source), "-t", "2",
            "-map", "0:v:0", "-map", "0:a:0?",
            "-c:v", "libx264", "-preset", ctx.profile.preset, "-crf", str(ctx.profile.crf),
            "-pix_fmt", "yuv420p", "-threads", threads,
            "-c:a", "aac", "-b:a", str(ctx.profile.audio_bitrate),
            "-movflags", "+faststart", str(cli_out),
        )  # fmt: skip

    fast, slow = ctx.side_by_side(("kino cut 2 s", kino), ("ffmpeg cut 2 s", cli))
    detail = f"best of {ctx.rounds}: Kino {fast:.2f} s ({methods[-1]}), ffmpeg {slow:.2f} s"
    return Ratio(name, fast / slow, target, detail)


def ladder_vs_ffmpeg(ctx: BenchContext) -> Ratio:
    """Kino's ladder (`encode_renditions`: one decode of the source feeding the 720p, 480p,
    360p and 240p encoders, one AAC encode muxed into all four) ÷ the `ffmpeg` command
    line run once per rung, one after another (each decoding the source again), with the
    same x264 preset, CRF, maxrate/bufsize, keyframes every 2 s, AAC and MP4 flags."""
    name, target = "ladder, one decode / separate ffmpeg transcodes", "<= 0.8"
    if ctx.ffmpeg is None:
        return Ratio(name, None, target, f"ffmpeg not on PATH: {FFMPEG_MISSING}")
    source, info = _ladder_source(ctx)
    rungs = plan_ladder(info, DEFAULT_HEIGHTS, ctx.profile.max_height)
    outputs = [(rung, ctx.workdir / f"ladder-{rung.name}.mp4") for rung in rungs]
    cli_outputs = [(rung, ctx.workdir / f"ffmpeg-ladder-{rung.name}.mp4") for rung in rungs]
    threads = str(ctx.profile.threads)

    def kino() -> None:
        encode_renditions(source, outputs, info, ctx.profile)

    def cli() -> None:
        for rung, output in cli_outputs:
            ctx.run_ffmpeg(
                "-threads", threads, "-i", str(source),
                "-map", "0:v:0", "-map", "0:a:0?",
                "-vf", f"scale={rung.width}:{rung.height},setsar=1",
                "-c:v", "libx264", "-preset", ctx.profile.preset, "-crf", str(ctx.profile.crf),
                "-maxrate", str(rung.video_bitrate), "-bufsize", str(2 * rung.video_bitrate),
                "-force_key_frames", f"expr:gte(t,n_forced*{KEYFRAME_SECONDS:g})",
                "-forced-idr", "1", "-x264-params", "scenecut=0:keyint=infinite",
                "-pix_fmt", "yuv420p", "-threads", threads,
                "-c:a", "aac", "-b:a", str(ctx.profile.audio_bitrate),
                "-movflags", MOVFLAGS, str(output),
            )  # fmt: skip

    fast, slow = ctx.side_by_side(("kino ladder", kino), ("ffmpeg ladder", cli))
    detail = (
        f"best of {ctx.rounds}: Kino {fast:.1f} s, ffmpeg {slow:.1f} s for {len(rungs)} rungs "
        f"of {LADDER_CLIP_SECONDS:g} s of {LADDER_CLIP_SIZE[1]}p VP9 (preset "
        f"{ctx.profile.preset}); output {_total_kib(outputs)} KiB vs "
        f"{_total_kib(cli_outputs)} KiB; x264 PyAV: {_x264_build(outputs[0][1])}, "
        f"ffmpeg: {_x264_build(cli_outputs[0][1])}"
    )
    return Ratio(name, fast / slow, target, detail)


def _psnr(reference: VideoFrame, made: VideoFrame) -> float:
    a = reference.to_ndarray(format="gray").astype(numpy.float64)
    b = made.to_ndarray(format="gray").astype(numpy.float64)
    mse = float(numpy.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


BENCHMARKS: list[tuple[str, Benchmark]] = [
    ("transcode", transcode_vs_ffmpeg),
    ("decode", decode_vs_ffmpeg),
    ("remux", remux_vs_transcode),
    ("cut", cut_vs_decoding_from_the_start),
    ("cut-30s", cut_vs_transcode),
    ("smart-cut", smart_cut_vs_full_cut),
    ("smart-edges", smart_cut_edge_quality),
    ("cut-vs-ffmpeg", short_cut_vs_ffmpeg),
    ("ladder", ladder_vs_ffmpeg),
]

_BENCH_LIMITS = MediaLimits(max_duration_seconds=4 * 3600, max_width=7680, max_height=4320)


def make_bench_clip(
    path: Path,
    seconds: float,
    size: tuple[int, int] = CLIP_SIZE,
    keyint: int | None = None,
    codecs: tuple[str, str] = ("libx264", "aac"),
) -> int:
    """A clip (1080p unless `size` says) of FFmpeg's `testsrc2` and a sine, H.264/AAC
    unless `codecs` says otherwise, in the container `path`'s suffix names: libx264 at
    `ultrafast` (a keyframe every `keyint` frames if given) or libvpx-vp9 at its realtime
    speed, so it is quick to make. Returns its frame count."""
    frames = round(seconds * CLIP_FPS)
    video_codec, audio_codec = codecs
    options = (
        {"deadline": "realtime", "cpu-used": "8"}
        if video_codec == "libvpx-vp9"
        else {"preset": "ultrafast"}
    )
    if keyint is not None:
        options["x264-params"] = f"keyint={keyint}:min-keyint={keyint}:scenecut=0"
    with av.open(str(path), "w") as output:
        video = output.add_stream(video_codec, rate=CLIP_FPS, options=options)
        assert isinstance(video, VideoStream)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.thread_type = "FRAME"
        sound = output.add_stream(audio_codec, rate=48_000)
        assert isinstance(sound, AudioStream)
        # Pictures and sound in time order, interleaved as a recording is.
        for frame in heapq.merge(
            _lavfi_frames(f"testsrc2=size={size[0]}x{size[1]}:rate={CLIP_FPS}:duration={seconds}"),
            _lavfi_frames(f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
            key=lambda frame: frame.time or 0.0,
        ):
            if isinstance(frame, VideoFrame):
                # Source filters mark every frame as I and libx264 obeys: let it choose.
                frame.pict_type = PictureType.NONE
                output.mux(video.encode(frame))
            else:
                output.mux(sound.encode(frame))
        output.mux(video.encode(None))
        output.mux(sound.encode(None))
    return frames


def main(
    argv: list[str] | None = None, benchmarks: list[tuple[str, Benchmark]] = BENCHMARKS
) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (30)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side (2)")
    parser.add_argument(
        "--only", action="append", choices=[name for name, _ in benchmarks], help="repeatable"
    )
    args = parser.parse_args(argv)

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print(f"ffmpeg is not on PATH: {FFMPEG_MISSING}.")
        print("Skipping the ratios against it (transcode, decode); the others still run.")
    with tempfile.TemporaryDirectory(prefix="kino-bench-") as tmp:
        workdir = Path(tmp)
        clip = workdir / "clip.mp4"
        print(f"generating a {CLIP_SIZE[0]}x{CLIP_SIZE[1]} {args.seconds:g} s clip...")
        started = time.perf_counter()
        frames = make_bench_clip(clip, args.seconds)
        print(f"  done in {time.perf_counter() - started:.1f} s")
        ctx = BenchContext(
            workdir=workdir,
            clip=clip,
            info=probe(clip, _BENCH_LIMITS),
            frames=frames,
            profile=PlaybackProfile(),
            ffmpeg=ffmpeg,
            rounds=args.rounds,
        )
        print(f"load average before the runs: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        print(f"profile: {ctx.profile}; ffmpeg: {_ffmpeg_version(ffmpeg)}; PyAV {av.__version__}")
        for name, benchmark in benchmarks:
            if args.only and name not in args.only:
                continue
            ratio = benchmark(ctx)
            value = "-" if ratio.value is None else f"{ratio.value:.3f}"
            print(f"{ratio.name:<36} {value:>7}  (target {ratio.target}) {ratio.verdict}")
            print(f"    {ratio.detail}")
    return 0


def _trim_source(ctx: BenchContext) -> tuple[Path, MediaInfo]:
    """The trimming benchmarks' 60 s 720p clip, made on first use."""
    if "trim" not in ctx.sources:
        path = ctx.workdir / "trim-source.mp4"
        print(f"  generating a {TRIM_CLIP_SIZE[1]}p {TRIM_CLIP_SECONDS:g} s clip to cut...")
        started = time.perf_counter()
        make_bench_clip(path, TRIM_CLIP_SECONDS, TRIM_CLIP_SIZE, keyint=TRIM_CLIP_KEYINT)
        print(f"  done in {time.perf_counter() - started:.1f} s")
        ctx.sources["trim"] = (path, probe(path, _BENCH_LIMITS))
    return ctx.sources["trim"]


def _ladder_source(ctx: BenchContext) -> tuple[Path, MediaInfo]:
    """The ladder benchmark's 60 s 720p VP9/Opus WebM, made on first use."""
    if "ladder" not in ctx.sources:
        path = ctx.workdir / "ladder-source.webm"
        print(f"  generating a {LADDER_CLIP_SIZE[1]}p {LADDER_CLIP_SECONDS:g} s VP9 clip...")
        started = time.perf_counter()
        make_bench_clip(
            path, LADDER_CLIP_SECONDS, LADDER_CLIP_SIZE, codecs=("libvpx-vp9", "libopus")
        )
        print(f"  done in {time.perf_counter() - started:.1f} s")
        ctx.sources["ladder"] = (path, probe(path, _BENCH_LIMITS))
    return ctx.sources["ladder"]


def _total_kib(outputs: list[tuple[Rung, Path]]) -> int:
    return sum(path.stat().st_size for _, path in outputs) // 1024


def _copy_head(src: Path, dst: Path, seconds: float) -> None:
    """The first `seconds` of an MP4 with a keyframe there, packets copied as they are."""
    with av.open(str(src)) as source, av.open(str(dst), "w") as output:
        inputs = [source.streams.video[0], source.streams.audio[0]]
        targets = {s.index: output.add_stream_from_template(s) for s in inputs}
        for packet in source.demux(inputs):
            if packet.dts is None or packet.pts is None:
                continue
            if packet.pts * packet.time_base >= seconds:
                continue
            packet.stream = targets[packet.stream_index]
            output.mux(packet)


def _decode_everything(clip: Path, thread_type: str | None) -> None:
    with av.open(str(clip)) as source:
        video = source.streams.video[0]
        if thread_type is not None:
            video.codec_context.thread_type = thread_type
        for _ in source.decode(video, *source.streams.audio):
            pass


def _lavfi_frames(source: str) -> Iterator[VideoFrame | AudioFrame]:
    """The frames of an FFmpeg source filter ("testsrc2=...", "sine=..."), one by one."""
    graph = av.filter.Graph()
    name, _, args = source.partition("=")
    sink_name = "abuffersink" if name == "sine" else "buffersink"
    head, sink = graph.add(name, args), graph.add(sink_name)
    graph.link_nodes(head, sink)
    graph.configure()
    while True:
        try:
            frame = sink.pull()
        except av.EOFError:
            return
        assert isinstance(frame, VideoFrame | AudioFrame)
        yield frame


def _x264_build(path: Path) -> str:
    """x264 writes its version into the stream (an SEI message): "core 164 r3095"."""
    with path.open("rb") as file:
        match = re.search(rb"x264 - (core \d+(?: r\d+)?)", file.read(1 << 20))
    return match.group(1).decode() if match else "unknown"


def _ffmpeg_version(ffmpeg: str | None) -> str:
    if ffmpeg is None:
        return "not installed"
    banner = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=False)
    return banner.stdout.split("\n", 1)[0].removeprefix("ffmpeg version ").split(" ")[0]
