"""Model bundles: ``load_model`` on a copy of the shipped bundle whose model.json is tampered
with (JSON edits, schema boundary values, byte mutations), then a short prediction.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import warnings

import numpy as np
from hypothesis import strategies as st

from fuzz.generators import MUTATION, SR, mutate
from fuzz.harness import Context, check_refusal, memory_headroom, violated
from fuzz.inference_targets import check_prediction
from instrec.errors import BundleError, InstrecError

# A model.json asking for a bigger network than this is a finding (see check_model_json).
MAX_NETWORK_PARAMS = 50_000_000
LOAD_HEADROOM = 1 << 30  # loading a model may take this much memory beyond what the process holds


# Edits of model.json (a JSON value replaced, deleted, added or scaled; a schema bound set),
# then optionally byte mutations and a prefix such as a BOM.
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
              st.sampled_from([0, 1, 2, 16, 4096, 65536, 2**31, -1, 1e308, math.nan, math.inf, 0.5, 1.0]),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
              st.sampled_from(["mfcc", "image", "waveform", "mlp", "cnn", "relu", "gray", "rgb", "instrec-model"])),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=6,
)
JSON_OP = st.one_of(
    st.tuples(st.just("bound"), st.integers(0, 10**6), st.sampled_from(["minimum", "maximum", "beyond"])),
    st.tuples(st.just("replace"), st.integers(0, 10**6), JSON_VALUES),
    st.tuples(st.just("delete"), st.integers(0, 10**6)),
    st.tuples(st.just("add"), st.integers(0, 10**6), st.text(max_size=12), JSON_VALUES),
    st.tuples(st.just("scale"), st.integers(0, 10**6), st.sampled_from([-1, 0, 2, 10, 1000, 0.5])),
)
MODEL_JSON = st.fixed_dictionaries({
    "ops": st.lists(JSON_OP, min_size=1, max_size=3),
    "bytes_ops": st.one_of(st.just([]), st.just([]), st.lists(MUTATION, max_size=3)),
    "prefix": st.sampled_from([b"", b"", b"", b"\xef\xbb\xbf", b"\xff\xfe", b" \n"]),
    "indent": st.sampled_from([None, 2]),
})


def _json_paths(obj, prefix=()):
    """Every path (tuple of keys and indices) in a JSON document, the root first."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _json_paths(v, prefix + (i,))


@functools.cache
def schema_bounds() -> list[tuple[tuple, dict]]:
    """``(path, schema)`` of every bounded number, integer or array in model.schema.json's
    recipe: boundary values are where a tampered file asks for the most work."""
    from instrec.assets import shipped_model_path

    schema = json.loads((shipped_model_path().parent / "model.schema.json").read_text(encoding="utf-8"))
    out = []

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            if any(k in sub for k in ("minimum", "maximum", "exclusiveMinimum", "maxItems")):
                out.append((path + (key,), sub))
            walk(sub, path + (key,))

    walk(schema, ())
    return out


def bound_value(sub: dict, which: str):
    """The schema's smallest or largest allowed value (``beyond``: just past the largest)."""
    integer = sub.get("type") == "integer"
    if sub.get("type") == "array" or "maxItems" in sub:
        item = sub.get("items", {})
        n = sub.get("maxItems", 16) + (which == "beyond") if which != "minimum" else sub.get("minItems", 1)
        if item.get("type") == "string":
            return [f"class-{i}" for i in range(n)]
        v = item.get("maximum", 4096) if which != "minimum" else item.get("minimum", 1)
        return [v + (which == "beyond")] * n
    if which == "minimum":
        v = sub.get("minimum", sub.get("exclusiveMinimum", 0))
        return v if "minimum" in sub else v + (1 if integer else 1e-9)
    v = sub.get("maximum", sub.get("exclusiveMaximum", 2**31 if integer else 1e9))
    if which == "beyond":
        return v + 1
    return v if "maximum" in sub else v - (1 if integer else 1e-9)


