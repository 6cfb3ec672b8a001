"""A long fuzz run over instrec's loaders, features, windows, model bundles, manifests and service.

The targets are registered in ``fuzz/targets.py`` and defined in the ``fuzz/*_targets.py`` modules
(``tests/test_fuzz.py`` runs the same ones briefly in CI). Each target runs in its own worker
process, one after the other, under a memory limit; this parent watches it, so a hang, a crash of
the interpreter (a segfault in a C decoder) or an out-of-memory kill is caught and recorded with
the input in flight. Run it from the repository root (``fuzz`` is a package):

    python -m fuzz.fuzz_audio --minutes 10                 # all targets, time split evenly
    python -m fuzz.fuzz_audio --examples 2000 --targets load_mutated,service
    python -m fuzz.fuzz_audio --minutes 5 --engine atheris # coverage-guided (pip install atheris)
    python -m fuzz.fuzz_audio --replay build/fuzz-crashes/load_mutated-1a2b3c4d

Findings are saved under ``build/fuzz-crashes/<target>-<signature>/`` (case.json, the input files,
traceback.txt); the summary goes to ``benchmarks/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository root: workers run there, as `-m fuzz.fuzz_audio`
RUN = [sys.executable, "-m", "fuzz.fuzz_audio"]

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "fuzz.json"
DEFAULT_CRASHES = ROOT / "build" / "fuzz-crashes"
SLOW_SECONDS = 10.0  # an example slower than this is listed (not counted as a crash)


# ---------------------------------------------------------------------------------------------
# Signatures and crash records


def signature(exc: BaseException) -> str:
    """What makes two failures the same bug: the exception type, where in instrec it was raised
    (or last passed), and its message with the numbers taken out."""
    from fuzz.harness import PropertyViolation

    msg = re.sub(r"0x[0-9a-f]+|\d+(\.\d+)?(e[+-]?\d+)?", "N", str(exc).splitlines()[0] if str(exc) else "")
    msg = re.sub(r"'[^']*'|\"[^\"]*\"", "S", msg)[:80]
    if isinstance(exc, PropertyViolation):  # the message up to its first ': ' names the property
        return f"property: {msg.split(': ')[0][:60].rstrip()}"
    frames = traceback.extract_tb(exc.__traceback__)
    where = "?"
    for frame in frames:
        if "/instrec/" in frame.filename.replace(os.sep, "/"):
            where = f"{Path(frame.filename).name}:{frame.name}"
    last = f"{Path(frames[-1].filename).name}:{frames[-1].name}" if frames else "?"
    return f"{type(exc).__name__} in {where} (raised in {last})"


def sig_dir(crash_dir: Path, target: str, sig: str) -> Path:
    return crash_dir / f"{target}-{hashlib.sha1(sig.encode()).hexdigest()[:8]}"


def save_case(dest: Path, target: str, case_json: object, scratch: Path | None, text: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "case.json").write_text(json.dumps({"target": target, "case": case_json}, indent=1, allow_nan=True))
    (dest / "traceback.txt").write_text(text)
    if scratch is not None and scratch.is_dir():
        out = dest / "input"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(scratch, out, symlinks=True)
    (dest / "REPLAY").write_text(f"python -m fuzz.fuzz_audio --replay {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}\n")


# ---------------------------------------------------------------------------------------------
# The worker: one target, in its own process


class StopFuzz(BaseException):
    """The worker's time or example budget is spent."""


