#!/usr/bin/python3
"""Writes the small fixture files the library's language tests read
(tests/lang/lib_*.tt). Re-run from this folder to regenerate them."""
import json
import struct


def safetensors(path, tensors, truncate=0):
    """tensors: list of (name, dtype, shape, flat values)."""
    header, blobs, off = {}, [], 0
    for name, dt, shape, vals in tensors:
        fmt = {"F32": "f", "I32": "i"}[dt]
        blob = struct.pack("<%d%s" % (len(vals), fmt), *vals)
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(blob)]}
        off += len(blob)
        blobs.append(blob)
    h = json.dumps(header).encode()
    data = struct.pack("<Q", len(h)) + h + b"".join(blobs)
    with open(path, "wb") as f:
        f.write(data[: len(data) - truncate])


def zeros(*shape):
    n = 1
    for d in shape:
        n *= d
    return [0.5] * n


# The model of lib_load_mismatch.tt: fc1 = Linear(4, 3), fc2 = Linear(3, 2).
safetensors("mismatch.safetensors", [
    ("fc1.w", "F32", [4, 5], zeros(4, 5)),  # wrong shape
    ("fc1.b", "I32", [3], [0, 0, 0]),       # wrong dtype
    ("fc2.w", "F32", [3, 2], zeros(3, 2)),
    # fc2.b missing
    ("extra.w", "F32", [2], zeros(2)),      # not in the model
])
# Correct names and shapes, but the data stops early.
safetensors("truncated.safetensors", [
    ("fc1.w", "F32", [4, 3], zeros(4, 3)),
    ("fc1.b", "F32", [3], zeros(3)),
], truncate=8)
# A header length far beyond the file, then garbage.
with open("corrupt.safetensors", "wb") as f:
    f.write(struct.pack("<Q", 1 << 40) + b"{not json")
# A header that is not JSON.
with open("badjson.safetensors", "wb") as f:
    h = b"{\"fc1.w\": [1, 2"
    f.write(struct.pack("<Q", len(h)) + h)
# Not an .npy file at all.
with open("not_npy.npy", "w") as f:
    f.write("this is plain text, not a NumPy array\n")
# A small CSV: a header line, 6 rows of 3 features and a label.
with open("small.csv", "w") as f:
    f.write("a,b,c,label\n")
    rows = [(1.0, 2.0, 3.0, 0), (4.0, 5.0, 6.0, 1), (7.0, 8.0, 9.0, 2),
            (1.5, 2.5, 3.5, 0), (4.5, 5.5, 6.5, 1), (7.5, 8.5, 9.5, 2)]
    for r in rows:
        f.write("%g,%g,%g,%d\n" % r)
# Three separable clusters, 4 rows each: a run of fit() must learn them
# (tests/lang/lib_fit.tt).
with open("blobs.csv", "w") as f:
    f.write("a,b,c,label\n")
    jitter = [(0.0, 0.1, 0.0), (-0.1, 0.0, 0.2), (0.1, 0.2, 0.1), (-0.2, 0.1, 0.1)]
    for label in range(3):
        for j in jitter:
            x = [j[(k - label) % 3] for k in range(3)]
            x[label] += 1.0
            f.write("%.1f,%.1f,%.1f,%d\n" % (x[0], x[1], x[2], label))
# Line 4 has a missing field.
with open("bad_row.csv", "w") as f:
    f.write("1,2,3,0\n4,5,6,1\n7,8,9,2\n1,2,0\n5,5,5,1\n")
# A field that is not a number on line 3.
with open("bad_value.csv", "w") as f:
    f.write("1,2,3,0\n4,5,6,1\n7,eight,9,2\n")
# A tiny IDX file (the MNIST format): u8 [2, 3], values 0..5 * 50.
with open("tiny.idx", "wb") as f:
    f.write(bytes([0, 0, 0x08, 2]) + struct.pack(">ii", 2, 3) + bytes([0, 50, 100, 150, 200, 250]))
# The same header with the data cut short.
with open("tiny_truncated.idx", "wb") as f:
    f.write(bytes([0, 0, 0x08, 2]) + struct.pack(">ii", 2, 3) + bytes([0, 50, 100]))
