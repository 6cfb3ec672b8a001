"""Convert the pretrained musicnn TF1 checkpoints to float32 safetensors (dev-time script).

This is a DEVELOPMENT-TIME script, not part of instrec: it needs TensorFlow, which instrec does not
depend on. Run it in a throwaway venv that has tensorflow-cpu + numpy + safetensors, e.g.::

    python3.11 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu numpy safetensors
    unzip musicnn-0.1.0-py3-none-any.whl -d /tmp/musicnn_pkg      # PyPI wheel, ISC licence (J. Pons)
    OMP_NUM_THREADS=1 /tmp/tfvenv/bin/python -m experiments.convert_musicnn \
        --pkg /tmp/musicnn_pkg/musicnn --out /tmp/musicnn_weights MSD_musicnn MTT_musicnn

For each model it restores the checkpoint with TensorFlow (tf.compat.v1: the graph is imported from
the checkpoint's own .meta file and restored with a Saver), reads every model variable (the Adam
optimiser slots and beta powers are dropped) and writes

    OUT/<model>.safetensors   every variable, float32, under its TF name (e.g. conv2d/kernel)
    OUT/<model>.json          names, shapes and dtypes, plus where the weights came from

TF layouts are kept as they are (conv kernels HWIO, dense kernels [in, out]); the PyTorch port in
experiments/musicnn_port.py transposes them when it loads them. Nothing here uses pickle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def load_meta_graph(path: str):
    """The checkpoint's MetaGraphDef with the stale ``_output_shapes`` hints removed.

    The graph was written by TF 1.x and includes the training (gradient) ops; recent TF refuses to
    import some of them because their recorded output-shape hints disagree with today's shape
    inference. The hints are advisory only, so they are dropped; the ops themselves are untouched.
    """
    from tensorflow.core.protobuf import meta_graph_pb2

    mg = meta_graph_pb2.MetaGraphDef()
    mg.ParseFromString(Path(path).read_bytes())
    for node in mg.graph_def.node:
        node.attr.pop("_output_shapes", None)
    return mg


def convert(pkg: Path, model: str, out: Path) -> dict:
    import tensorflow as tf
    from safetensors.numpy import save_file

    tf.compat.v1.disable_eager_execution()
    prefix = str(pkg / model) + "/"  # the wheel stores the files as <model>/.index, <model>/.data-...
    cfg = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph, config=cfg) as sess:
        saver = tf.compat.v1.train.import_meta_graph(load_meta_graph(prefix + ".meta"), clear_devices=True)
        saver.restore(sess, prefix)
        variables = [v for v in tf.compat.v1.global_variables()
                     if "/Adam" not in v.op.name and not v.op.name.startswith("beta")]
        values = sess.run(variables)
    tensors = {v.op.name: np.ascontiguousarray(np.asarray(x, dtype=np.float32))
               for v, x in zip(variables, values)}
    # cross-check against the raw checkpoint reader: what the Saver restored is what is on disk
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    for name, arr in tensors.items():
        if not np.array_equal(reader.get_tensor(name).astype(np.float32), arr):
            raise RuntimeError(f"{model}: {name} differs between the restored session and the checkpoint")
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / f"{model}.safetensors"),
              metadata={"source": f"musicnn==0.1.0 wheel, {model} checkpoint", "license": "ISC (Jordi Pons)",
                        "layout": "TensorFlow (conv HWIO, dense [in,out])"})
    listing = {"model": model, "source": f"musicnn==0.1.0 PyPI wheel: musicnn/{model}/ (ISC licence)",
               "tensorflow": tf.__version__, "n_tensors": len(tensors),
               "n_params": int(sum(a.size for a in tensors.values())),
               "tensors": {n: {"shape": list(a.shape), "dtype": "float32"} for n, a in sorted(tensors.items())}}
    (out / f"{model}.json").write_text(json.dumps(listing, indent=1))
    return listing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", default=["MSD_musicnn", "MTT_musicnn"])
    ap.add_argument("--pkg", type=Path, default=Path("/tmp/musicnn_pkg/musicnn"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/musicnn_weights"))
    args = ap.parse_args()
    for model in args.models:
        info = convert(args.pkg, model, args.out)
        print(f"{model}: {info['n_tensors']} tensors, {info['n_params']:,} parameters -> {args.out}/{model}.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
