#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz corpora (standard library only, no PyTorch needed).

    python3 fuzz/make_seeds.py            # (re)writes fuzz/seeds/*/gen-*

The real-file seeds (test data, configs, synthetic-cohort files, PyTorch-written .pt files from
burn-store's test data) are copied by hand and listed in fuzz/README.md; this script adds what
no small real file covers: tiny NIfTI-1/NIfTI-2 volumes of every datatype and both byte orders,
a 4-D file, a header with an extension, an ANALYZE-style pair header, and the small test network
of crates/model/tests/weights.rs as safetensors, torch.save zip and legacy torch.save.
"""

import gzip
import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

SEEDS = Path(__file__).resolve().parent / "seeds"

DTYPES = {2: ("B", 8), 4: ("h", 16), 8: ("i", 32), 16: ("f", 32), 64: ("d", 64), 256: ("b", 8),
          512: ("H", 16), 768: ("I", 32), 1024: ("q", 64), 1280: ("Q", 64)}


def nifti1(dims, datatype=16, big=False, magic=b"n+1\0", slope=0.0, inter=0.0, sform=True,
           qform=False, ext=None, values=None):
    e = ">" if big else "<"
    code, bitpix = DTYPES[datatype]
    h = bytearray(348)
    struct.pack_into(e + "i", h, 0, 348)
    dim = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    struct.pack_into(e + "8h", h, 40, *dim)
    struct.pack_into(e + "hh", h, 70, datatype, bitpix)
    struct.pack_into(e + "8f", h, 76, 1.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0)
    extb = b""
    if ext is not None:
        extb = struct.pack(e + "ii", 8 + len(ext), 6) + ext
    vox_offset = 352 + len(extb) if magic == b"n+1\0" else 0
    struct.pack_into(e + "fff", h, 108, float(vox_offset), slope, inter)
    struct.pack_into(e + "B", h, 123, 2 | 8)
    h[148:148 + 12] = b"fuzz seed\0\0\0"
    struct.pack_into(e + "hh", h, 252, 1 if qform else 0, 2 if sform else 0)
    struct.pack_into(e + "6f", h, 256, 0.0, 0.0, 0.0, -10.0, -12.0, -8.0)
    struct.pack_into(e + "12f", h, 280, 2, 0, 0, -10, 0, 2, 0, -12, 0, 0, 2, -8)
    h[344:348] = magic
    n = 1
    for d in dims:
        n *= d
    if values is None:
        values = [(i * 7) % 11 - (3 if code.islower() else 0) for i in range(n)]
    if code in "fd":
        values = [float(v) + 0.25 for v in values]
    data = struct.pack(e + code * n, *values)
    flag = bytes([1, 0, 0, 0]) if ext is not None else bytes(4)
    if magic == b"n+1\0":
        return bytes(h) + flag + extb + data
    return bytes(h) + flag  # .hdr of a pair; the voxels live in the .img


def nifti2(dims, datatype=16, big=False, slope=0.0, inter=0.0):
    e = ">" if big else "<"
    code, bitpix = DTYPES[datatype]
    h = bytearray(540)
    struct.pack_into(e + "i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into(e + "hh", h, 12, datatype, bitpix)
    dim = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    struct.pack_into(e + "8q", h, 16, *dim)
    struct.pack_into(e + "8d", h, 104, -1.0, 1.0, 1.5, 2.0, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into(e + "q", h, 168, 544)
    struct.pack_into(e + "dd", h, 176, slope, inter)
    struct.pack_into(e + "ii", h, 344, 1, 0)
    struct.pack_into(e + "6d", h, 352, 0.1, 0.2, 0.3, 1.0, 2.0, 3.0)
    n = 1
    for d in dims:
        n *= d
    values = [(i * 5) % 9 for i in range(n)]
    if code in "fd":
        values = [float(v) - 0.5 for v in values]
    return bytes(h) + bytes(4) + struct.pack(e + code * n, *values)


def write(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def nifti_seeds():
    for dt in DTYPES:
        write("nifti", f"gen-n1-{dt}-le.nii", nifti1([3, 4, 2], dt))
    write("nifti", "gen-n1-16-be.nii", nifti1([3, 4, 2], 16, big=True))
    write("nifti", "gen-n1-4-be-scaled.nii", nifti1([2, 3, 2], 4, big=True, slope=0.5, inter=3.0))
    write("nifti", "gen-n1-qform.nii", nifti1([2, 2, 3], 2, sform=False, qform=True))
    write("nifti", "gen-n1-4d.nii", nifti1([2, 2, 2, 3], 4))
    write("nifti", "gen-n1-4d-1t.nii", nifti1([2, 2, 2, 1], 4))
    write("nifti", "gen-n1-ext.nii", nifti1([2, 2, 2], 16, ext=b"<xml>seed</xml>\0"))
    write("nifti", "gen-n1-nan.nii", nifti1([2, 1, 2], 16, values=[float("nan"), float("inf"), 1.0, -2.0]))
    write("nifti", "gen-pair.hdr", nifti1([2, 2, 2], 2, magic=b"ni1\0"))
    write("nifti", "gen-n2-16-le.nii", nifti2([3, 2, 2], 16))
    write("nifti", "gen-n2-512-be-scaled.nii", nifti2([2, 2, 3], 512, big=True, slope=2.0, inter=-1.0))
    write("nifti", "gen-n1-2-le.nii.gz", gzip.compress(nifti1([3, 4, 2], 2), mtime=0))


# --- weights ---------------------------------------------------------------------------------

SMALL = {"channels": [2, 3, 4, 5], "pools": [2, 2, 2, 2], "kernel": 3, "dense": [6, 4],
         "dropout": 0.8, "classes": 2}
GRID = [46, 50, 47]


def state_dict_shapes():
    """The small network's PyTorch state dict on GRID (flatten = 5 channels x 1 x 1 x 1)."""
    out = []
    cin = 1
    for i, c in enumerate(SMALL["channels"], 1):
        out += [(f"Conv_{i}.weight", [c, cin, 3, 3, 3]), (f"Conv_{i}.bias", [c])]
        out += [(f"Conv_{i}_bn.{k}", [c]) for k in ("weight", "bias", "running_mean", "running_var")]
        cin = c
    fin = cin
    for j, f in enumerate(SMALL["dense"] + [SMALL["classes"]], 1):
        out += [(f"dense_{j}.weight", [f, fin]), (f"dense_{j}.bias", [f])]
        fin = f
    return out


def entries():
    res = []
    for k, (key, shape) in enumerate(state_dict_shapes()):
        n = 1
        for s in shape:
            n *= s
        data = [k + i / 1000 for i in range(n)]
        if key.endswith("running_var"):
            data = [1 + v / 100 for v in data]
        res.append((key, shape, data))
    return res


def safetensors(ents):
    header = {"__metadata__": {"input_shape": ",".join(map(str, GRID)),
                               "network_config": json.dumps(SMALL)}}
    blob = b""
    for key, shape, data in ents:
        raw = struct.pack("<" + "f" * len(data), *data)
        header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def state_dict_pickle(ents):
    """The pickle of an OrderedDict of _rebuild_tensor_v2 calls on persistent-id storages."""
    p = bytearray(b"\x80\x02")

    def glob(m, n):
        p.extend(b"c" + f"{m}\n{n}\n".encode())

    def string(s):
        b = s.encode()
        p.extend(b"X" + struct.pack("<I", len(b)) + b)

    def integer(v):
        p.extend(b"J" + struct.pack("<i", v))

    def tup(items):
        if not items:
            p.extend(b")")
            return
        p.extend(b"(")
        for v in items:
            integer(v)
        p.extend(b"t")

    glob("collections", "OrderedDict")
    p.extend(b")R(")
    for index, (key, shape, _) in enumerate(ents):
        string(key)
        glob("torch._utils", "_rebuild_tensor_v2")
        p.extend(b"(")
        p.extend(b"(")
        string("storage")
        glob("torch", "FloatStorage")
        string(str(index))
        string("cpu")
        n = 1
        for s in shape:
            n *= s
        integer(n)
        p.extend(b"tQ")
        integer(0)
        tup(shape)
        tup([_prod(shape[d + 1:]) for d in range(len(shape))])
        p.extend(b"\x89")
        glob("collections", "OrderedDict")
        p.extend(b")R")
        p.extend(b"tR")
    p.extend(b"u.")
    return bytes(p)


def _prod(xs):
    n = 1
    for x in xs:
        n *= x
    return n


def torch_zip(ents):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        def add(name, data):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, data)
        add("archive/data.pkl", state_dict_pickle(ents))
        add("archive/byteorder", b"little")
        for i, (_, _, data) in enumerate(ents):
            add(f"archive/data/{i}", struct.pack("<" + "f" * len(data), *data))
        add("archive/version", b"3\n")
    return buf.getvalue()


def torch_legacy(ents):
    """torch.save(..., _use_new_zipfile_serialization=False): magic, protocol, sys info, the
    state dict pickle, the sorted storage keys, then each storage as a u64 count and raw data."""
    out = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, out, protocol=2)
    pickle.dump(1001, out, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, out, protocol=2)
    out.write(state_dict_pickle(ents))
    keys = [str(i) for i in range(len(ents))]
    pickle.dump(sorted(keys), out, protocol=2)
    for k in sorted(keys):
        data = ents[int(k)][2]
        out.write(struct.pack("<Q", len(data)))
        out.write(struct.pack("<" + "f" * len(data), *data))
    return out.getvalue()


def weights_seeds():
    ents = entries()
    write("weights", "gen-small.safetensors", safetensors(ents))
    write("weights", "gen-small-zip.pt", torch_zip(ents))
    write("weights", "gen-small-legacy.pt", torch_legacy(ents))
    prefixed = [("state_dict." + k, s, d) for k, s, d in ents]
    write("weights", "gen-small-prefixed-zip.pt", torch_zip(prefixed))


if __name__ == "__main__":
    nifti_seeds()
    weights_seeds()