def worker(args) -> int:
    if args.memory_gb:
        limit = int(args.memory_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    state = Path(args.state)
    current = state / "current"
    current.mkdir(parents=True, exist_ok=True)
    crash_dir = Path(args.crash_dir)

    if args.engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=["instrec"]):
            import instrec  # noqa: F401
            import instrec.audio, instrec.bundle, instrec.classifier, instrec.data.folder  # noqa: E401,F401
            import instrec.features, instrec.features.image, instrec.features.mel, instrec.features.mfcc  # noqa: E401,F401
            import instrec.inference, instrec.recipes, instrec.models  # noqa: E401,F401
            if args.worker.startswith("service"):
                import instrec.service.app, instrec.service.upload  # noqa: E401,F401

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    if args.engine == "atheris":
        _patch_bytestring_provider()
    from fuzz import harness, targets

    target = targets.TARGETS[args.worker]
    ctx = harness.Context(current / "ctx")
    ctx.scratch = current / "scratch"
    ctx.scratch.mkdir(exist_ok=True)
    stats = {"target": target.name, "runs": 0, "crashes": {}, "slow": [], "max_example_s": 0.0,
             "started": time.time(), "seconds": 0.0}
    t_end = time.monotonic() + args.seconds
    last_write = [0.0]

    def write_progress(force=False):
        now = time.monotonic()
        if force or now - last_write[0] > 0.5:
            last_write[0] = now
            stats["seconds"] = round(time.time() - stats["started"], 2)
            tmp = state / "progress.json.tmp"
            tmp.write_text(json.dumps(stats))
            os.replace(tmp, state / "progress.json")

    def body(case):
        if args.engine == "hypothesis" and (time.monotonic() > t_end or stats["runs"] >= args.examples):
            raise StopFuzz
        stats["runs"] += 1
        case_json = harness.case_to_json(case)
        ctx.clear_scratch()
        (current / "case.json").write_text(json.dumps({"target": target.name, "case": case_json}, allow_nan=True))
        t0 = time.perf_counter()
        try:
            harness.run_case(target, case, ctx)
        except (KeyboardInterrupt, StopFuzz):
            raise
        except Exception as e:  # noqa: BLE001 - every escape is a finding
            sig = signature(e)
            entry = stats["crashes"].setdefault(sig, {"count": 0, "kind": "property" if isinstance(e, harness.PropertyViolation) else "exception",
                                                    "message": str(e)[:500], "dir": None})
            entry["count"] += 1
            if entry["dir"] is None:
                dest = sig_dir(crash_dir, target.name, sig)
                text = f"target: {target.name}\nsignature: {sig}\n\n" + "".join(traceback.format_exception(e))
                save_case(dest, target.name, case_json, ctx.scratch, text)
                entry["dir"] = str(dest)
                print(f"[{target.name}] FINDING {sig}\n    -> {dest}", flush=True)
        finally:
            dt = time.perf_counter() - t0
            stats["max_example_s"] = max(stats["max_example_s"], round(dt, 3))
            if dt > args.slow_seconds and len(stats["slow"]) < 5:
                dest = Path(args.crash_dir) / f"{target.name}-slow-{len(stats['slow'])}"
                save_case(dest, target.name, case_json, ctx.scratch, f"slow example: {dt:.1f} s\n")
                stats["slow"].append({"seconds": round(dt, 2), "dir": str(dest)})
            write_progress()

    common = dict(database=None, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate],
                  report_multiple_bugs=False, print_blob=False)
    test = settings(max_examples=args.chunk, **common)(given(case=target.strategy)(body))
    try:
        if args.engine == "atheris":
            import atheris

            # hypothesis reads its choices from the input: libFuzzer's first inputs (a few bytes)
            # are too short for any draw, so start from random inputs long enough for every target
            corpus = state / "corpus"
            corpus.mkdir(exist_ok=True)
            seeder = random.Random(args.seed)
            for i in range(32):
                (corpus / f"seed-{i}").write_bytes(seeder.randbytes(seeder.choice([256, 1024, 4096, 16384])))
            flags = [sys.argv[0], f"-max_total_time={max(1, int(args.seconds))}", f"-runs={args.examples}",
                     f"-timeout={int(args.hang_seconds)}", "-rss_limit_mb=0", f"-seed={args.seed + 1}",
                     "-max_len=65536", f"-artifact_prefix={state}/", str(corpus)]
            write_progress(force=True)
            atheris.Setup(flags, test.hypothesis.fuzz_one_input)
            atheris.Fuzz()  # exits the process at the end
        else:
            rng = random.Random(args.seed)
            while time.monotonic() < t_end and stats["runs"] < args.examples:
                try:
                    hseed(rng.getrandbits(64))(test)()
                except StopFuzz:
                    break
                except Exception as e:  # hypothesis' own complaints (Flaky, Unsatisfiable): go on
                    if "StopFuzz" in repr(e):
                        break
                    print(f"[{target.name}] hypothesis: {type(e).__name__}: {str(e)[:200]}", flush=True)
    finally:
        write_progress(force=True)
        ctx.close()
    return 0


