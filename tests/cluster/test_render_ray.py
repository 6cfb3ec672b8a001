"""``instrec render --ray``: the units of a render (an instrument of a library, the negatives of an
origin) as Ray tasks on a real ``ray start`` cluster write byte for byte the files of a local run,
manifests included, and the report reads the same; an interrupted render finishes there as here.
``instrec render-music --ray``: excerpts drawn and played by actors, written here: the same files."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import error_lines, run_cli

needs_fluidr3 = pytest.mark.skipif(not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").is_file(), reason="FluidR3 is not installed")
# two instruments of FluidR3 and one clip of each kind of negative: 2 + 3 units (noise, espeak, fluidr3)
ARGS = ("--soundfont", "fluidr3", "--instruments", "flute,cello", "--per-class", "3", "--seconds", "1",
        "--negatives", "1", "--seed", "7")


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_render(tmp_path_factory):
    """The render in this machine's one process (the CLI without --ray), OUT given relative to its cwd."""
    pytest.importorskip("fluidsynth", reason="rendering needs pyfluidsynth")
    cwd = tmp_path_factory.mktemp("render")
    r = run_cli("render", "local", *ARGS, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return cwd, r


@needs_fluidr3
def test_render_on_ray_writes_the_files_of_a_local_render(ray_cluster, local_render):
    cwd, local = local_render
    # relative OUT: the workers, whose working folder is not the driver's, still write into it
    r = run_cli("render", "ray", *ARGS, "--ray", ray_cluster, cwd=cwd, process=True)
    assert r.returncode == 0, r.stderr[-3000:]
    files = _digests(cwd / "ray")
    assert files == _digests(cwd / "local")  # every clip, manifest.csv and the folder's stamp
    assert len([f for f in files if f.endswith(".wav")]) == 2 * 3 + 5 and "manifest.csv" in files
    assert r.stdout.replace(" to ray", " to local") == local.stdout  # "wrote 11 clips to ..., 5 of them 'unknown'"


@needs_fluidr3
def test_an_interrupted_render_finishes_on_ray_as_it_would_here(ray_cluster, local_render, tmp_path):
    """Clips a killed run left are kept (the workers check them), the rest written: the same folder."""
    cwd, _ = local_render
    out = tmp_path / "part"
    out.mkdir()
    for name in sorted(_digests(cwd / "local")):
        if not name.startswith("unknown") and name != "manifest.csv":
            (out / name).write_bytes((cwd / "local" / name).read_bytes())
    stamp = out / ".instrec-run.json"  # the stamp of a run killed before its end says it is not complete
    stamp.write_text(stamp.read_text().replace('"complete": true', '"complete": false'))
    assert '"complete": false' in stamp.read_text()
    clips = sorted(out.glob("*.wav"))
    for f in clips[::2]:  # flute and cello clips 0 and 2 gone, 1 kept
        f.unlink()
    (out / f".{clips[0].name}.x1y2.part.wav").write_bytes(b"RIFF half a clip")  # what SIGKILL leaves
    r = run_cli("render", out, *ARGS, "--ray", ray_cluster, process=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"(kept {len(clips) - len(clips[::2])} written by an interrupted run with these settings)" in r.stdout
    assert _digests(out) == _digests(cwd / "local")


@needs_fluidr3
def test_render_music_on_ray_writes_the_files_of_a_local_run(ray_cluster, tmp_path):
    pytest.importorskip("music21", reason="render-music needs music21")
    args = ("--pieces", "chorales", "--n", "4", "--seconds", "2", "--stems", "--seed", "5",
            "--instruments", "violin,viola,cello,flute,oboe,clarinet")
    local = run_cli("render-music", "local", *args, cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    # two actors (--jobs), so excerpts come back from both; OUT relative to this process's folder
    r = run_cli("render-music", "ray", *args, "--ray", ray_cluster, "--jobs", "2", cwd=tmp_path, process=True)
    assert r.returncode == 0, r.stderr[-3000:]
    files = _digests(tmp_path / "ray")
    assert files == _digests(tmp_path / "local") and len([f for f in files if f.startswith("stems/")]) >= 4
    assert r.stdout.replace(" to ray ", " to local ") == local.stdout


def test_actor_map_keeps_the_order_uses_every_actor_and_raises_instrec_errors_as_themselves(ray_cluster):
    code = textwrap.dedent(f"""
        import os, time
        from instrec.cluster import ray_session
        from instrec.cluster.tasks import actor_map
        from instrec.errors import ParameterError

        class Tag:  # made once an actor: its pid tells the actors apart
            def __init__(self, base):
                self.base, self.pid = base, os.getpid()

            def __call__(self, k):
                if k == 99:
                    raise ParameterError("item 99 is bad")
                time.sleep(0.05 * (k % 3))  # uneven items: the order must not follow who finishes first
                return self.base + k, self.pid

        with ray_session({ray_cluster!r}):  # (its stdout goes to stderr meanwhile)
            out = list(actor_map(Tag, (100,), range(12), actors=2))
            try:
                list(actor_map(Tag, (0,), [1, 99, 2], actors=2))
                raised = "nothing"
            except ParameterError as e:
                raised = f"ParameterError: {{e}}"
        print([v for v, _ in out], len({{pid for _, pid in out}}))
        print(raised)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.splitlines()[-2:] == [str(list(range(100, 112))) + " 2", "ParameterError: item 99 is bad"]


def test_render_ray_without_ray_names_the_cluster_extra(tmp_path):
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "ray":
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Refuse())
        from instrec.cli import main
        main(["render", {str(tmp_path / "out")!r}, "--per-class", "1", "--ray", "local"])
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = error_lines(r.stderr)
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert "pip install 'instrec[cluster]'" in lines[0]
    assert not (tmp_path / "out").exists()
