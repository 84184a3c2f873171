#!/usr/bin/env python3
"""Golden check: do two results folders of `reproduce-paper --quick` hold the same study?

    scripts/golden-check.py BEFORE AFTER
    scripts/golden-check.py --subset BEFORE AFTER   (AFTER is an interrupted run: each of its
                                                   files exists in BEFORE and equals it)

Used to show that a refactor changed no behaviour: run `cargo xtask reproduce-paper --quick
--force`, copy `results/reproduce-quick` aside, change the code, run it again, and compare.

What must be equal (standard library only, no numpy):
- the same set of files;
- every CSV, Markdown table, text, TOML, PNG, JavaScript and NIfTI (.nii.gz) file byte for byte,
  except the files that only hold wall-clock times (TIMING_FILES);
- JSON files as parsed values, with wall-clock keys ("seconds", "*_seconds") removed;
- safetensors files as tensors (names, dtypes, shapes, bytes) and metadata (the header is a JSON
  map that Burn writes in hash order, so its bytes differ between two runs of the same code);
- REPORT.md and REPORT.html line by line: the rows of the stage table (seconds per stage, and
  whether this call ran the stage or found it complete) may differ; other lines may differ only
  in their numbers and only if they report times (they contain " s" durations, sit in a stage-time table row or in an
  embedded timing table) or the date and commit the report was written at.
Exit status 0 when equal, 1 with a list of differences otherwise.
"""
import json
import os
import re
import struct
import sys

TIMING_FILES = {"timing.csv", "stages.csv", "relevance_timing.csv", "relevance_timing.md",
                "sanity_timing.csv", "sanity_timing.md"}
STAGE_ROW = re.compile(r"^(\| |<tr><td>)(\*\*|<strong>)?(data|train-cv|train-holdout|interpret|"
                       r"sanity|report|total)\b")
NUMBER = re.compile(r"\d+(\.\d+)?")
GIT = re.compile(r"\(git [0-9a-f]+(-dirty)?\)")


def files(root):
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def strip_times(v):
    if isinstance(v, dict):
        return {k: strip_times(x) for k, x in v.items()
                if k != "seconds" and not k.endswith("_seconds")}
    if isinstance(v, list):
        return [strip_times(x) for x in v]
    return v


def safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    return header, raw[8 + n:]


def timing_line(a, b):
    if STAGE_ROW.match(a.strip()) and STAGE_ROW.match(b.strip()):
        return True  # the stage table: what this call did ("trained …" or "complete, skipped")
    if NUMBER.sub("#", a) != NUMBER.sub("#", b):
        return False
    return bool(STAGE_ROW.match(a.strip())) or "Time (this machine)" in a or \
        re.search(r"\d s\b", a) is not None or "timing" in a.lower()


def provenance_line(a, b):
    """The date and commit a report was written at."""
    a2, b2 = NUMBER.sub("#", GIT.sub("", a)), NUMBER.sub("#", GIT.sub("", b))
    return a2 == b2 and ("Written by" in a or "(git " in a)


def compare(before, after, rel):
    a, b = os.path.join(before, rel), os.path.join(after, rel)
    name = os.path.basename(rel)
    if name in TIMING_FILES:
        return None
    if name.endswith(".json"):
        with open(a) as fa, open(b) as fb:
            ja, jb = strip_times(json.load(fa)), strip_times(json.load(fb))
        return None if ja == jb else "JSON values differ"
    if name.endswith(".safetensors"):
        (ha, da), (hb, db) = safetensors(a), safetensors(b)
        if ha != hb:
            return "safetensors header (tensor list or metadata) differs"
        return None if da == db else "safetensors tensor bytes differ"
    with open(a, "rb") as fa, open(b, "rb") as fb:
        ba, bb = fa.read(), fb.read()
    if ba == bb:
        return None
    if name in ("REPORT.md", "REPORT.html"):
        la, lb = ba.decode().splitlines(), bb.decode().splitlines()
        if len(la) != len(lb):
            return f"{len(la)} lines against {len(lb)}"
        bad, in_timing_table = [], False
        for i, (x, y) in enumerate(zip(la, lb)):
            if 'id="table-' in x:
                in_timing_table = "timing" in x.split('id="table-')[1].split('"')[0]
            if x != y and not (timing_line(x, y) or provenance_line(x, y)
                               or (in_timing_table and NUMBER.sub("#", x) == NUMBER.sub("#", y))):
                bad.append(i + 1)
        return None if not bad else f"lines {bad[:10]} differ beyond timings"
    return "bytes differ"


def main():
    args = sys.argv[1:]
    subset = bool(args) and args[0] == "--subset"
    if subset:
        args = args[1:]
    if len(args) != 2:
        sys.exit(__doc__)
    before, after = args
    fa, fb = files(before), files(after)
    problems = [] if subset else [f"only in {before}: {p}" for p in sorted(fa - fb)]
    problems += [f"only in {after}: {p}" for p in sorted(fb - fa)]
    same = sorted(fa & fb)
    for rel in same:
        why = compare(before, after, rel)
        if why:
            problems.append(f"{rel}: {why}")
    if problems:
        print("\n".join(problems))
        print(f"golden check: {len(problems)} difference(s)")
        sys.exit(1)
    print(f"golden check: {len(same)} files equal (timings aside)")


if __name__ == "__main__":
    main()