def _patch_bytestring_provider() -> None:
    """hypothesis' BytestringProvider (what ``fuzz_one_input`` draws from) rejection-samples an
    integer in [min, max] from ``bit_length(max - min)`` bits *without adding min*, so a range
    such as [2, 3] can never be drawn and every input overruns: fixed_dictionaries of 4 or more
    keys (which shuffle their keys) never run under atheris. Offset the draw by min."""
    try:
        from hypothesis.internal.conjecture.providers import BytestringProvider
    except ImportError:
        return

    def draw_integer(self, min_value=None, max_value=None, *, weights=None, shrink_towards=0):
        if min_value is None and max_value is None:
            min_value, max_value = -(2**127), 2**127 - 1
        elif min_value is None:
            min_value = max_value - 2**64
        elif max_value is None:
            max_value = min_value + 2**64
        if min_value == max_value:
            return min_value
        bits = (max_value - min_value).bit_length()
        value = min_value + self._draw_bits(bits)
        while value > max_value:
            value = min_value + self._draw_bits(bits)
        return value

    BytestringProvider.draw_integer = draw_integer


# ---------------------------------------------------------------------------------------------
# The parent: run the workers, watch them, write the summary


def run_target(name: str, args, seconds: float, examples: int, state_root: Path) -> dict:
    """Run one target's workers until its time or example budget is spent; restart after a hang
    or a dead worker."""
    crash_dir = Path(args.crash_dir)
    result = {"runs": 0, "seconds": 0.0, "workers": 0, "peak_rss_mb": 0.0, "max_example_s": 0.0,
              "crashes": {}, "slow": []}
    t_start = time.monotonic()
    seed = args.seed
    while True:
        left = seconds - (time.monotonic() - t_start)
        runs_left = examples - result["runs"]
        if left < 1 or runs_left <= 0:
            break
        state = state_root / f"{name}-{result['workers']}"
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)
        cmd = [*RUN, "--worker", name, "--seconds", f"{left:.1f}",
               "--examples", str(runs_left), "--seed", str(seed), "--state", str(state), "--crash-dir", str(crash_dir),
               "--engine", args.engine, "--memory-gb", str(args.memory_gb), "--hang-seconds", str(args.hang_seconds),
               "--chunk", str(args.chunk), "--slow-seconds", str(args.slow_seconds)]
        # the worker's stderr (C decoders' notes, logging, a dying interpreter's traceback) goes to a log
        with open(state / "worker.log", "wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stderr=log)
        result["workers"] += 1
        seed += 1
        problem = None
        rusage = None
        grace = 120.0  # startup (imports, the model) and a last example
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.5)
            now = time.time()
            case_file = state / "current" / "case.json"
            if case_file.exists() and now - case_file.stat().st_mtime > args.hang_seconds:
                problem = ("hang", f"one example ran over {args.hang_seconds:g} s")
            elif time.monotonic() - t_start > seconds + grace:
                problem = ("overtime", "the worker did not stop at the end of its time")
            if problem:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, rusage = os.wait4(proc.pid, 0)
                break
        proc.returncode = os.waitstatus_to_exitcode(status)
        progress = {}
        if (state / "progress.json").exists():
            progress = json.loads((state / "progress.json").read_text())
        result["runs"] += progress.get("runs", 0)
        result["max_example_s"] = max(result["max_example_s"], progress.get("max_example_s", 0.0))
        result["peak_rss_mb"] = max(result["peak_rss_mb"], round(rusage.ru_maxrss / 1024, 1))
        result["slow"] += progress.get("slow", [])
        for sig, entry in progress.get("crashes", {}).items():
            merged = result["crashes"].setdefault(sig, {**entry, "count": 0})
            merged["count"] += entry["count"]
        if problem is None and proc.returncode != 0:
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
            problem = ("died", f"the worker died ({how})")
        if problem is not None and problem[0] != "overtime":
            sig = f"{problem[0]}: {problem[1]}"
            dest = sig_dir(crash_dir, name, sig)
            case = {}
            if (state / "current" / "case.json").exists():
                case = json.loads((state / "current" / "case.json").read_text()).get("case", {})
            log_tail = (state / "worker.log").read_bytes()[-8000:].decode("utf-8", "replace") if (state / "worker.log").exists() else ""
            save_case(dest, name, case, state / "current" / "scratch",
                      f"target: {name}\n{sig}\n(the input in flight is in input/ and case.json)\n\nworker stderr (end):\n{log_tail}")
            merged = result["crashes"].setdefault(sig, {"count": 0, "kind": problem[0], "message": problem[1], "dir": str(dest)})
            merged["count"] += 1
            print(f"[{name}] FINDING {sig}\n    -> {dest}", flush=True)
        if problem is None:
            break  # the worker spent its budget
    result["seconds"] = round(time.monotonic() - t_start, 1)
    return result