def apply_json_ops(meta: dict, ops) -> object:
    """A copy of ``meta`` with the ops of :data:`JSON_OP` (or explicit ``set`` ops) applied."""
    doc = {"root": copy.deepcopy(meta)}
    for op in ops:
        if op[0] == "bound":  # ("bound", index, "minimum" | "maximum" | "beyond"): a schema boundary
            bounds = schema_bounds()
            path, sub = bounds[op[1] % len(bounds)]
            op = ("set", list(path), bound_value(sub, op[2]))
        if op[0] == "set":
            path = ("root",)
        else:
            paths = list(_json_paths(doc["root"], ("root",)))
            path = paths[op[1] % len(paths)]
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        if op[0] == "replace":
            parent[key] = op[2]
        elif op[0] == "delete" and key != "root":
            del parent[key]
        elif op[0] == "add":
            target = parent[key]
            if isinstance(target, dict):
                target[op[2]] = op[3]
            elif isinstance(target, list):
                target.append(op[3])
        elif op[0] == "set":  # ("set", ["recipe", "model", "channels"], value): explicit examples
            target = doc["root"]
            for k in op[1][:-1]:
                target = target.setdefault(k, {}) if isinstance(target, dict) else None
            if isinstance(target, dict):  # an earlier op may have replaced a parent
                target[op[1][-1]] = op[2]
        elif op[0] == "scale":
            v = parent[key]
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                parent[key] = type(v)(v * op[2]) if math.isfinite(v * op[2]) else v
            elif isinstance(v, list):
                parent[key] = v * max(0, int(op[2]))
    return doc["root"]


def network_params(meta: dict) -> int | None:
    """Parameters (and buffers) of the network model.json describes, counted on torch's meta
    device (nothing allocated); None when the description does not build."""
    import torch

    from instrec import models
    from instrec.recipes import Recipe

    try:
        recipe = Recipe.from_dict(meta["recipe"])
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = models.build(recipe.model, recipe.feature, len(meta["classes"]))
        return sum(p.numel() for p in net.parameters()) + sum(b.numel() for b in net.buffers())
    except Exception:
        return None


def check_model_json(case: dict, ctx: Context, *, ordinary: bool = False, bundle_error: bool = True) -> None:
    """A tampered model.json beside the shipped weights: the model loads (and predicts) or
    BundleError, never another exception, and neither loading it nor predicting half a second
    with it takes more than 1 GB of memory (the schema says its bounds keep a tampered file from
    asking for absurd work).

    ``bundle_error=False``: any InstrecError is an acceptable refusal (not only BundleError).
    ``ordinary=True``: networks over MAX_NETWORK_PARAMS parameters are not loaded, and costly
    features (huge FFTs, tiny hops, long windows) or windows of fewer than 16 frames not
    predicted: the ordinary region's test leaves those to tests of their own."""
    import instrec
    from instrec.bundle import read_meta

    meta = apply_json_ops(ctx.shipped_meta, case["ops"])
    text = json.dumps(meta, indent=case["indent"], allow_nan=True)
    data = mutate(case["prefix"] + text.encode("utf-8"), case["bytes_ops"])
    bundle = ctx.bundle
    (bundle / "model.json").write_bytes(data)
    ctx.write("model.json", data)
    try:
        parsed = read_meta(bundle)
    except BundleError as e:
        check_refusal(e)
        return
    if not isinstance(parsed, dict):
        violated("read_meta returned a non-dict")
    count = network_params(parsed)
    if ordinary and count is not None and count > MAX_NETWORK_PARAMS:
        return
    try:
        with memory_headroom(LOAD_HEADROOM):
            model = instrec.load_model(bundle)
    except BundleError as e:
        check_refusal(e)
        return
    except InstrecError as e:
        if bundle_error:
            violated(f"a bad model.json is refused with {type(e).__name__}, not BundleError: {e}")
        check_refusal(e)
        return
    except (MemoryError, RuntimeError) as e:
        if count is not None and count > MAX_NETWORK_PARAMS:
            violated(f"a model.json that passes the schema makes load build a network of {count:,} parameters "
                     f"({4 * count / 1e9:.1f} GB) before comparing it with model.safetensors "
                     f"({(bundle / 'model.safetensors').stat().st_size:,} bytes): {type(e).__name__}: {str(e)[:150]}")
        raise
    f = model.feature
    if ordinary and (f.dim > 2_000_000 or f.sr > 96_000 or f.n_fft > 16384 or f.hop_length < 16):
        return
    if ordinary and f.kind == "waveform" and 1 + int(f.seconds * f.sr) // f.hop_length < 16:
        return  # fewer frames than the cnn's pooling needs: a test of its own
    y = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SR // 2) / SR).astype(np.float32)
    try:
        with memory_headroom(LOAD_HEADROOM):
            pred = model.predict(y, SR)
    except InstrecError as e:
        check_refusal(e)
        return
    except (MemoryError, RuntimeError) as e:
        if "alloc" in str(e) or isinstance(e, MemoryError):
            violated(f"a model.json that loads (n_fft={f.n_fft}, hop_length={f.hop_length}, sr={f.sr}, "
                     f"seconds={f.seconds}) makes predicting 0.5 s take over 1 GB: {type(e).__name__}: {str(e)[:150]}")
        raise
    check_prediction(pred, model.classes)