def machine() -> dict:
    import numpy
    import soundfile

    def version(dist):
        from importlib.metadata import PackageNotFoundError, version as dist_version

        try:
            return dist_version(dist)
        except PackageNotFoundError:
            return None

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem,
            "python": platform.python_version(), "numpy": numpy.__version__, "soundfile": soundfile.__version__,
            "libsndfile": soundfile.__libsndfile_version__, "torch": version("torch"),
            "hypothesis": version("hypothesis"), "atheris": version("atheris"), "instrec": version("instrec")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fuzz.fuzz_audio", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, help="total time, split evenly over the targets (default 10 unless --examples)")
    p.add_argument("--examples", type=int, help="examples per target (stops a target early when reached)")
    p.add_argument("--targets", help="comma-separated target names (default: all); --list shows them")
    p.add_argument("--list", action="store_true", help="list the targets and exit")
    p.add_argument("--engine", choices=("hypothesis", "atheris"), default="hypothesis",
                   help="hypothesis: random generation; atheris: libFuzzer coverage-guided (pip install atheris)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="summary JSON (default benchmarks/results/fuzz.json)")
    p.add_argument("--crash-dir", type=Path, default=DEFAULT_CRASHES, help="reproducers (default build/fuzz-crashes)")
    p.add_argument("--hang-seconds", type=float, default=60.0, help="an example running longer is a hang")
    p.add_argument("--slow-seconds", type=float, default=SLOW_SECONDS, help="an example running longer is listed as slow")
    p.add_argument("--memory-gb", type=float, default=6.0, help="address-space limit of a worker (0: none)")
    p.add_argument("--chunk", type=int, default=1000, help=argparse.SUPPRESS)
    p.add_argument("--replay", type=Path, help="re-run the case saved in this crash folder and show what happens")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    p.add_argument("--state", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        return worker(args)
    from fuzz import targets

    if args.list:
        for t in targets.TARGETS.values():
            print(f"{t.name:18} {t.doc}")
        return 0
    if args.replay:
        return replay(args.replay)
    names = args.targets.split(",") if args.targets else list(targets.TARGETS)
    unknown = [n for n in names if n not in targets.TARGETS]
    if unknown:
        p.error(f"unknown targets: {', '.join(unknown)} (see --list)")
    minutes = args.minutes if args.minutes is not None else (None if args.examples else 10.0)
    weights = {n: targets.TARGETS[n].weight for n in names}
    share = {n: (minutes * 60 * w / sum(weights.values()) if minutes else 1e9) for n, w in weights.items()}
    examples = args.examples or 10**9
    if args.engine == "atheris":
        try:
            import atheris  # noqa: F401
        except ImportError:
            p.error("the atheris engine needs `pip install atheris`")

    started = time.time()
    state_root = ROOT / "build" / "fuzz-state"
    args.crash_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    print(f"fuzzing {len(names)} targets for {f'{minutes:g} min' if minutes else 'no time limit'}, "
          f"engine {args.engine}; findings under {args.crash_dir}", flush=True)
    for name in names:
        r = run_target(name, args, share[name], examples, state_root)
        results[name] = r
        n_found = len(r["crashes"])
        print(f"{name:18} {r['runs']:7d} runs in {r['seconds']:6.1f} s ({r['runs'] / max(r['seconds'], 1e-9):7.1f}/s), "
              f"peak RSS {r['peak_rss_mb']:6.0f} MB, slowest example {r['max_example_s']:.2f} s, findings: {n_found}",
              flush=True)
    shutil.rmtree(state_root, ignore_errors=True)
    total_s = time.time() - started
    findings = []
    for name, r in results.items():
        for sig, e in r["crashes"].items():
            d = Path(e["dir"]) if e.get("dir") else None
            rel = str(d.relative_to(ROOT)) if d and d.is_relative_to(ROOT) else (str(d) if d else None)
            findings.append({"target": name, "kind": e["kind"], "signature": sig, "count": e["count"],
                             "message": e["message"], "reproducer": rel,
                             "replay": f"python -m fuzz.fuzz_audio --replay {rel}" if rel else None})
    summary = {
        "tool": "fuzz/fuzz_audio.py",
        "command": "python -m fuzz.fuzz_audio " + " ".join(argv if argv is not None else sys.argv[1:]),
        "engine": args.engine,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "budget": {"minutes": minutes, "examples_per_target": args.examples, "seed": args.seed,
                   "hang_seconds": args.hang_seconds, "memory_gb_per_worker": args.memory_gb},
        "seconds": round(total_s, 1),
        "runs": sum(r["runs"] for r in results.values()),
        "crashes_found": len(findings),
        "crashes_by_kind": {k: sum(1 for f in findings if f["kind"] == k) for k in sorted({f["kind"] for f in findings})},
        "targets": {name: {"doc": targets.TARGETS[name].doc, "runs": r["runs"], "seconds": r["seconds"],
                           "time_share": round(share[name], 1) if minutes else None,
                           "runs_per_second": round(r["runs"] / max(r["seconds"], 1e-9), 1), "workers": r["workers"],
                           "peak_rss_mb": r["peak_rss_mb"], "slowest_example_s": r["max_example_s"],
                           "slow_examples": r["slow"], "findings": len(r["crashes"])}
                    for name, r in results.items()},
        "findings": findings,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{summary['runs']} runs in {total_s:.0f} s; {len(findings)} distinct findings "
          f"({', '.join(f'{v} {k}' for k, v in summary['crashes_by_kind'].items()) or 'none'}); summary: {args.out}")
    for f in findings:
        print(f"  [{f['target']}] {f['signature']}\n      {f['replay']}")
    return 1 if findings else 0


def replay(folder: Path) -> int:
    """Run a saved case again and print what happens."""
    import tempfile

    from fuzz import harness, targets

    saved = json.loads((folder / "case.json").read_text())
    target = targets.TARGETS[saved["target"]]
    case = harness.case_from_json(saved["case"])
    with tempfile.TemporaryDirectory(prefix="instrec-replay-") as tmp:
        ctx = harness.Context(tmp)
        try:
            harness.run_case(target, case, ctx)
        except Exception:
            traceback.print_exc()
            return 1
        finally:
            ctx.close()
    print(f"{folder}: the property holds now ({target.name})")
    return 0


if __name__ == "__main__":
    if not __package__:  # run as a file, `fuzz` is not importable: say the command that works
        sys.exit("run it from the repository root as: python -m fuzz.fuzz_audio " + " ".join(sys.argv[1:]))
    sys.exit(main())
